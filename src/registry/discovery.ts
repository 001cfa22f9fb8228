import { LRUCache } from "lru-cache";
import type { Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { mediaTypes } from "../oci/media-types.js";
import type { RegistryContext } from "./context.js";

/** One page of a listing; `last` is the cursor for the next page when there is one. */
export interface Page<T> {
  items: T[];
  next: string | undefined;
}

export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: string;
  manifests: {
    mediaType: string;
    digest: string;
    size: number;
    artifactType?: string;
    annotations?: Record<string, string>;
  }[];
}

/** Tags, catalog and referrers (distribution-spec "Content Discovery"). */
export class DiscoveryService {
  /** Listing pages by query, valid while the metadata's change token stays the same. */
  private readonly pages = new LRUCache<string, { token: string; page: Page<string> }>({ max: 1000 });

  constructor(private readonly ctx: RegistryContext) {}

  /** Tags in lexical order; `n` is clamped to the configured page size. */
  async listTags(repository: string, n: number | undefined, last: string | undefined): Promise<Page<string>> {
    return this.cached(`tags\0${repository}\0${n}\0${last}`, () => this.queryTags(repository, n, last));
  }

  async listRepositories(n: number | undefined, last: string | undefined): Promise<Page<string>> {
    return this.cached(`catalog\0${n}\0${last}`, () => this.queryRepositories(n, last));
  }

  private async cached(key: string, query: () => Promise<Page<string>>): Promise<Page<string>> {
    const token = await this.ctx.metadata.changeToken();
    if (token === undefined) return query();
    const hit = this.pages.get(key);
    if (hit?.token === token) return hit.page;
    const page = await query();
    this.pages.set(key, { token, page });
    return page;
  }

  private async queryTags(
    repository: string,
    n: number | undefined,
    last: string | undefined,
  ): Promise<Page<string>> {
    const limit = this.pageLimit(n);
    if (limit === 0) {
      if (!(await this.ctx.metadata.repositoryExists(repository))) throw nameUnknown(repository);
      return { items: [], next: undefined };
    }
    const tags = await this.ctx.metadata.listTags(repository, limit + 1, last);
    if (!tags) throw nameUnknown(repository);
    return page(tags, limit);
  }

  private async queryRepositories(n: number | undefined, last: string | undefined): Promise<Page<string>> {
    const limit = this.pageLimit(n);
    if (limit === 0) return { items: [], next: undefined };
    return page(await this.ctx.metadata.listRepositories(limit + 1, last), limit);
  }

  /**
   * An image index of the manifests whose subject is `subject`; empty, never 404, when there are none
   * (distribution-spec "Listing Referrers").
   */
  async listReferrers(
    repository: string,
    subject: Digest,
    artifactType: string | undefined,
    last: string | undefined,
  ): Promise<{ index: ReferrersIndex; next: string | undefined }> {
    const limit = this.ctx.config.limits.pageSize;
    const records = await this.ctx.metadata.listReferrers(repository, subject.value, {
      ...(artifactType !== undefined ? { artifactType } : {}),
      ...(last !== undefined ? { last } : {}),
      limit: limit + 1,
    });
    const { items, next } = page(records, limit, (r) => r.digest);
    return {
      index: {
        schemaVersion: 2,
        mediaType: mediaTypes.ociIndex,
        manifests: items.map((r) => ({
          mediaType: r.mediaType,
          digest: r.digest,
          size: r.size,
          ...(r.artifactType !== undefined ? { artifactType: r.artifactType } : {}),
          ...(r.annotations !== undefined ? { annotations: r.annotations } : {}),
        })),
      },
      next,
    };
  }

  private pageLimit(n: number | undefined): number {
    const max = this.ctx.config.limits.pageSize;
    return n === undefined ? max : Math.min(n, max);
  }
}

function page<T>(rows: T[], limit: number, key: (row: T) => string = String): Page<T> {
  if (rows.length <= limit) return { items: rows, next: undefined };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next: last === undefined ? undefined : key(last) };
}

function nameUnknown(repository: string): RegistryError {
  return new RegistryError("NAME_UNKNOWN", undefined, { detail: { name: repository } });
}
