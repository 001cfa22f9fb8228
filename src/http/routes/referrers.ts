import { parseDigest } from "../../oci/digest.js";
import { mediaTypes } from "../../oci/media-types.js";
import { nextLink, type RouteContext } from "../request-context.js";

/** `GET /v2/<name>/referrers/<digest>?artifactType=` (end-12a, end-12b, "Listing Referrers"). */
async function listReferrers({ reply, registry, name, target, query }: RouteContext): Promise<void> {
  const subject = parseDigest(target);
  const artifactType = query.get("artifactType") || undefined;
  const lastParam = query.get("last");
  const last = lastParam ? parseDigest(lastParam).value : undefined;
  const { index, next } = await registry.discovery.listReferrers(name, subject, artifactType, last);
  if (artifactType !== undefined) reply.header("OCI-Filters-Applied", "artifactType");
  if (next !== undefined) {
    const params: Record<string, string> = { last: next };
    if (artifactType !== undefined) params.artifactType = artifactType;
    reply.header("Link", nextLink(`/v2/${name}/referrers/${subject.value}`, params));
  }
  // A Buffer, not a string: Fastify appends "; charset=utf-8" to JSON types sent as strings, and the
  // Content-Type "MUST be set to application/vnd.oci.image.index.v1+json" (conformance compares it exactly).
  reply
    .code(200)
    .header("Content-Type", mediaTypes.ociIndex)
    .send(Buffer.from(JSON.stringify(index)));
}

export const referrerRoutes = { GET: listReferrers };
