import { createHash, randomUUID } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { LRUCache } from "lru-cache";
import type { Response } from "undici";
import { pinForPublish } from "../gc/publish-pin.js";
import { type Digest, digestFromHex, tryParseDigest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { parseManifest } from "../oci/manifest.js";
import { mediaTypes, stripMediaTypeParameters } from "../oci/media-types.js";
import type { Reference } from "../oci/reference.js";
import type { RegistryContext } from "../registry/context.js";
import { manifestRow } from "../registry/manifests.js";
import type { UpstreamConfig } from "./proxy-config.js";
import { ProxyMetrics } from "./proxy-metrics.js";
import { UpstreamClient, UpstreamUnavailableError } from "./upstream-client.js";

const manifestAccept = [
  mediaTypes.ociManifest,
  mediaTypes.ociIndex,
  mediaTypes.dockerManifest,
  mediaTypes.dockerManifestList,
].join(", ");

/** Tags whose last upstream check is remembered; forgetting one only costs an early re-check. */
const validatedTagsKept = 100_000;

interface Upstream {
  config: UpstreamConfig;
  client: UpstreamClient;
}

/** Where a proxied repository lives upstream. */
interface UpstreamRepository {
  upstream: Upstream;
  /** The repository's name at the upstream, e.g. `library/alpine` for `hub/alpine`. */
  path: string;
}

/** A blob being fetched from an upstream into the store; later requests for it wait on `stored`. */
interface BlobFetch {
  repository: string;
  stored: Promise<void>;
}

/**
 * Pull-through cache: repositories under a configured prefix are read-only mirrors of an upstream
 * registry, filled on demand. Content lands in the same stores, through the same invariants (verified
 * digests, content before pointers), so access policy, catalog and GC treat it like pushed content.
 */
export class PullThroughCache {
  readonly metrics: ProxyMetrics;
  private readonly upstreams: Upstream[];
  private readonly blobFetches = new Map<string, BlobFetch>();
  private readonly manifestFetches = new Map<string, Promise<void>>();
  /** `repository:tag` -> when the upstream last confirmed (or gave) the cached digest. */
  private readonly tagValidatedAt = new LRUCache<string, number>({ max: validatedTagsKept });

  constructor(
    private readonly ctx: RegistryContext,
    metrics = new ProxyMetrics(),
  ) {
    this.metrics = metrics;
    this.upstreams = ctx.config.proxy.upstreams.map((config) => ({
      config,
      client: new UpstreamClient(config, metrics),
    }));
  }

  /** The cache for the configured upstreams, or undefined when none is configured. */
  static fromContext(ctx: RegistryContext): PullThroughCache | undefined {
    return ctx.config.proxy.upstreams.length > 0 ? new PullThroughCache(ctx) : undefined;
  }

  /** True for repositories served from an upstream (the prefix itself included). */
  handles(repository: string): boolean {
    return this.upstreamOf(repository) !== undefined;
  }

  /** The error a write to a proxied repository gets. */
  readOnly(repository: string): RegistryError {
    const upstream = this.upstreamOf(repository);
    return new RegistryError(
      "DENIED",
      `repository ${repository} is a read-only pull-through cache of ${upstream?.config.url ?? "an upstream"}; push to the upstream instead`,
      { detail: { name: repository } },
    );
  }

  /**
   * Makes sure the repository holds the manifest `reference` names, as fresh as the upstream's tag TTL
   * asks: by digest a cached manifest is final; by tag it is re-checked with a HEAD once the TTL passed.
   * Afterwards the caller reads it from the stores as for any repository.
   */
  async ensureManifest(repository: string, reference: Reference): Promise<void> {
    const target = this.locate(repository);
    const key = `${repository}@${reference.kind === "tag" ? reference.tag : reference.digest.value}`;
    let pending = this.manifestFetches.get(key);
    if (pending === undefined) {
      pending = this.refreshManifest(repository, target, reference).finally(() =>
        this.manifestFetches.delete(key),
      );
      this.manifestFetches.set(key, pending);
    }
    await pending;
  }

  private async refreshManifest(
    repository: string,
    target: UpstreamRepository,
    reference: Reference,
  ): Promise<void> {
    const { metadata } = this.ctx;
    const { upstream } = target;
    const prefix = upstream.config.prefix;
    if (reference.kind === "digest") {
      if (await metadata.getManifest(repository, reference.digest.value)) {
        this.metrics.add(prefix, "hits");
        return;
      }
      try {
        await this.fetchManifest(repository, target, reference);
      } catch (error) {
        if (!(error instanceof UpstreamUnavailableError)) throw error;
        this.metrics.add(prefix, "upstreamFailures");
        throw unavailable(error, false);
      }
      return;
    }
    const cached = await metadata.getTaggedManifest(repository, reference.tag);
    const validatedAt = this.tagValidatedAt.get(`${repository}:${reference.tag}`);
    if (
      cached &&
      validatedAt !== undefined &&
      Date.now() - validatedAt < upstream.config.tagTtlSeconds * 1000
    ) {
      this.metrics.add(prefix, "hits");
      return;
    }
    try {
      if (cached) {
        const current = await this.upstreamTagDigest(target, reference.tag);
        if (current === cached.digest) {
          this.tagValidatedAt.set(`${repository}:${reference.tag}`, Date.now());
          this.metrics.add(prefix, "hits");
          return;
        }
      }
      await this.fetchManifest(repository, target, reference);
    } catch (error) {
      if (!(error instanceof UpstreamUnavailableError)) throw error;
      this.metrics.add(prefix, "upstreamFailures");
      if (cached && upstream.config.serveStale) {
        this.metrics.add(prefix, "staleServed");
        return;
      }
      throw unavailable(error, cached !== undefined);
    }
  }

  /** The digest the upstream's tag points at now, from a HEAD; undefined when it did not say. */
  private async upstreamTagDigest(target: UpstreamRepository, tag: string): Promise<string | undefined> {
    const response = await target.upstream.client.request(
      "HEAD",
      `/v2/${target.path}/manifests/${tag}`,
      pullScope(target.path),
      manifestAccept,
    );
    await response.body?.cancel();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw refusedByUpstream(response.status, "manifest", tag);
    return response.headers.get("docker-content-digest") ?? undefined;
  }

  /** GETs the manifest upstream, verifies its digest and records it (and the tag) in the repository. */
  private async fetchManifest(
    repository: string,
    target: UpstreamRepository,
    reference: Reference,
  ): Promise<void> {
    const { blobStore, metadata, config } = this.ctx;
    const prefix = target.upstream.config.prefix;
    const name = reference.kind === "tag" ? reference.tag : reference.digest.value;
    const response = await target.upstream.client.request(
      "GET",
      `/v2/${target.path}/manifests/${name}`,
      pullScope(target.path),
      manifestAccept,
    );
    if (response.status === 404) {
      await response.body?.cancel();
      throw new RegistryError(
        "MANIFEST_UNKNOWN",
        `manifest ${name} not found upstream at ${target.upstream.config.url}`,
        {
          detail: { reference: name },
        },
      );
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw refusedByUpstream(response.status, "manifest", name);
    }
    this.metrics.add(prefix, "misses");
    const bytes = await readLimited(response, config.limits.manifestBytes, target.upstream.config.url);
    this.metrics.add(prefix, "upstreamBytes", bytes.length);
    const announced = tryParseDigest(response.headers.get("docker-content-digest") ?? "");
    const algorithm =
      reference.kind === "digest" ? reference.digest.algorithm : (announced?.algorithm ?? "sha256");
    const digest = digestFromHex(algorithm, createHash(algorithm).update(bytes).digest("hex"));
    const expected = reference.kind === "digest" ? reference.digest : announced;
    if (
      expected !== undefined &&
      expected.algorithm === digest.algorithm &&
      expected.value !== digest.value
    ) {
      throw new UpstreamUnavailableError(
        target.upstream.config.url,
        `manifest ${name} has digest ${digest.value}, expected ${expected.value}`,
      );
    }
    const contentType = stripMediaTypeParameters(response.headers.get("content-type") ?? undefined);
    let manifest: ReturnType<typeof parseManifest>;
    try {
      manifest = parseManifest(bytes, contentType);
    } catch (error) {
      throw new RegistryError(
        "UNAVAILABLE",
        `upstream ${target.upstream.config.url} served a manifest berth cannot store: ${(error as Error).message}`,
        { status: 502 },
      );
    }
    // Content before pointers, as for a push. gc: pinned first, so garbage collection cannot delete the
    // bytes between putBlob and putManifest.
    await pinForPublish(metadata, digest.value);
    await blobStore.putBlob(digest, bytes);
    const now = Date.now();
    await metadata.putManifest(
      repository,
      // Its blobs and child manifests are fetched when a client asks for them.
      { ...manifestRow(digest, bytes.length, manifest, now), referencesFetchedOnDemand: true },
      reference.kind === "tag" ? reference.tag : undefined,
    );
    if (reference.kind === "tag") this.tagValidatedAt.set(`${repository}:${reference.tag}`, now);
  }

  /**
   * Size of a blob the repository serves or the upstream has, for HEAD; nothing is fetched.
   * Undefined when the repository holds it already (the caller answers as usual).
   */
  async blobSize(repository: string, digest: Digest): Promise<number | undefined> {
    // Other repositories answer from their own metadata alone, without the proxy's lookups.
    if (!this.handles(repository) || (await this.holds(repository, digest))) return undefined;
    const target = this.locate(repository);
    const response = await this.askUpstream(target, "HEAD", digest);
    await response.body?.cancel();
    const size = Number(response.headers.get("content-length"));
    if (!Number.isSafeInteger(size) || size < 0)
      throw unavailable(
        new UpstreamUnavailableError(target.upstream.config.url, "blob HEAD without a length"),
        false,
      );
    return size;
  }

  /**
   * A blob the repository does not hold yet: fetched from the upstream and streamed to the caller while
   * it is stored. Undefined when the repository holds it (now), and the caller serves it from the store.
   *
   * The bytes reach the caller as they arrive, except the last chunk, which is held back until the digest
   * is verified and the blob published: a corrupt or truncated upstream body ends the response early
   * instead of completing it. Concurrent requests for the same blob wait for the first fetch to be stored
   * and are then served from the store. A caller that disconnects does not stop the fetch: the blob is
   * still stored for the others (and the next pull).
   */
  async pullBlob(
    repository: string,
    digest: Digest,
    joinedFailedFetch = false,
  ): Promise<{ body: Readable; size?: number } | undefined> {
    if (!this.handles(repository) || (await this.holds(repository, digest))) return undefined;
    const target = this.locate(repository);
    const prefix = target.upstream.config.prefix;
    const key = `${target.upstream.client.origin} ${digest.value}`;
    const running = this.blobFetches.get(key);
    if (running !== undefined) {
      this.metrics.add(prefix, "coalesced");
      try {
        await running.stored;
      } catch (error) {
        // That fetch failed for its own reasons (a cut connection, a corrupt body): try once more alone.
        if (!joinedFailedFetch) return this.pullBlob(repository, digest, true);
        throw error instanceof UpstreamUnavailableError ? unavailable(error, false) : error;
      }
      if (running.repository !== repository) await this.linkStored(repository, target, digest);
      return undefined;
    }
    // Another repository holds the bytes: once the upstream confirms this repository has them too, link.
    if ((await this.ctx.blobStore.statBlob(digest)) !== undefined) {
      await this.linkStored(repository, target, digest);
      this.metrics.add(prefix, "hits");
      return undefined;
    }
    const response = await this.askUpstream(target, "GET", digest);
    this.metrics.add(prefix, "misses");
    const length = response.headers.get("content-length");
    const size = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : undefined;
    // Room for a few upstream chunks, so the store is not paused on every write to a slower socket.
    const client = new PassThrough({ highWaterMark: 1024 * 1024 });
    // Errors on the client's side only detach it; the fetch goes on for the store.
    client.on("error", () => {});
    const entry: BlobFetch = { repository, stored: Promise.resolve() };
    // Called as soon as the outcome is known, so no request joins a fetch that already failed.
    const forget = () => {
      if (this.blobFetches.get(key) === entry) this.blobFetches.delete(key);
    };
    entry.stored = this.store(repository, target, digest, response, size, client, forget);
    entry.stored.catch(() => {});
    this.blobFetches.set(key, entry);
    return { body: client, ...(size !== undefined ? { size } : {}) };
  }

  async close(): Promise<void> {
    await Promise.all(this.upstreams.map((upstream) => upstream.client.close()));
  }

  private async store(
    repository: string,
    target: UpstreamRepository,
    digest: Digest,
    response: Response,
    size: number | undefined,
    client: PassThrough,
    forget: () => void,
  ): Promise<void> {
    const { blobStore, metadata, config } = this.ctx;
    const prefix = target.upstream.config.prefix;
    const uploadId = randomUUID();
    const hash = createHash(digest.algorithm);
    let held: Buffer | undefined;
    let clientGone = false;
    client.once("close", () => {
      clientGone = true;
    });
    const toClient = async (chunk: Buffer): Promise<void> => {
      if (clientGone || client.write(chunk)) return;
      await new Promise<void>((resolve) => {
        const done = () => {
          client.off("drain", done);
          client.off("close", done);
          resolve();
        };
        client.on("drain", done);
        client.on("close", done);
      });
    };
    const metrics = this.metrics;
    async function* relay(): AsyncGenerator<Buffer> {
      if (response.body === null) return;
      for await (const part of response.body) {
        const chunk = Buffer.from(part.buffer, part.byteOffset, part.byteLength);
        hash.update(chunk);
        metrics.add(prefix, "upstreamBytes", chunk.length);
        if (held !== undefined) await toClient(held);
        held = chunk;
        yield chunk;
      }
    }
    let session = false;
    try {
      await blobStore.createUpload(uploadId);
      // A session makes the idle-upload sweep remove the scratch if this process dies mid-fetch.
      session = await metadata.createUploadSession(
        { id: uploadId, repository, hashAlgorithm: digest.algorithm, now: Date.now() },
        config.limits.uploadSessions,
      );
      const written = await blobStore.writeUpload(uploadId, 0, relay(), false);
      const actual = hash.digest("hex");
      if ((size !== undefined && written !== size) || actual !== digest.encoded) {
        throw new UpstreamUnavailableError(
          target.upstream.config.url,
          `blob ${digest.value} arrived as ${written} bytes with digest ${digest.algorithm}:${actual}`,
        );
      }
      // gc: pinned before the bytes are published, as for a push.
      await pinForPublish(metadata, digest.value);
      await blobStore.commitUpload(uploadId, written, digest);
      await metadata.recordBlob(repository, digest.value, written, session ? uploadId : undefined);
      forget();
    } catch (error) {
      forget();
      this.metrics.add(prefix, "upstreamFailures");
      client.destroy(error as Error);
      // Frees the upstream connection when the failure came before the body was read to its end.
      await response.body?.cancel().catch(() => {});
      await blobStore.deleteUpload(uploadId).catch(() => {});
      if (session) await metadata.deleteUploadSession(uploadId).catch(() => {});
      throw error;
    }
    if (held !== undefined && !clientGone) client.write(held);
    client.end();
  }

  /** Links a blob the store holds into `repository` after the upstream confirmed the repository has it. */
  private async linkStored(repository: string, target: UpstreamRepository, digest: Digest): Promise<void> {
    const response = await this.askUpstream(target, "HEAD", digest);
    await response.body?.cancel();
    if (!(await this.ctx.metadata.linkBlob(repository, digest.value)))
      throw new RegistryError("BLOB_UNKNOWN", undefined, { detail: { digest: digest.value } });
  }

  /** A 200 for the blob from the upstream; 404 and refusals become client errors, outages 502. */
  private async askUpstream(
    target: UpstreamRepository,
    method: "GET" | "HEAD",
    digest: Digest,
  ): Promise<Response> {
    const prefix = target.upstream.config.prefix;
    let response: Response;
    try {
      response = await target.upstream.client.request(
        method,
        `/v2/${target.path}/blobs/${digest.value}`,
        pullScope(target.path),
      );
    } catch (error) {
      if (!(error instanceof UpstreamUnavailableError)) throw error;
      this.metrics.add(prefix, "upstreamFailures");
      throw unavailable(error, false);
    }
    if (response.status === 200) return response;
    await response.body?.cancel();
    if (response.status === 404)
      throw new RegistryError("BLOB_UNKNOWN", `blob not found upstream at ${target.upstream.config.url}`, {
        detail: { digest: digest.value },
      });
    throw refusedByUpstream(response.status, "blob", digest.value);
  }

  private async holds(repository: string, digest: Digest): Promise<boolean> {
    const { metadata } = this.ctx;
    const held =
      (await metadata.getRepositoryBlob(repository, digest.value)) !== undefined ||
      (await metadata.getManifest(repository, digest.value)) !== undefined;
    if (held) {
      const upstream = this.upstreamOf(repository);
      if (upstream) this.metrics.add(upstream.config.prefix, "hits");
    }
    return held;
  }

  private upstreamOf(repository: string): Upstream | undefined {
    return this.upstreams.find(
      (u) => repository === u.config.prefix || repository.startsWith(`${u.config.prefix}/`),
    );
  }

  /** The upstream repository behind `repository`; NAME_UNKNOWN for the bare prefix. */
  private locate(repository: string): UpstreamRepository {
    const upstream = this.upstreamOf(repository);
    const rest = upstream ? repository.slice(upstream.config.prefix.length + 1) : "";
    if (upstream === undefined || rest === "")
      throw new RegistryError("NAME_UNKNOWN", `${repository} names no repository of an upstream`, {
        detail: { name: repository },
      });
    const path = upstream.config.libraryPrefix && !rest.includes("/") ? `library/${rest}` : rest;
    return { upstream, path };
  }
}

function pullScope(path: string): string {
  return `repository:${path}:pull`;
}

/** An outage: 502 naming the upstream and the reason (the cache had nothing to serve instead). */
function unavailable(error: UpstreamUnavailableError, hadStale: boolean): RegistryError {
  return new RegistryError(
    "UNAVAILABLE",
    hadStale
      ? `${error.message}; the cached copy is past its TTL and serveStale is off`
      : `${error.message}; nothing cached to serve instead`,
    { status: 502 },
  );
}

/** The upstream refused us (401/403 after authenticating, or another status we cannot use). */
function refusedByUpstream(status: number, what: "manifest" | "blob", name: string): RegistryError {
  if (status === 401 || status === 403)
    // Docker Hub answers missing repositories this way too: to the client it is unknown content.
    return new RegistryError(
      what === "manifest" ? "MANIFEST_UNKNOWN" : "BLOB_UNKNOWN",
      `the upstream refused access to ${what} ${name} (${status}); check the upstream credentials`,
      { detail: { reference: name } },
    );
  return new RegistryError("UNAVAILABLE", `the upstream answered ${status} for ${what} ${name}`, {
    status: 502,
  });
}

async function readLimited(response: Response, limit: number, upstream: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  if (response.body === null) return Buffer.alloc(0);
  try {
    for await (const part of response.body) {
      total += part.byteLength;
      // Leaving the loop cancels the body.
      if (total > limit)
        throw new RegistryError("UNAVAILABLE", `upstream ${upstream} served a manifest over ${limit} bytes`, {
          status: 502,
        });
      chunks.push(Buffer.from(part.buffer, part.byteOffset, part.byteLength));
    }
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new UpstreamUnavailableError(upstream, `manifest body: ${(error as Error).message}`);
  }
  return Buffer.concat(chunks, total);
}
