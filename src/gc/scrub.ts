import { createHash } from "node:crypto";
import type { MetadataStore } from "../metadata/metadata-store.js";
import { parseDigest } from "../oci/digest.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import type { GcProgress } from "./garbage-collector.js";

/** Content whose bytes are missing or do not hash to their digest, and who is affected. */
export interface ScrubProblem {
  kind: "missing" | "digest-mismatch" | "size-mismatch";
  digest: string;
  expectedSize: number;
  /** Bytes read; absent when missing. */
  actualSize?: number;
  actualDigest?: string;
  /** Repositories that link or hold the content, with the tags that reach it. */
  affected: { repository: string; tags: string[] }[];
}

export interface ScrubReport {
  blobs: number;
  manifests: number;
  bytes: number;
  problems: ScrubProblem[];
  durationMs: number;
}

const pageSize = 500;

/**
 * Re-reads and re-hashes every blob the metadata records (manifests' bytes are blobs too), then checks
 * every manifest record against its bytes. Streams each blob: memory stays flat whatever their size.
 */
export async function scrub(
  metadata: MetadataStore,
  blobStore: BlobStore,
  progress?: GcProgress,
): Promise<ScrubReport> {
  const started = Date.now();
  const report: ScrubReport = { blobs: 0, manifests: 0, bytes: 0, problems: [], durationMs: 0 };
  const reported = new Set<string>();
  const problem = async (found: Omit<ScrubProblem, "affected">) => {
    if (reported.has(found.digest)) return;
    reported.add(found.digest);
    report.problems.push({ ...found, affected: await metadata.contentUsage(found.digest) });
  };
  /** Re-hashes one piece of content and records what is wrong with it; returns the bytes read. */
  const verify = async (digest: string, expectedSize: number): Promise<number> => {
    const checked = await rehash(blobStore, digest);
    if (checked === undefined) {
      await problem({ kind: "missing", digest, expectedSize });
      return 0;
    }
    if (checked.digest !== digest)
      await problem({
        kind: "digest-mismatch",
        digest,
        expectedSize,
        actualSize: checked.size,
        actualDigest: checked.digest,
      });
    else if (checked.size !== expectedSize)
      await problem({ kind: "size-mismatch", digest, expectedSize, actualSize: checked.size });
    return checked.size;
  };

  progress?.phase("blobs", await countBlobs(metadata));
  let after = "";
  for (;;) {
    const page = await metadata.listBlobRecords(after, pageSize);
    for (const blob of page) {
      report.bytes += await verify(blob.digest, blob.size);
      report.blobs++;
      progress?.advance();
    }
    if (page.length < pageSize) break;
    after = page[page.length - 1]?.digest ?? after;
  }

  progress?.phase("manifests");
  let cursor: { repository: string; digest: string } | undefined;
  for (;;) {
    const page = await metadata.listManifestRecords(cursor, pageSize);
    for (const manifest of page) {
      report.manifests++;
      progress?.advance();
      if (reported.has(manifest.digest)) continue;
      await verify(manifest.digest, manifest.size);
    }
    const last = page[page.length - 1];
    if (page.length < pageSize || !last) break;
    cursor = { repository: last.repository, digest: last.digest };
  }
  report.durationMs = Date.now() - started;
  return report;
}

/** The digest (same algorithm) and size of the stored bytes; undefined when the store does not have them. */
async function rehash(
  blobStore: BlobStore,
  value: string,
): Promise<{ digest: string; size: number } | undefined> {
  const digest = parseDigest(value);
  const hash = createHash(digest.algorithm);
  let size = 0;
  try {
    for await (const chunk of await blobStore.readBlob(digest)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (error) {
    if (error instanceof BlobNotFoundError) return undefined;
    throw error;
  }
  return { digest: `${digest.algorithm}:${hash.digest("hex")}`, size };
}

async function countBlobs(metadata: MetadataStore): Promise<number> {
  let count = 0;
  let after = "";
  for (;;) {
    const page = await metadata.listBlobRecords(after, 5000);
    count += page.length;
    if (page.length < 5000) return count;
    after = page[page.length - 1]?.digest ?? after;
  }
}
