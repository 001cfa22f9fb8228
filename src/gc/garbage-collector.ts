import type { Logger } from "pino";
import type { BerthConfig } from "../config/config.js";
import type { GcRemovalEvents } from "../events/removals.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import { recordGcRun } from "../observability/metrics.js";
import { parseDigest } from "../oci/digest.js";
import type { BlobStore } from "../storage/blob-store.js";
import { type GcEvent, GcEvents } from "./events.js";
import { planRepository } from "./plan.js";

/**
 * Online garbage collection: runs while pushes and pulls go on (DESIGN.md invariant 6).
 *
 * What goes, all of it only once unreferenced for longer than the grace period:
 * 1. per repository, manifests the rules allow (src/gc/plan.ts), then blob links no remaining manifest
 *    of the repository references;
 * 2. blob rows no repository links and no manifest names, with their bytes;
 * 3. bytes in the store no blob row names (a crash between publishing and recording), and store
 *    leftovers (S3 data objects no link names);
 * 4. upload sessions idle past `limits.uploadIdleSeconds`, and upload scratch no session owns.
 *
 * Why a concurrent push cannot lose content (the races):
 * - Manifests and links. Each deletion is decided inside one metadata transaction that re-checks the
 *   rule (no tag, no referencing index, not referenced, older than the grace period). SQLite has one
 *   writer at a time; on PostgreSQL GC holds the repository's advisory lock exclusively while every write
 *   that adds a pointer into the repository holds it shared. So a putManifest either commits first (GC's
 *   check sees its tag or reference and keeps the target) or runs after the delete, finds the reference
 *   missing and answers MANIFEST_BLOB_UNKNOWN, with nothing written; the client pushes the blob again.
 *   Pushing or mounting a blob refreshes its link's time, so a re-pushed blob gets a full grace period.
 * - Bytes. A push pins the digest (metadata.pinBlob) before it publishes bytes (commitUpload, putBlob)
 *   and records the blob after. GC deletes bytes only after tombstoning the digest in a transaction that
 *   re-checks "no row, or an unreferenced row older than the grace period, and no pin within it" and
 *   deletes the row. The pin and the tombstone share one row, so they serialise: a pin that came first
 *   makes GC skip the digest; a pin that comes later waits until GC has deleted the bytes and cleared the
 *   tombstone, then the push publishes the bytes afresh. A mount (linkBlob) needs the blob row, which the
 *   tombstoning transaction deleted. A pass interrupted between tombstone and delete leaves tombstones
 *   that the next pass finishes first; until then pushes of those digests wait, then answer 503.
 * The grace period must exceed the time from a pin to its record (a commit: seconds) and the time a
 * client takes between pushing a blob and the manifest that references it.
 */
export interface GcOptions {
  /** Only what has been unreferenced for longer than this is removed. */
  graceMs: number;
  deleteUntagged: boolean;
  deleteOrphanReferrers: boolean;
  /** Upload sessions idle longer than this are removed with their scratch bytes. */
  uploadIdleMs: number;
  /** Report what would go, remove nothing. */
  dryRun: boolean;
}

export function gcOptionsFrom(config: BerthConfig, overrides: Partial<GcOptions> = {}): GcOptions {
  return {
    graceMs: config.gc.graceSeconds * 1000,
    deleteUntagged: config.gc.deleteUntagged,
    deleteOrphanReferrers: config.gc.deleteOrphanReferrers,
    uploadIdleMs: config.limits.uploadIdleSeconds * 1000,
    dryRun: config.gc.dryRun,
    ...overrides,
  };
}

export interface GcProgress {
  /** A new phase begins; `total` when known. */
  phase(name: string, total?: number): void;
  advance(count?: number): void;
}

export interface GcSummary {
  dryRun: boolean;
  repositories: number;
  manifests: number;
  manifestBytes: number;
  links: number;
  blobs: number;
  blobBytes: number;
  uploads: number;
  leftovers: number;
  leftoverBytes: number;
  durationMs: number;
}

