import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { pinForPublish } from "../gc/publish-pin.js";
import type { ManifestRecord, MissingReference, NewManifest } from "../metadata/metadata-store.js";
import { type Digest, digestFromHex, parseDigest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { type ParsedManifest, parseManifest } from "../oci/manifest.js";
import type { Reference } from "../oci/reference.js";
import type { PullThroughCache } from "../proxy/pull-through.js";
import { deletesDisabled } from "./blobs.js";
import type { RegistryContext } from "./context.js";
import { PolicyGate } from "./policies.js";

/** Manifest bytes kept in memory; keyed by digest, so never stale. */
const manifestCacheBytes = 64 * 1024 * 1024;

/** What the metadata store records of a verified, parsed manifest of `size` bytes. */
export function manifestRow(
  digest: Digest,
  size: number,
  manifest: ParsedManifest,
  now: number,
): NewManifest {
  return {
    digest: digest.value,
    mediaType: manifest.mediaType,
    size,
    artifactType: manifest.artifactType,
    subject: manifest.subject?.value,
    annotations: manifest.annotations,
    references: manifest.references,
    now,
  };
}

/** Pushing, pulling and deleting manifests (distribution-spec "Pushing Manifests", "Pulling manifests"). */
export class ManifestService {
  private readonly cache = new LRUCache<string, Buffer>({
    maxSize: manifestCacheBytes,
    sizeCalculation: (bytes) => Math.max(1, bytes.length),
  });

  private readonly policies: PolicyGate;

  constructor(
    private readonly ctx: RegistryContext,
    private readonly pullThrough?: PullThroughCache,
  ) {
    this.policies = new PolicyGate(ctx.metadata, ctx.config);
  }

  async put(
    repository: string,
    reference: Reference,
    bytes: Buffer,
    contentType: string | undefined,
  ): Promise<{ digest: Digest; subject: string | undefined }> {
    const algorithm = reference.kind === "digest" ? reference.digest.algorithm : "sha256";
    const digest = digestFromHex(algorithm, createHash(algorithm).update(bytes).digest("hex"));
    if (reference.kind === "digest" && reference.digest.value !== digest.value) {
      throw new RegistryError("DIGEST_INVALID", "manifest digest does not match the reference", {
        detail: { expected: reference.digest.value, actual: digest.value },
      });
    }
    const manifest = parseManifest(bytes, contentType);
    // Checked before the bytes are stored too, so a refused manifest leaves no file behind (the
    // transaction below checks again, against a concurrent delete).
    const missingBefore = await this.ctx.metadata.missingReferences(repository, manifest.references);
    if (missingBefore.length > 0) throw missingReferencesError(missingBefore);
    // Immutable tags and quotas: refused before the bytes are stored, and checked again as they are recorded.
    const tag = reference.kind === "tag" ? reference.tag : undefined;
    const limits = this.policies.manifestLimits(repository, tag);
    if (limits) await this.policies.checkManifest(repository, tag, digest.value, bytes.length, limits);
    // Content before pointers: the bytes are durable before metadata can name them. gc: pinned first, so
    // garbage collection cannot delete the bytes between putBlob and putManifest.
    await pinForPublish(this.ctx.metadata, digest.value);
    await this.ctx.blobStore.putBlob(digest, bytes);
    const record = manifestRow(digest, bytes.length, manifest, Date.now());
    const events = this.ctx.notifier?.eventsFor("push", {
      repository,
      mediaType: manifest.mediaType,
      digest: digest.value,
      size: bytes.length,
      ...(tag !== undefined ? { tag } : {}),
    });
    const missing = limits
      ? await this.ctx.metadata
          .putManifestWithin(repository, record, tag, limits, events)
          .catch((error: unknown) => {
            throw this.policies.refused(error, repository);
          })
      : await this.ctx.metadata.putManifest(repository, record, tag, events);
    if (missing.length > 0) throw missingReferencesError(missing);
    this.cache.set(digest.value, bytes);
    return { digest, subject: manifest.subject?.value };
  }

  async head(repository: string, reference: Reference): Promise<ManifestRecord> {
    const { metadata } = this.ctx;
    // A proxied repository first fetches or re-validates the manifest upstream, then reads as usual.
    if (this.pullThrough?.handles(repository)) await this.pullThrough.ensureManifest(repository, reference);
    const record =
      reference.kind === "tag"
        ? await metadata.getTaggedManifest(repository, reference.tag)
        : await metadata.getManifest(repository, reference.digest.value);
    if (!record)
      throw new RegistryError("MANIFEST_UNKNOWN", undefined, { detail: { reference: describe(reference) } });
    return record;
  }

  async get(repository: string, reference: Reference): Promise<{ record: ManifestRecord; bytes: Buffer }> {
    const record = await this.head(repository, reference);
    const bytes = await this.bytes(record.digest);
    this.ctx.notifier?.recordPull({
      repository,
      mediaType: record.mediaType,
      digest: record.digest,
      size: record.size,
      ...(reference.kind === "tag" ? { tag: reference.tag } : {}),
    });
    return { record, bytes };
  }

  async bytes(digest: string): Promise<Buffer> {
    const cached = this.cache.get(digest);
    if (cached) return cached;
    const bytes = await this.ctx.blobStore.readBlobBytes(parseDigest(digest));
    this.cache.set(digest, bytes);
    return bytes;
  }

  /** By tag: removes only the tag. By digest: the manifest and every tag pointing at it. */
  async delete(repository: string, reference: Reference): Promise<void> {
    const { metadata, config } = this.ctx;
    if (!config.deletes.enabled) throw deletesDisabled();
    if (!(await metadata.repositoryExists(repository))) {
      throw new RegistryError("NAME_UNKNOWN", undefined, { detail: { name: repository } });
    }
    // Immutable tags cannot be deleted, nor the manifests they point at.
    if (reference.kind === "tag") this.policies.checkTagDelete(repository, reference.tag);
    const isImmutable = this.policies.immutableTagPredicate(repository);
    const digestEvents =
      reference.kind === "digest"
        ? this.ctx.notifier?.eventsFor("delete", { repository, digest: reference.digest.value })
        : undefined;
    const deleted =
      reference.kind === "tag"
        ? await metadata.deleteTag(
            repository,
            reference.tag,
            this.ctx.notifier?.eventsFor("delete", { repository, tag: reference.tag }),
          )
        : isImmutable
          ? await metadata
              .deleteManifestUnlessTagged(repository, reference.digest.value, isImmutable, digestEvents)
              .catch((error: unknown) => {
                throw this.policies.refused(error, repository, "delete");
              })
          : await metadata.deleteManifest(repository, reference.digest.value, digestEvents);
    if (!deleted)
      throw new RegistryError("MANIFEST_UNKNOWN", undefined, { detail: { reference: describe(reference) } });
  }
}

function missingReferencesError(missing: MissingReference[]): RegistryError {
  const wrongSize = missing.find((m) => m.actualSize !== undefined);
  if (wrongSize) {
    return new RegistryError("MANIFEST_INVALID", `descriptor size does not match ${wrongSize.digest}`, {
      detail: { digest: wrongSize.digest, size: wrongSize.actualSize },
    });
  }
  return new RegistryError(
    "MANIFEST_BLOB_UNKNOWN",
    `manifest references ${missing.length} unknown blob(s) or manifest(s)`,
    {
      detail: missing.map((m) => ({ digest: m.digest, kind: m.kind })),
    },
  );
}

function describe(reference: Reference): string {
  return reference.kind === "tag" ? reference.tag : reference.digest.value;
}
