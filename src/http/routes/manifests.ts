import type { ManifestRecord } from "../../metadata/metadata-store.js";
import { RegistryError } from "../../oci/errors.js";
import { stripMediaTypeParameters } from "../../oci/media-types.js";
import { parseReference, type Reference } from "../../oci/reference.js";
import { isTag } from "../../oci/repository-name.js";
import { location, type RouteContext, readBoundedBody } from "../request-context.js";

/** `GET /v2/<name>/manifests/<reference>` (end-3, "Pulling manifests"). */
async function getManifest({ request, reply, registry, name, target }: RouteContext): Promise<void> {
  const { record, bytes } = await registry.manifests.get(name, existingReference(target));
  setManifestHeaders(reply, record);
  if (request.headers["if-none-match"] === `"${record.digest}"`) {
    reply.code(304).send();
    return;
  }
  reply.code(200).send(bytes);
}

/** `HEAD /v2/<name>/manifests/<reference>` ("Checking if content exists in the registry"). */
async function headManifest({ reply, registry, name, target }: RouteContext): Promise<void> {
  const record = await registry.manifests.head(name, existingReference(target));
  setManifestHeaders(reply, record);
  reply.code(200).send();
}

/** `PUT /v2/<name>/manifests/<reference>` (end-7, "Pushing Manifests"). */
async function putManifest(ctx: RouteContext): Promise<void> {
  const { request, reply, registry, name, target, config } = ctx;
  const reference = parseReference(target);
  const bytes = await readBoundedBody(request.raw, config.limits.manifestBytes);
  const contentType = stripMediaTypeParameters(request.headers["content-type"]);
  const { digest, subject } = await registry.manifests.put(name, reference, bytes, contentType);
  reply
    .code(201)
    .header("Location", location(config, `/v2/${name}/manifests/${digest.value}`))
    .header("Docker-Content-Digest", digest.value)
    .header("Content-Length", "0");
  // "Pushing Manifests with Subject": tells the client the referrers API has recorded the subject.
  if (subject !== undefined) reply.header("OCI-Subject", subject);
  reply.send();
}

/** `DELETE /v2/<name>/manifests/<reference>` (end-9, "Deleting tags" and "Deleting Manifests"). */
async function deleteManifest({ reply, registry, name, target }: RouteContext): Promise<void> {
  await registry.manifests.delete(name, existingReference(target));
  reply.code(202).header("Content-Length", "0").send();
}

/**
 * For reads and deletes, a string that is not a valid tag names no manifest: 404, as the conformance
 * suite expects. A malformed digest stays a 400.
 */
function existingReference(target: string): Reference {
  if (!target.includes(":") && !isTag(target)) {
    throw new RegistryError("MANIFEST_UNKNOWN", undefined, { detail: { reference: target.slice(0, 200) } });
  }
  return parseReference(target);
}

function setManifestHeaders(reply: RouteContext["reply"], record: ManifestRecord): void {
  reply
    .header("Content-Type", record.mediaType)
    .header("Content-Length", String(record.size))
    .header("Docker-Content-Digest", record.digest)
    .header("ETag", `"${record.digest}"`);
}

export const manifestRoutes = {
  GET: getManifest,
  HEAD: headManifest,
  PUT: putManifest,
  DELETE: deleteManifest,
};
