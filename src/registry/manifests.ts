import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { pinForPublish } from "../gc/publish-pin.js";
import type { ManifestRecord, MissingReference } from "../metadata/metadata-store.js";
import { type Digest, digestFromHex, parseDigest } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import { parseManifest } from "../oci/manifest.js";
import type { Reference } from "../oci/reference.js";
import { deletesDisabled } from "./blobs.js";
import type { RegistryContext } from "./context.js";

/** Manifest bytes kept in memory; keyed by digest, so never stale. */
const manifestCacheBytes = 64 * 1024 * 1024;

/** Pushing, pulling and deleting manifests (distribution-spec "Pushing Manifests", "Pulling manifests"). */
export class ManifestService {
  private readonly cache = new LRUCache<string, Buffer>({
    maxSize: manifestCacheBytes,
    sizeCalculation: (bytes) => Math.max(1, bytes.length),
  });

  constructor(private readonly ctx: RegistryContext) {}

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
    // Content before pointers: the bytes are durable before metadata can name them. gc: pinned first, so
    // garbage collection cannot delete the bytes between putBlob and putManifest.
    await pinForPublish(this.ctx.metadata, digest.value);
    await this.ctx.blobStore.putBlob(digest, bytes);
    const missing = await this.ctx.metadata.putManifest(
      repository,
      {
        digest: digest.value,
        mediaType: manifest.mediaType,
        size: bytes.length,
        artifactType: manifest.artifactType,
        subject: manifest.subject?.value,
        annotations: manifest.annotations,
        references: manifest.references,
        now: Date.now(),
      },
      reference.kind === "tag" ? reference.tag : undefined,
    );
    if (missing.length > 0) throw missingReferencesError(missing);
    this.cache.set(digest.value, bytes);
    return { digest, subject: manifest.subject?.value };
  }

  async head(repository: string, reference: Reference): Promise<ManifestRecord> {
    const { metadata } = this.ctx;
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
    return { record, bytes: await this.bytes(record.digest) };
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
    const deleted =
      reference.kind === "tag"
        ? await metadata.deleteTag(repository, reference.tag)
        : await metadata.deleteManifest(repository, reference.digest.value);
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
