import { RegistryError } from "../../oci/errors.js";
import { isRepositoryName } from "../../oci/repository-name.js";
import { nextLink, parsePageSize, type RouteContext } from "../request-context.js";

/** `GET /v2/_catalog?n=&last=`: the repositories, in lexical order, paged like tags. */
async function listRepositories({ reply, registry, query }: RouteContext): Promise<void> {
  const n = parsePageSize(query);
  const last = query.get("last") ?? undefined;
  if (last !== undefined && !isRepositoryName(last)) {
    throw new RegistryError("UNSUPPORTED", "last must be a repository name", { status: 400 });
  }
  const page = await registry.discovery.listRepositories(n, last);
  if (page.next !== undefined) {
    const params: Record<string, string> = { last: page.next };
    if (n !== undefined) params.n = String(n);
    reply.header("Link", nextLink("/v2/_catalog", params));
  }
  reply
    .code(200)
    .header("Content-Type", "application/json")
    .send(JSON.stringify({ repositories: page.items }));
}

export const catalogRoutes = { GET: listRepositories };