/** Rows each metadata call handles at most, so one transaction never holds the writer for long. */
const batchSize = 200;
/** Blob deletes in flight at once. */
const deleteConcurrency = 8;

export class GarbageCollector {
  readonly events: GcEvents;
  private running: Promise<GcSummary> | undefined;

  constructor(
    private readonly metadata: MetadataStore,
    private readonly blobStore: BlobStore,
    private readonly options: GcOptions,
    logger: Logger,
    events?: GcEvents,
  ) {
    this.events = events ?? new GcEvents(logger);
  }

  /** Webhook events of removals, written in the removing transactions; none until set. */
  private removalEvents: GcRemovalEvents | undefined;

  /** Makes every later removal of a manifest or a repository link an outbox event (webhooks). */
  reportRemovalsTo(events: GcRemovalEvents | undefined): void {
    this.removalEvents = events;
  }

  /** Resolves once no pass is running. */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /** One pass; a second call while a pass is running gets that pass's result. */
  run(progress?: GcProgress): Promise<GcSummary> {
    this.running ??= this.pass(progress)
      .then(
        (summary) => {
          if (!summary.dryRun)
            recordGcRun({ ok: true, removed: removedCounts(summary), removedBytes: freedBytes(summary) });
          return summary;
        },
        (error: unknown) => {
          recordGcRun({ ok: false });
          throw error;
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async pass(progress: GcProgress | undefined): Promise<GcSummary> {
    const started = Date.now();
    const { dryRun } = this.options;
    const before = started - this.options.graceMs;
    const summary: GcSummary = {
      dryRun,
      repositories: 0,
      manifests: 0,
      manifestBytes: 0,
      links: 0,
      blobs: 0,
      blobBytes: 0,
      uploads: 0,
      leftovers: 0,
      leftoverBytes: 0,
      durationMs: 0,
    };
    const emit = (event: Omit<GcEvent, "dryRun">) => {
      this.events.emit({ ...event, dryRun });
      switch (event.action) {
        case "manifest.deleted":
          summary.manifests++;
          summary.manifestBytes += event.size ?? 0;
          break;
        case "blob.unlinked":
          summary.links++;
          break;
        case "blob.deleted":
          summary.blobs++;
          summary.blobBytes += event.size ?? 0;
          break;
        case "upload.deleted":
          summary.uploads++;
          break;
        case "leftover.deleted":
          summary.leftovers++;
          summary.leftoverBytes += event.size ?? 0;
          break;
      }
    };

    if (!dryRun) await this.finishTombstones(before);

    // 1. Manifests and links, repository by repository. In a dry run, what each repository would lose is
    // remembered, to tell which blobs would lose their last reference.
    const wouldLose = new Map<string, Set<string>>();
    progress?.phase("repositories");
    const rules = {
      before,
      untagged: this.options.deleteUntagged,
      orphanReferrers: this.options.deleteOrphanReferrers,
    };
    let last: string | undefined;
    for (;;) {
      const repositories = await this.metadata.listRepositories(batchSize, last);
      for (const repository of repositories) {
        summary.repositories++;
        const snapshot = await this.metadata.gcRepositorySnapshot(repository);
        if (!snapshot) continue;
        const plan = planRepository(snapshot, rules);
        if (dryRun) {
          for (const m of plan.manifests) {
            emit({
              action: "manifest.deleted",
              repository,
              digest: m.digest,
              mediaType: m.mediaType,
              size: m.size,
              reason: m.reason,
            });
            remember(wouldLose, m.digest, repository);
          }
          for (const link of plan.links) {
            emit({
              action: "blob.unlinked",
              repository,
              digest: link.digest,
              size: link.size,
              reason: "unreferenced",
            });
            remember(wouldLose, link.digest, repository);
          }
        } else {
          const candidates = plan.manifests.map((m) => m.digest);
          for (let i = 0; i < candidates.length; i += batchSize) {
            const deleted = await this.metadata.gcDeleteManifests(
              repository,
              candidates.slice(i, i + batchSize),
              rules,
              this.removalEvents && ((deleted) => this.removalEvents?.manifests(repository, deleted)),
            );
            for (const m of deleted)
              emit({
                action: "manifest.deleted",
                repository,
                digest: m.digest,
                mediaType: m.mediaType,
                size: m.size,
                reason: m.reason,
              });
          }
          // The plan's links already leave out what the planned deletions freed; should fewer manifests have
          // gone, the unlink re-checks the references and keeps what one still names.
          const links = plan.links;
          for (let i = 0; i < links.length; i += batchSize) {
            const digests = links.slice(i, i + batchSize).map((l) => l.digest);
            const unlinked = await this.metadata.gcUnlinkBlobs(
              repository,
              digests,
              before,
              this.removalEvents && ((links) => this.removalEvents?.links(repository, links)),
            );
            for (const link of unlinked)
              emit({
                action: "blob.unlinked",
                repository,
                digest: link.digest,
                size: link.size,
                reason: "unreferenced",
              });
          }
        }
        progress?.advance();
      }
      if (repositories.length < batchSize) break;
      last = repositories[repositories.length - 1];
    }

    // 2. Blob rows nothing references, with their bytes.
    progress?.phase("blobs");
    let after = "";
    for (;;) {
      const unreferenced = await this.metadata.gcUnreferencedBlobs(before, after, batchSize);
      if (unreferenced.length === 0) break;
      after = unreferenced[unreferenced.length - 1]?.digest ?? after;
      if (dryRun) {
        for (const blob of unreferenced)
          emit({ action: "blob.deleted", digest: blob.digest, size: blob.size, reason: "unreferenced" });
      } else {
        for (const blob of await this.deleteBytes(
          unreferenced.map((b) => b.digest),
          before,
        ))
          emit({ action: "blob.deleted", digest: blob.digest, size: blob.size, reason: "unreferenced" });
      }
      progress?.advance(unreferenced.length);
      if (unreferenced.length < batchSize) break;
    }
    if (dryRun) {
      for (const [digest, repositories] of wouldLose) {
        const usage = await this.metadata.contentUsage(digest);
        if (usage.every((u) => repositories.has(u.repository))) {
          const size = await this.blobStore.statBlob(parseDigest(digest)).catch(() => undefined);
          emit({
            action: "blob.deleted",
            digest,
            ...(size !== undefined ? { size } : {}),
            reason: "unreferenced",
          });
        }
      }
    }

    // 3. Bytes no blob row names, and store leftovers.
    progress?.phase("store");
    let batch: { digest: string; size: number | undefined }[] = [];
    const sweepStore = async () => {
      const recorded = await this.metadata.gcRecordedBlobs(batch.map((b) => b.digest));
      const orphans = batch.filter((b) => !recorded.has(b.digest));
      batch = [];
      if (dryRun) {
        for (const orphan of orphans)
          emit({
            action: "blob.deleted",
            digest: orphan.digest,
            ...(orphan.size !== undefined ? { size: orphan.size } : {}),
            reason: "not-recorded",
          });
        return;
      }
      for (const blob of await this.deleteBytes(
        orphans.map((o) => o.digest),
        before,
      ))
        emit({
          action: "blob.deleted",
          digest: blob.digest,
          ...(blob.size !== undefined ? { size: blob.size } : {}),
          reason: "not-recorded",
        });
    };
    for await (const stored of this.blobStore.listBlobs()) {
      progress?.advance();
      if (stored.modifiedAt >= before) continue;
      batch.push({ digest: stored.digest.value, size: stored.size });
      if (batch.length >= batchSize) await sweepStore();
    }
    if (batch.length > 0) await sweepStore();
    for (const leftover of (await this.blobStore.collectLeftovers?.(before, dryRun)) ?? [])
      emit({
        action: "leftover.deleted",
        digest: leftover.key,
        size: leftover.size,
        reason: "unlinked-data",
      });

    // 4. Idle upload sessions and scratch no session owns.
    progress?.phase("uploads");
    const idleBefore = started - this.options.uploadIdleMs;
    for (;;) {
      const idle = await this.metadata.listIdleUploadSessions(idleBefore, dryRun ? 100_000 : batchSize);
      for (const session of idle) {
        if (!dryRun) {
          // A PATCH racing this finds its session or its bytes gone and answers BLOB_UPLOAD_UNKNOWN.
          await this.metadata.deleteUploadSession(session.id);
          await this.blobStore.deleteUpload(session.id);
        }
        emit({
          action: "upload.deleted",
          repository: session.repository,
          digest: session.id,
          size: session.receivedBytes,
          reason: "idle",
        });
      }
      if (dryRun || idle.length < batchSize) break;
    }
    for await (const upload of this.blobStore.listUploads()) {
      // Scratch is created just before its session: only old scratch without a session is a leftover.
      if (upload.modifiedAt >= before || (await this.metadata.getUploadSession(upload.id))) continue;
      if (!dryRun) await this.blobStore.deleteUpload(upload.id);
      emit({ action: "upload.deleted", digest: upload.id, reason: "no-session" });
    }

    if (!dryRun) await this.metadata.gcPrunePins(before);
    summary.durationMs = Date.now() - started;
    return summary;
  }

  /** Tombstone, delete the bytes, clear the tombstone; returns what was deleted. */
  private async deleteBytes(digests: string[], before: number): Promise<{ digest: string; size?: number }[]> {
    const tombstoned = await this.metadata.gcTombstoneBlobs(digests, before, Date.now());
    const deleted: { digest: string; size?: number }[] = [];
    // A few deletes at a time: each waits on the disk or the network, and pushes of these digests wait too.
    let next = 0;
    const worker = async () => {
      for (let blob = tombstoned[next++]; blob !== undefined; blob = tombstoned[next++]) {
        const digest = parseDigest(blob.digest);
        const size = blob.size ?? (await this.blobStore.statBlob(digest));
        await this.blobStore.deleteBlob(digest);
        deleted.push(size !== undefined ? { digest: blob.digest, size } : { digest: blob.digest });
      }
    };
    await Promise.all(Array.from({ length: deleteConcurrency }, worker));
    await this.metadata.gcClearTombstones(tombstoned.map((b) => b.digest));
    return deleted;
  }

  /**
   * Tombstones an interrupted pass left: their rows are gone already, only the bytes remain to delete.
   * Only those older than the grace period: a pass running elsewhere clears its own within seconds, and
   * clearing one early would let a push publish bytes that pass is about to delete.
   */
  private async finishTombstones(before: number): Promise<void> {
    for (;;) {
      const digests = await this.metadata.gcListTombstones(before, batchSize);
      if (digests.length === 0) return;
      for (const digest of digests) await this.blobStore.deleteBlob(parseDigest(digest));
      await this.metadata.gcClearTombstones(digests);
      if (digests.length < batchSize) return;
    }
  }
}

function remember(map: Map<string, Set<string>>, digest: string, repository: string): void {
  const set = map.get(digest) ?? new Set<string>();
  set.add(repository);
  map.set(digest, set);
}

/** What a pass removed, by kind, for the berth_gc_removed_total metric. */
function removedCounts(summary: GcSummary): Record<string, number> {
  return {
    manifest: summary.manifests,
    link: summary.links,
    blob: summary.blobs,
    upload: summary.uploads,
    leftover: summary.leftovers,
  };
}

/** Bytes freed in the store: blobs (manifests' bytes are blobs too) and leftovers no blob named. */
function freedBytes(summary: GcSummary): number {
  return summary.blobBytes + summary.leftoverBytes;
}
