import { RegistryError } from "../../oci/errors.js";
import { isTag } from "../../oci/repository-name.js";
import { nextLink, parsePageSize, type RouteContext } from "../request-context.js";

/** `GET /v2/<name>/tags/list?n=&last=` (end-8a, end-8b, "Listing Tags"). */
async function listTags({ reply, registry, name, query }: RouteContext): Promise<void> {
  const n = parsePageSize(query);
  const last = query.get("last") ?? undefined;
  if (last !== undefined && !isTag(last)) {
    throw new RegistryError("UNSUPPORTED", "last must be a tag", {
      status: 400,
      detail: { last: last.slice(0, 200) },
    });
  }
  const page = await registry.discovery.listTags(name, n, last);
  if (page.next !== undefined) {
    const params: Record<string, string> = { last: page.next };
    if (n !== undefined) params.n = String(n);
    reply.header("Link", nextLink(`/v2/${name}/tags/list`, params));
  }
  reply
    .code(200)
    .header("Content-Type", "application/json")
    .send(JSON.stringify({ name, tags: page.items }));
}

export const tagRoutes = { GET: listTags };
