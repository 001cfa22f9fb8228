import type { DanglingPointer, MetadataStore } from "../metadata/metadata-store.js";
import type { BlobStore } from "../storage/blob-store.js";
import type { GcProgress } from "./garbage-collector.js";
import { planRepository } from "./plan.js";

/**
 * Whether metadata and the blob store agree. Problems are pointers to content that is not there; the
 * unreferenced content is listed (garbage collection removes it once past the grace period) but is not
 * a problem.
 */
export interface FsckReport {
  problems: (DanglingPointer | { kind: "blob-without-bytes"; digest: string })[];
  unreferenced: {
    /** Bytes in the store no blob row names. */
    notRecorded: string[];
    /** Blob rows no repository links and no manifest names. */
    unreferencedBlobs: string[];
    /** Repository links no manifest of the repository references. */
    unreferencedLinks: { repository: string; digest: string }[];
    /** Upload scratch no session owns. */
    orphanUploads: string[];
  };
  durationMs: number;
}

/** Pointers listed at most; fsck is for finding that something is wrong, not for listing a million rows. */
const listLimit = 10_000;

export async function fsck(
  metadata: MetadataStore,
  blobStore: BlobStore,
  progress?: GcProgress,
  /** Pull-through repositories record manifests before their content arrives: missing references are normal there. */
  fetchesOnDemand: (repository: string) => boolean = () => false,
): Promise<FsckReport> {
  const started = Date.now();
  const dangling = await metadata.danglingPointers(listLimit);
  const report: FsckReport = {
    problems: dangling.filter((p) => !(p.kind === "reference-missing" && fetchesOnDemand(p.repository))),
    unreferenced: { notRecorded: [], unreferencedBlobs: [], unreferencedLinks: [], orphanUploads: [] },
    durationMs: 0,
  };

  progress?.phase("store");
  // A set of what the store holds: one string per blob (about 100 bytes each).
  const stored = new Set<string>();
  for await (const blob of blobStore.listBlobs()) {
    stored.add(blob.digest.value);
    progress?.advance();
  }

  progress?.phase("blobs");
  let after = "";
  const recorded = new Set<string>();
  for (;;) {
    const page = await metadata.listBlobRecords(after, 1000);
    for (const blob of page) {
      recorded.add(blob.digest);
      if (!stored.has(blob.digest)) report.problems.push({ kind: "blob-without-bytes", digest: blob.digest });
      progress?.advance();
    }
    if (page.length < 1000) break;
    after = page[page.length - 1]?.digest ?? after;
  }
  for (const digest of stored) if (!recorded.has(digest)) report.unreferenced.notRecorded.push(digest);

  const now = Date.now() + 1;
  after = "";
  for (;;) {
    const page = await metadata.gcUnreferencedBlobs(now, after, 1000);
    report.unreferenced.unreferencedBlobs.push(...page.map((b) => b.digest));
    if (page.length < 1000) break;
    after = page[page.length - 1]?.digest ?? after;
  }

  progress?.phase("repositories");
  let last: string | undefined;
  for (;;) {
    const repositories = await metadata.listRepositories(1000, last);
    for (const repository of repositories) {
      const snapshot = await metadata.gcRepositorySnapshot(repository);
      if (!snapshot) continue;
      const plan = planRepository(snapshot, { before: now, untagged: false, orphanReferrers: false });
      for (const link of plan.links)
        report.unreferenced.unreferencedLinks.push({ repository, digest: link.digest });
      progress?.advance();
    }
    if (repositories.length < 1000) break;
    last = repositories[repositories.length - 1];
  }

  for await (const upload of blobStore.listUploads()) {
    if (!(await metadata.getUploadSession(upload.id))) report.unreferenced.orphanUploads.push(upload.id);
  }
  report.durationMs = Date.now() - started;
  return report;
}
