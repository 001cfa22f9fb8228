import type { TagDetail } from "../metadata/metadata-store.js";
import { parseDigest, tryParseDigest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { isImageConfig, summarizeImageConfig } from "../oci/image-config.js";
import { manifestKind } from "../oci/manifest.js";
import type { Reference } from "../oci/reference.js";
import { BlobNotFoundError } from "../storage/blob-store.js";
import type {
  DescriptorView,
  ImageConfigView,
  ManifestView,
  PlatformView,
  ReferrerGroupView,
  RepositoryView,
  TagView,
} from "./browse-view.js";
import type { RegistryContext } from "./context.js";
import type { DiscoveryService, Page } from "./discovery.js";
import type { ManifestService } from "./manifests.js";

/** Store pages read to fill one page of repositories the caller may see, at most (nothing unbounded). */
const maxScannedPages = 20;
/** Children of an index whose manifests are read to add up its size. */
const maxSizedChildren = 64;

/**
 * Browsing for people (the web UI): repositories with search, tags with what they point at, and a
 * manifest with its config, layers, platforms and referrers. Reads only; every cost is O(page).
 */
export class BrowseService {
  constructor(
    private readonly ctx: RegistryContext,
    private readonly manifests: ManifestService,
    private readonly discovery: DiscoveryService,
  ) {}

  /**
   * Repositories whose name contains `query`, in byte order after `last`. With `visible`, only those it
   * accepts, reading through at most a bounded number of store pages; `next` then continues the scan.
   */
  async repositories(
    query: string,
    limit: number,
    last: string | undefined,
    visible?: (repository: string) => boolean,
  ): Promise<Page<RepositoryView>> {
    const needle = query.trim().toLowerCase();
    const { metadata } = this.ctx;
    if (!visible) return page(await metadata.searchRepositories(needle, limit + 1, last), limit);
    const items: RepositoryView[] = [];
    // Large batches: a user who may see few of many repositories should not page through empty pages.
    const batch = Math.max(limit + 1, 500);
    let cursor = last;
    for (let scanned = 0; scanned < maxScannedPages; scanned++) {
      const rows = await metadata.searchRepositories(needle, batch, cursor);
      for (const row of rows) {
        if (!visible(row.name)) continue;
        items.push(row);
        if (items.length > limit) return page(items, limit);
      }
      if (rows.length < batch) return { items, next: undefined };
      cursor = rows[rows.length - 1]?.name;
    }
    // Scanned enough for one request: the client continues from where the scan stopped.
    return { items, next: cursor };
  }

  /** Tags in the spec's order with digest, push time, size and (for an index) platforms. */
  async tags(repository: string, limit: number, last: string | undefined): Promise<Page<TagView>> {
    const rows = await this.ctx.metadata.listTagDetails(repository, limit + 1, last);
    if (!rows) throw new RegistryError("NAME_UNKNOWN", undefined, { detail: { name: repository } });
    const { items, next } = page(rows, limit);
    return { items: await Promise.all(items.map((tag) => this.tagView(tag))), next };
  }

  private async tagView(tag: TagDetail): Promise<TagView> {
    const view: TagView = {
      name: tag.name,
      digest: tag.digest,
      mediaType: tag.mediaType,
      artifactType: tag.artifactType ?? null,
      pushedAt: tag.updatedAt,
      size: null,
      platforms: null,
    };
    const kind = manifestKind(tag.mediaType);
    if (kind === "other") return view;
    const json = await this.manifestJson(tag.digest);
    if (kind === "image") return { ...view, size: imageSize(json) };
    const children = descriptors(json.manifests);
    return {
      ...view,
      size: await this.indexSize(children),
      platforms: children.flatMap((child) => (child.platform ? [child.platform] : [])),
    };
  }

  /** A manifest, with its parsed config, layers or children, and its referrers grouped by artifactType. */
  async manifest(repository: string, reference: Reference): Promise<ManifestView> {
    const { record, bytes } = await this.manifests.get(repository, reference);
    const json = parseObject(bytes.toString("utf8")) ?? {};
    const kind = manifestKind(record.mediaType);
    const config = descriptor(json.config) ?? null;
    const layers = descriptors(json.layers ?? json.blobs);
    const children = kind === "index" ? descriptors(json.manifests) : [];
    const referrers = await this.discovery.listReferrers(
      repository,
      parseDigest(record.digest),
      undefined,
      undefined,
    );
    return {
      repository,
      digest: record.digest,
      mediaType: record.mediaType,
      kind,
      size: record.size,
      artifactType: record.artifactType ?? null,
      annotations: record.annotations ?? null,
      subject: descriptor(json.subject) ?? null,
      config,
      image: config ? await this.imageConfig(repository, config) : null,
      layers,
      manifests: children,
      totalSize:
        kind === "image" ? imageSize(json) : kind === "index" ? await this.indexSize(children) : null,
      referrers: groupReferrers(referrers.index.manifests),
      referrersTruncated: referrers.next !== undefined,
      json: JSON.stringify(json, null, 2),
    };
  }

  /** The image config behind a descriptor, when the repository holds it and it is small enough to read. */
  private async imageConfig(repository: string, config: DescriptorView): Promise<ImageConfigView | null> {
    if (!isImageConfig(config.mediaType) || config.size > this.ctx.config.limits.manifestBytes) return null;
    const digest = tryParseDigest(config.digest);
    if (!digest || !(await this.ctx.metadata.getRepositoryBlob(repository, digest.value))) return null;
    const bytes = await this.ctx.blobStore.readBlobBytes(digest);
    return summarizeImageConfig(parseObject(bytes.toString("utf8"))) ?? null;
  }

  private async manifestJson(digest: string): Promise<Record<string, unknown>> {
    return parseObject((await this.manifests.bytes(digest)).toString("utf8")) ?? {};
  }

  /** Adds up the children's images; null when a child is gone or there are too many to read. */
  private async indexSize(children: DescriptorView[]): Promise<number | null> {
    if (children.length > maxSizedChildren) return null;
    try {
      const sizes = await Promise.all(
        children.map(async (child) =>
          manifestKind(child.mediaType) === "image" ? imageSize(await this.manifestJson(child.digest)) : null,
        ),
      );
      return sizes.reduce<number | null>(
        (sum, size) => (sum === null || size === null ? null : sum + size),
        0,
      );
    } catch (error) {
      // A child deleted since the index was pushed: the index still lists, only its size is unknown.
      if (error instanceof BlobNotFoundError) return null;
      throw error;
    }
  }
}

function page<T extends { name: string }>(rows: T[], limit: number): Page<T> {
  if (rows.length <= limit) return { items: rows, next: undefined };
  const items = rows.slice(0, limit);
  return { items, next: items[items.length - 1]?.name };
}

/** Config plus layers: what a pull of this image downloads. */
function imageSize(json: Record<string, unknown>): number | null {
  const config = descriptor(json.config);
  if (!config) return null;
  return descriptors(json.layers).reduce((sum, layer) => sum + layer.size, config.size);
}

function groupReferrers(referrers: DescriptorView[]): ReferrerGroupView[] {
  const groups = new Map<string, DescriptorView[]>();
  for (const referrer of referrers) {
    const type = referrer.artifactType ?? referrer.mediaType;
    const group = groups.get(type) ?? [];
    group.push(referrer);
    groups.set(type, group);
  }
  return [...groups]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([artifactType, list]) => ({ artifactType, referrers: list }));
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const json: unknown = JSON.parse(text);
    return typeof json === "object" && json !== null && !Array.isArray(json)
      ? (json as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function descriptors(value: unknown): DescriptorView[] {
  return Array.isArray(value) ? value.flatMap((item) => descriptor(item) ?? []) : [];
}

/** A descriptor as stored manifests carry it (validated at push), reduced to what is shown. */
function descriptor(value: unknown): DescriptorView | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || typeof d.digest !== "string" || typeof d.size !== "number")
    return undefined;
  const view: DescriptorView = { mediaType: d.mediaType, digest: d.digest, size: d.size };
  if (typeof d.artifactType === "string") view.artifactType = d.artifactType;
  if (typeof d.annotations === "object" && d.annotations !== null)
    view.annotations = d.annotations as Record<string, string>;
  const platform = platformOf(d.platform);
  if (platform) view.platform = platform;
  return view;
}

function platformOf(value: unknown): PlatformView | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const p = value as Record<string, unknown>;
  if (typeof p.os !== "string" || typeof p.architecture !== "string") return undefined;
  return typeof p.variant === "string"
    ? { os: p.os, architecture: p.architecture, variant: p.variant }
    : { os: p.os, architecture: p.architecture };
}
