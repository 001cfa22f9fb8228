import { isDigestAlgorithm, parseDigest } from "../../oci/digest.js";
import { RegistryError } from "../../oci/errors.js";
import { parseContentRange } from "../../oci/range.js";
import { isRepositoryName } from "../../oci/repository-name.js";
import { type ChunkHeaders, type UploadStatus, uploadLocation, uploadRange } from "../../registry/uploads.js";
import { contentLength, hasBody, location, type RouteContext } from "../request-context.js";

// sha256 of zero bytes: a POST that names it needs no body to be complete.
const emptyBlobDigest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * `POST /v2/<name>/blobs/uploads/`: starts a session (end-4a), takes a whole blob in one request
 * (end-4b, "Single POST"), or mounts a blob from another repository (end-11).
 */
async function startUpload(ctx: RouteContext): Promise<void> {
  const { request, reply, registry, name, query, caller } = ctx;
  const mount = query.get("mount");
  if (mount !== null) {
    const digest = parseDigest(mount);
    const from = query.get("from");
    // An unusable `from` is not an error: the client simply uploads instead (202 below).
    const source = from === null ? undefined : isRepositoryName(from) ? from : null;
    if (
      source !== null &&
      (await registry.blobs.mount(name, digest, source, (repository) => caller?.mayPull(repository) ?? true))
    ) {
      reply
        .code(201)
        .header("Location", location(ctx.config, `/v2/${name}/blobs/${digest.value}`))
        .header("Docker-Content-Digest", digest.value)
        .header("Content-Length", "0")
        .send();
      return;
    }
  }
  const digestParam = query.get("digest");
  if (digestParam !== null) {
    const digest = parseDigest(digestParam);
    if (hasBody(request.raw) || digest.value === emptyBlobDigest) {
      await registry.uploads.pushMonolithic(name, digest, request.raw);
      sendBlobCreated(ctx, digest.value);
      return;
    }
  }
  const algorithm = digestParam?.split(":", 1)[0];
  const status = await registry.uploads.start(
    name,
    algorithm && isDigestAlgorithm(algorithm) ? algorithm : "sha256",
  );
  sendUploadStatus(ctx, status, 202);
}

/** `GET /v2/<name>/blobs/uploads/<reference>` (end-13): where the upload stands. */
async function getUploadStatus(ctx: RouteContext): Promise<void> {
  sendUploadStatus(ctx, await ctx.registry.uploads.status(ctx.name, ctx.target), 204);
}

/** `PATCH /v2/<name>/blobs/uploads/<reference>` (end-5): a chunk, or a stream of the whole blob. */
async function uploadChunk(ctx: RouteContext): Promise<void> {
  const { request, registry, name, target } = ctx;
  const status = await registry.uploads.append(name, target, request.raw, chunkHeaders(ctx));
  sendUploadStatus(ctx, status, 202);
}

/** `PUT /v2/<name>/blobs/uploads/<reference>?digest=` (end-6): the optional last chunk, then close. */
async function finishUpload(ctx: RouteContext): Promise<void> {
  const { request, registry, name, target, query } = ctx;
  const digestParam = query.get("digest");
  if (digestParam === null) {
    throw new RegistryError("DIGEST_INVALID", "the closing PUT must name the blob's digest in ?digest=");
  }
  const digest = parseDigest(digestParam);
  const body = hasBody(request.raw) ? request.raw : undefined;
  await registry.uploads.finish(name, target, digest, body, chunkHeaders(ctx));
  sendBlobCreated(ctx, digest.value);
}

/** `DELETE /v2/<name>/blobs/uploads/<reference>`: cancels the session and frees its bytes. */
async function cancelUpload({ reply, registry, name, target }: RouteContext): Promise<void> {
  await registry.uploads.cancel(name, target);
  reply.code(204).send();
}

function chunkHeaders({ request }: RouteContext): ChunkHeaders {
  const header = request.headers["content-range"];
  const length = contentLength(request.raw);
  const chunk: ChunkHeaders = {};
  if (length !== undefined) chunk.length = length;
  if (header !== undefined) {
    const range = parseContentRange(header);
    if (!range) {
      throw new RegistryError("BLOB_UPLOAD_INVALID", 'Content-Range must be "<start>-<end>"', {
        status: 416,
        detail: { contentRange: header.slice(0, 100) },
      });
    }
    chunk.range = range;
  }
  return chunk;
}

function sendUploadStatus(ctx: RouteContext, status: UploadStatus, code: 202 | 204): void {
  ctx.reply
    .code(code)
    .header("Location", location(ctx.config, uploadLocation(status.repository, status.id)))
    .header("Range", uploadRange(status.offset))
    .header("Docker-Upload-UUID", status.id)
    .header("Content-Length", "0")
    .send();
}

function sendBlobCreated(ctx: RouteContext, digest: string): void {
  ctx.reply
    .code(201)
    .header("Location", location(ctx.config, `/v2/${ctx.name}/blobs/${digest}`))
    .header("Docker-Content-Digest", digest)
    .header("Content-Length", "0")
    .send();
}

export const uploadStartRoutes = { POST: startUpload };
export const uploadRoutes = {
  GET: getUploadStatus,
  PATCH: uploadChunk,
  PUT: finishUpload,
  DELETE: cancelUpload,
};
