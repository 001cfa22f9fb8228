import { RegistryError } from "../../oci/errors.js";
import { isRepositoryName } from "../../oci/repository-name.js";
import type { Page } from "../../registry/discovery.js";
import { nextLink, parsePageSize, type RouteContext } from "../request-context.js";

/** Pages of the underlying listing read to fill one filtered page, at most (nothing unbounded). */
const maxScannedPages = 20;

/** `GET /v2/_catalog?n=&last=`: the repositories, in lexical order, paged like tags. */
async function listRepositories(ctx: RouteContext): Promise<void> {
  const { reply, registry, query, caller } = ctx;
  const n = parsePageSize(query);
  const last = query.get("last") ?? undefined;
  if (last !== undefined && !isRepositoryName(last)) {
    throw new RegistryError("UNSUPPORTED", "last must be a repository name", { status: 400 });
  }
  const page = caller
    ? await visiblePage(ctx, n, last, (repository) => caller.mayList(repository))
    : await registry.discovery.listRepositories(n, last);
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

/** A page of only the repositories the caller may see, read through as many underlying pages as needed. */
async function visiblePage(
  { registry, config }: RouteContext,
  n: number | undefined,
  last: string | undefined,
  visible: (repository: string) => boolean,
): Promise<Page<string>> {
  const size = Math.min(n ?? config.limits.pageSize, config.limits.pageSize);
  if (size === 0) return { items: [], next: undefined };
  const items: string[] = [];
  let cursor = last;
  for (let scanned = 0; scanned < maxScannedPages; scanned++) {
    const page = await registry.discovery.listRepositories(size, cursor);
    for (const repository of page.items) {
      if (!visible(repository)) continue;
      items.push(repository);
      if (items.length === size) {
        const more = repository !== page.items[page.items.length - 1] || page.next !== undefined;
        return { items, next: more ? repository : undefined };
      }
    }
    if (page.next === undefined) return { items, next: undefined };
    cursor = page.items[page.items.length - 1];
  }
  // Scanned enough for one request: hand the client a cursor to continue from.
  return { items, next: cursor };
}

export const catalogRoutes = { GET: listRepositories };
