import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import type { ByteRange } from "../oci/range.js";
import { BlobNotFoundError, type BlobReader } from "../storage/blob-store.js";
import type { RegistryContext } from "./context.js";
import { PolicyGate } from "./policies.js";

/** Blob reads, deletes and cross-repository mounts (distribution-spec "Pulling blobs", "Mounting a blob"). */
export class BlobService {
  private readonly policies: PolicyGate;

  constructor(private readonly ctx: RegistryContext) {
    this.policies = new PolicyGate(ctx.metadata, ctx.config);
  }

  /**
   * Size of a blob the repository may serve. Manifests of the repository count too, as in
   * Distribution, since some clients fetch manifests by digest from the blobs endpoint.
   */
  async stat(repository: string, digest: Digest): Promise<{ size: number }> {
    const blob = await this.ctx.metadata.getRepositoryBlob(repository, digest.value);
    if (blob) return blob;
    const manifest = await this.ctx.metadata.getManifest(repository, digest.value);
    if (manifest) return { size: manifest.size };
    throw new RegistryError("BLOB_UNKNOWN", undefined, { detail: { digest: digest.value } });
  }

  /** A URL the client can fetch the blob from directly, when the store offers one (S3 with redirect on). */
  async redirectUrl(digest: Digest): Promise<string | undefined> {
    const store = this.ctx.blobStore;
    if (!store.redirectUrl) return undefined;
    try {
      return await store.redirectUrl(digest);
    } catch (error) {
      throw this.missing(digest, error);
    }
  }

  /** Positioned reads of the blob when the store offers them (filesystem); undefined otherwise. */
  async openReader(digest: Digest): Promise<BlobReader | undefined> {
    const store = this.ctx.blobStore;
    if (!store.openBlobReader) return undefined;
    try {
      return await store.openBlobReader(digest);
    } catch (error) {
      throw this.missing(digest, error);
    }
  }

  async open(digest: Digest, range?: ByteRange): Promise<Readable> {
    try {
      return await this.ctx.blobStore.readBlob(digest, range);
    } catch (error) {
      throw this.missing(digest, error);
    }
  }

  /** The error to throw for a failed store read: BlobNotFoundError becomes a loud 500. */
  private missing(digest: Digest, error: unknown): unknown {
    // Metadata points at content the store lost: say so loudly rather than pretend it never existed.
    if (error instanceof BlobNotFoundError)
      return new RegistryError("UNAVAILABLE", `blob ${digest.value} is recorded but missing from storage`, {
        status: 500,
      });
    return error;
  }

  /** observe: a blob GET served (or redirected), for pull notifications. */
  pulled(repository: string, digest: Digest, size: number): void {
    this.ctx.notifier?.recordPull(
      { repository, mediaType: "application/octet-stream", digest: digest.value, size },
      { kind: "blobs" },
    );
  }

  async delete(repository: string, digest: Digest): Promise<void> {
    if (!this.ctx.config.deletes.enabled) throw deletesDisabled();
    const events = this.ctx.notifier?.eventsFor(
      "delete",
      { repository, digest: digest.value },
      { kind: "blobs" },
    );
    if (!(await this.ctx.metadata.unlinkBlob(repository, digest.value, events))) {
      throw new RegistryError("BLOB_UNKNOWN", undefined, { detail: { digest: digest.value } });
    }
  }

  /**
   * Links a blob into `repository` without moving bytes. With `from`, only from that repository;
   * without, from any repository `mayRead` allows. False means the caller must upload instead.
   */
  async mount(
    repository: string,
    digest: Digest,
    from: string | undefined,
    mayRead: (repository: string) => boolean,
  ): Promise<boolean> {
    const { metadata } = this.ctx;
    if (await metadata.getRepositoryBlob(repository, digest.value)) return true;
    // A mount past the byte quota is refused outright: the upload it would fall back to would be too.
    const limits = this.policies.blobLimits(repository);
    const link = () =>
      limits
        ? metadata.linkBlobWithin(repository, digest.value, limits).catch((error: unknown) => {
            throw this.policies.refused(error, repository);
          })
        : metadata.linkBlob(repository, digest.value);
    if (from !== undefined) {
      if (!mayRead(from) || !(await metadata.getRepositoryBlob(from, digest.value))) return false;
      return link();
    }
    const holders = await metadata.repositoriesWithBlob(digest.value, 50);
    if (!holders.some(mayRead)) return false;
    return link();
  }
}

export function deletesDisabled(): RegistryError {
  return new RegistryError("UNSUPPORTED", "deletes are disabled on this registry", { status: 405 });
}
