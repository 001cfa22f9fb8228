import { parseDigest } from "../../oci/digest.js";
import { parseRangeHeader } from "../../oci/range.js";
import { sendBlobBody } from "../blob-body.js";
import type { RouteContext } from "../request-context.js";

/** `GET /v2/<name>/blobs/<digest>` (end-2), with RFC 9110 range requests. */
async function getBlob({ request, reply, registry, name, target }: RouteContext): Promise<void> {
  const digest = parseDigest(target);
  // Pull-through miss: the whole blob streams from the upstream while it is stored (Range is ignored).
  const pulled = await registry.proxy?.pullBlob(name, digest);
  if (pulled !== undefined) {
    setBlobHeaders(reply, digest.value);
    reply.code(200).header("Content-Type", "application/octet-stream");
    if (pulled.size !== undefined) reply.header("Content-Length", String(pulled.size));
    reply.send(pulled.body);
    return;
  }
  const { size } = await registry.blobs.stat(name, digest);
  setBlobHeaders(reply, digest.value);
  if (request.headers["if-none-match"] === `"${digest.value}"`) {
    reply.code(304).send();
    return;
  }
  const range = parseRangeHeader(request.headers.range, size);
  if (range.kind === "unsatisfiable") {
    reply.code(416).header("Content-Range", `bytes */${size}`).header("Content-Length", "0").send();
    return;
  }
  registry.blobs.pulled(name, digest, size);
  // With storage.s3.redirect the client fetches the bytes from the store; it resends its Range header.
  const location = await registry.blobs.redirectUrl(digest);
  if (location !== undefined) {
    // The URL expires: the redirect must not be cached like the content.
    reply
      .code(307)
      .header("Location", location)
      .header("Cache-Control", "no-store")
      .header("Content-Length", "0")
      .send();
    return;
  }
  const reader = await registry.blobs.openReader(digest);
  if (reader !== undefined) {
    reply.header("Content-Type", "application/octet-stream");
    if (range.kind === "satisfiable") {
      const { start, end } = range.range;
      reply
        .header("Content-Range", `bytes ${start}-${end}/${size}`)
        .header("Content-Length", String(end - start + 1));
      await sendBlobBody(reply, 206, reader, start, end);
    } else {
      reply.header("Content-Length", String(size));
      await sendBlobBody(reply, 200, reader, 0, size - 1);
    }
    return;
  }
  if (range.kind === "satisfiable") {
    const { start, end } = range.range;
    const body = await registry.blobs.open(digest, range.range);
    reply
      .code(206)
      .header("Content-Type", "application/octet-stream")
      .header("Content-Range", `bytes ${start}-${end}/${size}`)
      .header("Content-Length", String(end - start + 1))
      .send(body);
    return;
  }
  const body = await registry.blobs.open(digest);
  reply
    .code(200)
    .header("Content-Type", "application/octet-stream")
    .header("Content-Length", String(size))
    .send(body);
}

/** `HEAD /v2/<name>/blobs/<digest>` ("Checking if content exists in the registry"). */
async function headBlob({ reply, registry, name, target }: RouteContext): Promise<void> {
  const digest = parseDigest(target);
  const size =
    (await registry.proxy?.blobSize(name, digest)) ?? (await registry.blobs.stat(name, digest)).size;
  setBlobHeaders(reply, digest.value);
  reply
    .code(200)
    .header("Content-Type", "application/octet-stream")
    .header("Content-Length", String(size))
    .send();
}

/** `DELETE /v2/<name>/blobs/<digest>` (end-10, "Deleting Blobs"): unlinks it from the repository. */
async function deleteBlob({ reply, registry, name, target }: RouteContext): Promise<void> {
  const digest = parseDigest(target);
  await registry.blobs.delete(name, digest);
  reply.code(202).header("Content-Length", "0").send();
}

function setBlobHeaders(reply: RouteContext["reply"], digest: string): void {
  reply
    .header("Docker-Content-Digest", digest)
    .header("ETag", `"${digest}"`)
    .header("Accept-Ranges", "bytes")
    // Content addressed by digest never changes.
    .header("Cache-Control", "max-age=31536000");
}

export const blobRoutes = { GET: getBlob, HEAD: headBlob, DELETE: deleteBlob };
