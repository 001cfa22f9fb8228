import Database from "better-sqlite3";
import type { DigestAlgorithm } from "../../oci/digest.js";
import type { ManifestReference } from "../../oci/manifest.js";
import type {
  DanglingPointer,
  GcBlob,
  GcDeletedManifest,
  GcManifestRules,
  GcRepositorySnapshot,
  ManifestRecord,
  MetadataStore,
  MissingReference,
  NewManifest,
  NewOutboxEvent,
  NewUploadSession,
  OutboxEvent,
  RepositorySummary,
  TagDetail,
  UploadSession,
} from "../metadata-store.js";
import {
  LimitViolationError,
  type RepositoryUsage,
  type TagRecord,
  type WriteLimits,
} from "../write-limits.js";
import { GcStatements } from "./gc-statements.js";
import { GroupCommit } from "./group-commit.js";
import { migrations } from "./schema.js";

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string | null;
  created_at: number;
}

interface UploadRow {
  id: string;
  repository: string;
  received_bytes: number;
  hash_algorithm: string;
  started_at: number;
  updated_at: number;
}

const manifestColumns =
  "m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations, m.created_at";

const tagDetailColumns = "t.name, t.updated_at, m.digest, m.media_type, m.size, m.artifact_type";

interface TagDetailRow {
  name: string;
  updated_at: number;
  digest: string;
  media_type: string;
  size: number;
  artifact_type: string | null;
}

/**
 * MetadataStore on an embedded SQLite database (better-sqlite3). Calls are synchronous underneath;
 * each public method is one statement or one transaction, so a crash leaves either all of a change or none.
 */
export class SqliteMetadataStore implements MetadataStore {
  private readonly db: Database.Database;
  private readonly statements: ReturnType<typeof prepareStatements>;
  private readonly groupCommit: GroupCommit | undefined;
  /** Writes through this connection, which SQLite's data_version does not count. */
  private writes = 0;
  /** Each multi-statement write, wrapped once as an IMMEDIATE transaction rather than on every call. */
  private readonly transactions: ReturnType<SqliteMetadataStore["wrapTransactions"]>;
  /** gc: statements and transactions of garbage collection, scrub and fsck. */
  private readonly gc: GcStatements;

  constructor(path: string, options: { synchronous: "full" | "normal" }) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    // NORMAL: commits reach the WAL without an fsync on the event loop; with "full", GroupCommit then
    // flushes the WAL off the event loop before any write is acknowledged.
    this.db.pragma("synchronous = NORMAL");
    this.groupCommit = options.synchronous === "full" ? new GroupCommit(`${path}-wal`) : undefined;
    // Another process (a CLI command) may hold the write lock briefly.
    this.db.pragma("busy_timeout = 5000");
    migrate(this.db);
    this.statements = prepareStatements(this.db);
    this.transactions = this.wrapTransactions();
    this.gc = new GcStatements(
      this.db,
      (id, digest) => this.deleteManifestTransaction(id, digest, undefined),
      (events) => this.appendEventRows(events),
    );
  }

  private wrapTransactions() {
    return {
      linkBlob: this.db.transaction(this.linkBlobTransaction).immediate,
      recordBlob: this.db.transaction(this.recordBlobTransaction).immediate,
      putManifest: this.db.transaction(this.putManifestTransaction).immediate,
      deleteManifest: this.db.transaction(this.deleteManifestTransaction).immediate,
      // observe: a one-statement change plus its events.
      changeWithEvents: this.db.transaction((change: () => boolean, events: NewOutboxEvent[]) => {
        const changed = change();
        if (changed) this.appendEventRows(events);
        return changed;
      }).immediate,
      claimEvents: this.db.transaction(this.claimEventsTransaction).immediate,
    };
  }

  private repositoryId(name: string): number | undefined {
    const row = this.statements.repositoryId.get(name) as { id: number } | undefined;
    return row?.id;
  }

  private ensureRepository(name: string, now: number): number {
    const id = this.repositoryId(name);
    if (id !== undefined) return id;
    return Number(this.statements.insertRepository.run(name, now).lastInsertRowid);
  }

  async getRepositoryBlob(repository: string, digest: string): Promise<{ size: number } | undefined> {
    return this.statements.repositoryBlob.get(repository, digest) as { size: number } | undefined;
  }

  async repositoriesWithBlob(digest: string, limit: number): Promise<string[]> {
    return (this.statements.repositoriesWithBlob.all(digest, limit) as { name: string }[]).map((r) => r.name);
  }

  private readonly linkBlobTransaction = (repository: string, digest: string, now: number): boolean => {
    if (!this.statements.blobExists.get(digest)) return false;
    const id = this.ensureRepository(repository, now);
    this.statements.linkBlob.run(id, digest, now);
    return true;
  };

  async linkBlob(repository: string, digest: string): Promise<boolean> {
    return this.durable(this.transactions.linkBlob(repository, digest, Date.now()));
  }

  private readonly recordBlobTransaction = (
    repository: string,
    digest: string,
    size: number,
    uploadId: string | undefined,
    now: number,
    events: NewOutboxEvent[] | undefined,
  ): void => {
    this.statements.insertBlob.run(digest, size, now);
    this.statements.linkBlob.run(this.ensureRepository(repository, now), digest, now);
    if (uploadId !== undefined) this.statements.deleteUpload.run(uploadId);
    this.appendEventRows(events);
  };

  async recordBlob(
    repository: string,
    digest: string,
    size: number,
    uploadId?: string,
    events?: NewOutboxEvent[],
  ): Promise<void> {
    this.transactions.recordBlob(repository, digest, size, uploadId, Date.now(), events);
    await this.durable(undefined);
  }

  async unlinkBlob(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean> {
    const id = this.repositoryId(repository);
    if (id === undefined) return false;
    const unlink = () => this.statements.unlinkBlob.run(id, digest).changes > 0;
    return this.durable(events?.length ? this.transactions.changeWithEvents(unlink, events) : unlink());
  }

  async createUploadSession(session: NewUploadSession, limit: number): Promise<boolean> {
    const inserted = this.statements.insertUpload.run(
      session.id,
      session.repository,
      session.hashAlgorithm,
      session.now,
      session.now,
      limit,
    );
    // Not waited for: a session lost to a power cut only makes the client start its upload again
    // (BLOB_UPLOAD_UNKNOWN), and the wait would cost every blob push one disk flush.
    return this.changed(inserted.changes === 1);
  }

  async countUploadSessions(): Promise<number> {
    return (this.statements.countUploads.get() as { count: number }).count;
  }

  async getUploadSession(id: string): Promise<UploadSession | undefined> {
    const row = this.statements.getUpload.get(id) as UploadRow | undefined;
    return row && toUploadSession(row);
  }

  async advanceUploadSession(
    id: string,
    from: number,
    to: number,
    now: number,
    durable: boolean,
  ): Promise<boolean> {
    const advanced = this.statements.advanceUpload.run(to, now, id, from).changes === 1;
    return durable ? this.durable(advanced) : this.changed(advanced);
  }

  async deleteUploadSession(id: string): Promise<void> {
    this.statements.deleteUpload.run(id);
    await this.durable(undefined);
  }

  async listIdleUploadSessions(before: number, limit: number): Promise<UploadSession[]> {
    return (this.statements.idleUploads.all(before, limit) as UploadRow[]).map(toUploadSession);
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    const row = this.statements.manifestByDigest.get(repository, digest) as ManifestRow | undefined;
    return row && toManifestRecord(row);
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    const row = this.statements.manifestByTag.get(repository, tag) as ManifestRow | undefined;
    return row && toManifestRecord(row);
  }

  private findMissing(id: number | undefined, references: ManifestReference[]): MissingReference[] {
    const missing: MissingReference[] = [];
    for (const reference of references) {
      if (reference.kind === "manifest") {
        const found =
          id === undefined
            ? undefined
            : (this.statements.manifestSize.get(id, reference.digest.value) as { size: number } | undefined);
        if (!found) missing.push({ digest: reference.digest.value, kind: reference.kind });
        else if (found.size !== reference.size)
          missing.push({ digest: reference.digest.value, kind: reference.kind, actualSize: found.size });
      } else {
        const found =
          id === undefined
            ? undefined
            : (this.statements.linkedBlobSize.get(id, reference.digest.value) as
                | { size: number }
                | undefined);
        if (!found) missing.push({ digest: reference.digest.value, kind: reference.kind });
        else if (found.size !== reference.size)
          missing.push({ digest: reference.digest.value, kind: reference.kind, actualSize: found.size });
      }
    }
    return missing;
  }

  async missingReferences(repository: string, references: ManifestReference[]): Promise<MissingReference[]> {
    return this.findMissing(this.repositoryId(repository), references);
  }

  private readonly putManifestTransaction = (
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    events: NewOutboxEvent[] | undefined,
  ): MissingReference[] => {
    const id = this.repositoryId(repository);
    const missing = manifest.referencesFetchedOnDemand ? [] : this.findMissing(id, manifest.references);
    if (missing.length > 0) return missing;
    const repositoryId = id ?? this.ensureRepository(repository, manifest.now);
    this.statements.insertBlob.run(manifest.digest, manifest.size, manifest.now);
    const inserted = this.statements.insertManifest.run(
      repositoryId,
      manifest.digest,
      manifest.mediaType,
      manifest.artifactType ?? null,
      manifest.size,
      manifest.subject ?? null,
      manifest.annotations ? JSON.stringify(manifest.annotations) : null,
      manifest.now,
    );
    if (inserted.changes > 0) {
      for (const reference of manifest.references) {
        this.statements.insertReference.run(
          repositoryId,
          manifest.digest,
          reference.digest.value,
          reference.kind,
        );
      }
    }
    if (tag !== undefined) this.statements.upsertTag.run(repositoryId, tag, manifest.digest, manifest.now);
    this.appendEventRows(events);
    return [];
  };

  async putManifest(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]> {
    return this.durable(this.transactions.putManifest(repository, manifest, tag, events));
  }

  async deleteManifest(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean> {
    const id = this.repositoryId(repository);
    if (id === undefined) return false;
    return this.durable(this.transactions.deleteManifest(id, digest, events));
  }

  private readonly deleteManifestTransaction = (
    id: number,
    digest: string,
    events: NewOutboxEvent[] | undefined,
  ): boolean => {
    const deleted = this.statements.deleteManifest.run(id, digest).changes > 0;
    if (deleted) {
      this.statements.deleteTagsOfManifest.run(id, digest);
      this.statements.deleteReferences.run(id, digest);
      this.appendEventRows(events);
    }
    return deleted;
  };

  async deleteTag(repository: string, tag: string, events?: NewOutboxEvent[]): Promise<boolean> {
    const id = this.repositoryId(repository);
    if (id === undefined) return false;
    const remove = () => this.statements.deleteTag.run(id, tag).changes > 0;
    return this.durable(events?.length ? this.transactions.changeWithEvents(remove, events) : remove());
  }

  // observe: notification outbox.
  private appendEventRows(events: NewOutboxEvent[] | undefined): void {
    for (const event of events ?? [])
      this.statements.insertEvent.run(event.endpoint, event.payload, event.createdAt, event.createdAt);
  }

  async appendEvents(events: NewOutboxEvent[]): Promise<void> {
    if (events.length === 0) return;
    this.transactions.changeWithEvents(() => true, events);
    await this.durable(undefined);
  }

  private readonly claimEventsTransaction = (
    endpoint: string,
    limit: number,
    now: number,
    leaseMs: number,
  ): OutboxEvent[] => {
    const rows = this.statements.dueEvents.all(endpoint, now, limit) as OutboxRow[];
    for (const row of rows) this.statements.leaseEvent.run(now + leaseMs, row.id);
    return rows.map(toOutboxEvent);
  };

  async claimEvents(endpoint: string, limit: number, now: number, leaseMs: number): Promise<OutboxEvent[]> {
    // Not waited for: a lease lost to a power cut only means the events are delivered once more.
    return this.changed(this.transactions.claimEvents(endpoint, limit, now, leaseMs));
  }

  async ackEvents(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    this.statements.ackEvents.run(JSON.stringify(ids));
    this.changed(undefined);
  }

  async retryEvents(ids: number[], availableAt: number): Promise<void> {
    if (ids.length === 0) return;
    this.statements.retryEvents.run(availableAt, JSON.stringify(ids));
    this.changed(undefined);
  }

  async trimEvents(endpoint: string, keep: number): Promise<number> {
    return this.changed(this.statements.trimEvents.run(endpoint, endpoint, keep).changes);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return this.repositoryId(repository) !== undefined;
  }

  async listTags(repository: string, limit: number, last: string | undefined): Promise<string[] | undefined> {
    const id = this.repositoryId(repository);
    if (id === undefined) return undefined;
    const rows =
      last === undefined
        ? this.statements.listTags.all(id, limit)
        : this.statements.listTagsAfter.all(id, last, last, last, limit);
    return (rows as { name: string }[]).map((r) => r.name);
  }

  async listRepositories(limit: number, last: string | undefined): Promise<string[]> {
    const rows = this.statements.listRepositories.all(last ?? "", limit) as { name: string }[];
    return rows.map((r) => r.name);
  }

  async listReferrers(
    repository: string,
    subject: string,
    options: { artifactType?: string; limit: number; last?: string },
  ): Promise<ManifestRecord[]> {
    const rows = (
      options.artifactType === undefined
        ? this.statements.referrers.all(repository, subject, options.last ?? "", options.limit)
        : this.statements.referrersOfType.all(
            repository,
            subject,
            options.artifactType,
            options.last ?? "",
            options.limit,
          )
    ) as ManifestRow[];
    return rows.map(toManifestRecord);
  }

  async searchRepositories(
    query: string,
    limit: number,
    last: string | undefined,
  ): Promise<RepositorySummary[]> {
    const rows = this.statements.searchRepositories.all(last ?? "", query, limit) as {
      name: string;
      tag_count: number;
      updated_at: number;
    }[];
    return rows.map((r) => ({ name: r.name, tagCount: r.tag_count, updatedAt: r.updated_at }));
  }

  async listTagDetails(
    repository: string,
    limit: number,
    last: string | undefined,
  ): Promise<TagDetail[] | undefined> {
    const id = this.repositoryId(repository);
    if (id === undefined) return undefined;
    const rows =
      last === undefined
        ? this.statements.tagDetails.all(id, limit)
        : this.statements.tagDetailsAfter.all(id, last, last, last, limit);
    return (rows as TagDetailRow[]).map(toTagDetail);
  }

  // gc: garbage collection, scrub and fsck; the SQL lives in gc-statements.ts.

  async pinBlob(digest: string, now: number): Promise<boolean> {
    // Not waited for: a pin lost to a power cut belongs to a push that was not acknowledged either.
    return this.changed(this.gc.pin(digest, now));
  }

  async gcRepositorySnapshot(repository: string): Promise<GcRepositorySnapshot | undefined> {
    const id = this.repositoryId(repository);
    return id === undefined ? undefined : this.gc.snapshot(id);
  }

  async gcDeleteManifests(
    repository: string,
    candidates: string[],
    rules: GcManifestRules,
    eventsFor?: (deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcDeletedManifest[]> {
    const id = this.repositoryId(repository);
    if (id === undefined || candidates.length === 0) return [];
    return this.durable(this.gc.deleteManifests(id, candidates, rules, eventsFor));
  }

  async gcUnlinkBlobs(
    repository: string,
    digests: string[],
    before: number,
    eventsFor?: (unlinked: GcBlob[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcBlob[]> {
    const id = this.repositoryId(repository);
    if (id === undefined || digests.length === 0) return [];
    return this.durable(this.gc.unlinkBlobs(id, digests, before, eventsFor));
  }

  async gcUnreferencedBlobs(before: number, after: string, limit: number): Promise<GcBlob[]> {
    return this.gc.unreferencedBlobs(before, after, limit);
  }

  async gcRecordedBlobs(digests: string[]): Promise<Set<string>> {
    return this.gc.recordedBlobs(digests);
  }

  async gcTombstoneBlobs(
    digests: string[],
    before: number,
    now: number,
  ): Promise<{ digest: string; size?: number }[]> {
    if (digests.length === 0) return [];
    // Durable before any byte is deleted: after a crash the tombstone tells the next pass to finish the job.
    return this.durable(this.gc.tombstoneBlobs(digests, before, now));
  }

  async gcClearTombstones(digests: string[]): Promise<void> {
    // Not waited for: a clear lost to a power cut leaves a stale tombstone the next pass clears again.
    if (digests.length > 0) this.changed(this.gc.clearTombstones(digests));
  }

  async gcListTombstones(before: number, limit: number): Promise<string[]> {
    return this.gc.tombstones(before, limit);
  }

  async gcPrunePins(before: number): Promise<number> {
    return this.changed(this.gc.prunePins(before));
  }

  async listBlobRecords(after: string, limit: number): Promise<GcBlob[]> {
    return this.gc.blobRecords(after, limit);
  }

  async listManifestRecords(
    after: { repository: string; digest: string } | undefined,
    limit: number,
  ): Promise<{ repository: string; digest: string; size: number; mediaType: string }[]> {
    return this.gc.manifestRecords(after, limit);
  }

  async contentUsage(digest: string): Promise<{ repository: string; tags: string[] }[]> {
    return this.gc.usage(digest);
  }

  async danglingPointers(limit: number): Promise<DanglingPointer[]> {
    return this.gc.dangling(limit);
  }

  async changeToken(): Promise<string | undefined> {
    // data_version moves when another connection (a CLI command, say) commits; it reads shared memory only.
    return `${this.writes}.${this.statements.dataVersion.get() as number}`;
  }

  async ping(): Promise<void> {
    // observe: reads a real table, so a database that lost its file or schema fails the probe.
    this.db.prepare("SELECT 1 FROM schema_migrations LIMIT 1").get();
  }

  /** Waits until the write just committed is on disk, then passes its result on. */
  private async durable<T>(result: T): Promise<T> {
    this.changed(result);
    await this.groupCommit?.durable();
    return result;
  }

  /** Counts a write for the change token without waiting for the disk. */
  private changed<T>(result: T): T {
    this.writes++;
    return result;
  }

  async close(): Promise<void> {
    await this.groupCommit?.close();
    if (this.db.open) this.db.close();
  }

  // --- policies: quotas, immutable tags, retention ---
  // Each check runs inside the IMMEDIATE transaction that writes, which holds SQLite's single write lock:
  // no other writer, in this process or another, can change the counts between the check and the write.

  private policyParts: ReturnType<SqliteMetadataStore["preparePolicy"]> | undefined;
  private get policyStatements() {
    this.policyParts ??= this.preparePolicy();
    return this.policyParts.statements;
  }
  private get policyTransactions() {
    this.policyParts ??= this.preparePolicy();
    return this.policyParts.transactions;
  }

  private preparePolicy() {
    return { statements: preparePolicyStatements(this.db), transactions: this.wrapPolicyTransactions() };
  }

  private wrapPolicyTransactions() {
    return {
      recordBlob: this.db.transaction(
        (
          repository: string,
          digest: string,
          size: number,
          uploadId: string | undefined,
          limits: WriteLimits,
          now: number,
        ) => {
          this.checkBytes(this.repositoryId(repository), digest, size, limits);
          this.recordBlobTransaction(repository, digest, size, uploadId, now, undefined);
        },
      ).immediate,
      linkBlob: this.db.transaction(
        (repository: string, digest: string, limits: WriteLimits, now: number): boolean => {
          const blob = this.policyStatements.blobSize.get(digest) as { size: number } | undefined;
          if (!blob) return false;
          this.checkBytes(this.repositoryId(repository), digest, blob.size, limits);
          return this.linkBlobTransaction(repository, digest, now);
        },
      ).immediate,
      putManifest: this.db.transaction(
        (
          repository: string,
          manifest: NewManifest,
          tag: string | undefined,
          limits: WriteLimits,
        ): MissingReference[] => {
          const id = this.repositoryId(repository);
          const missing = this.findMissing(id, manifest.references);
          if (missing.length > 0) return missing;
          if (tag !== undefined) {
            const current =
              id === undefined
                ? undefined
                : (this.policyStatements.tagDigest.get(id, tag) as { manifest_digest: string } | undefined);
            if (limits.immutableTag && current && current.manifest_digest !== manifest.digest)
              throw new LimitViolationError({
                kind: "immutable-tag",
                tag,
                currentDigest: current.manifest_digest,
              });
            if (limits.maxTags !== undefined && !current) {
              const tagCount = id === undefined ? 0 : this.usage(id).tags;
              if (tagCount + 1 > limits.maxTags)
                throw new LimitViolationError({ kind: "tags", tagCount, maxTags: limits.maxTags });
            }
          }
          this.checkBytes(id, manifest.digest, manifest.size, limits);
          return this.putManifestTransaction(repository, manifest, tag, undefined);
        },
      ).immediate,
      deleteManifest: this.db.transaction(
        (id: number, digest: string, isProtectedTag: (tag: string) => boolean): boolean => {
          const tags = this.policyStatements.tagsOfManifest.all(id, digest) as { name: string }[];
          const kept = tags.find((t) => isProtectedTag(t.name));
          if (kept)
            throw new LimitViolationError({ kind: "immutable-tag", tag: kept.name, currentDigest: digest });
          return this.deleteManifestTransaction(id, digest, undefined);
        },
      ).immediate,
    };
  }

  /** Throws when linking `digest` (of `size` bytes) would take repository `id` past limits.maxBytes. */
  private checkBytes(id: number | undefined, digest: string, size: number, limits: WriteLimits): void {
    if (limits.maxBytes === undefined) return;
    if (id !== undefined && this.policyStatements.holds.get(id, digest, id, digest)) return;
    const usedBytes = id === undefined ? 0 : this.usage(id).bytes;
    if (usedBytes + size > limits.maxBytes)
      throw new LimitViolationError({
        kind: "bytes",
        usedBytes,
        addedBytes: size,
        maxBytes: limits.maxBytes,
      });
  }

  private usage(id: number): RepositoryUsage {
    const row = this.policyStatements.usage.get(id) as RepositoryUsage | undefined;
    return { bytes: row?.bytes ?? 0, tags: row?.tags ?? 0 };
  }

  async recordBlobWithin(
    repository: string,
    digest: string,
    size: number,
    uploadId: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<void> {
    this.withEvents(
      events,
      () => this.policyTransactions.recordBlob(repository, digest, size, uploadId, limits, Date.now()),
      () => true,
    );
    await this.durable(undefined);
  }

  async linkBlobWithin(repository: string, digest: string, limits: WriteLimits): Promise<boolean> {
    return this.durable(this.policyTransactions.linkBlob(repository, digest, limits, Date.now()));
  }

  async putManifestWithin(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]> {
    return this.durable(
      this.withEvents(
        events,
        () => this.policyTransactions.putManifest(repository, manifest, tag, limits),
        (missing) => missing.length === 0,
      ),
    );
  }

  async deleteManifestUnlessTagged(
    repository: string,
    digest: string,
    isProtectedTag: (tag: string) => boolean,
    events?: NewOutboxEvent[],
  ): Promise<boolean> {
    const id = this.repositoryId(repository);
    if (id === undefined) return false;
    return this.durable(
      this.withEvents(
        events,
        () => this.policyTransactions.deleteManifest(id, digest, isProtectedTag),
        (deleted) => deleted,
      ),
    );
  }

  async repositoryUsage(repository: string): Promise<RepositoryUsage> {
    const id = this.repositoryId(repository);
    return id === undefined ? { bytes: 0, tags: 0 } : this.usage(id);
  }

  async listTagRecords(repository: string): Promise<TagRecord[] | undefined> {
    const id = this.repositoryId(repository);
    if (id === undefined) return undefined;
    const rows = this.policyStatements.tagRecords.all(id) as {
      name: string;
      manifest_digest: string;
      updated_at: number;
    }[];
    return rows.map((r) => ({ name: r.name, digest: r.manifest_digest, updatedAt: r.updated_at }));
  }

  async deleteTagIfUnchanged(
    repository: string,
    tag: string,
    digest: string,
    updatedAt: number,
    events?: NewOutboxEvent[],
  ): Promise<boolean> {
    const id = this.repositoryId(repository);
    if (id === undefined) return false;
    return this.durable(
      this.withEvents(
        events,
        () => this.policyStatements.deleteTagIf.run(id, tag, digest, updatedAt).changes > 0,
        (deleted) => deleted,
      ),
    );
  }

  /** Runs a write with its events in one transaction; the events are written only when `changed` says so. */
  private withEvents<T>(
    events: NewOutboxEvent[] | undefined,
    write: () => T,
    changed: (result: T) => boolean,
  ): T {
    if (!events?.length) return write();
    let result: T | undefined;
    this.transactions.changeWithEvents(() => {
      result = write();
      return changed(result);
    }, events);
    return result as T;
  }
}

function preparePolicyStatements(db: Database.Database) {
  return {
    blobSize: db.prepare("SELECT size FROM blobs WHERE digest = ?"),
    tagDigest: db.prepare("SELECT manifest_digest FROM tags WHERE repository_id = ? AND name = ?"),
    tagsOfManifest: db.prepare("SELECT name FROM tags WHERE repository_id = ? AND manifest_digest = ?"),
    // Running totals kept by triggers (schema migration 2).
    usage: db.prepare("SELECT bytes, tags FROM repository_usage WHERE repository_id = ?"),
    holds: db.prepare(
      `SELECT 1 FROM repository_blobs WHERE repository_id = ? AND digest = ?
       UNION ALL SELECT 1 FROM manifests WHERE repository_id = ? AND digest = ? LIMIT 1`,
    ),
    tagRecords: db.prepare("SELECT name, manifest_digest, updated_at FROM tags WHERE repository_id = ?"),
    deleteTagIf: db.prepare(
      "DELETE FROM tags WHERE repository_id = ? AND name = ? AND manifest_digest = ? AND updated_at = ?",
    ),
  };
}

function migrate(db: Database.Database): void {
  db.exec(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
  );
  db.transaction(() => {
    const applied = new Set(
      (db.prepare("SELECT version FROM schema_migrations").all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)").run(
        migration.version,
        Date.now(),
      );
    }
  }).immediate();
}

function prepareStatements(db: Database.Database) {
  return {
    repositoryId: db.prepare("SELECT id FROM repositories WHERE name = ?"),
    dataVersion: db.prepare("PRAGMA data_version").pluck(),
    insertRepository: db.prepare("INSERT INTO repositories (name, created_at) VALUES (?, ?)"),
    blobExists: db.prepare("SELECT 1 FROM blobs WHERE digest = ?"),
    insertBlob: db.prepare("INSERT OR IGNORE INTO blobs (digest, size, created_at) VALUES (?, ?, ?)"),
    // A link pushed or mounted again is fresh again: GC counts its grace period from the last link.
    linkBlob: db.prepare(
      `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)
       ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
    ),
    unlinkBlob: db.prepare("DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ?"),
    repositoryBlob: db.prepare(
      `SELECT b.size FROM repositories r
       JOIN repository_blobs rb ON rb.repository_id = r.id
       JOIN blobs b ON b.digest = rb.digest
       WHERE r.name = ? AND rb.digest = ?`,
    ),
    linkedBlobSize: db.prepare(
      `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
       WHERE rb.repository_id = ? AND rb.digest = ?`,
    ),
    repositoriesWithBlob: db.prepare(
      `SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
       WHERE rb.digest = ? ORDER BY r.name LIMIT ?`,
    ),
    insertUpload: db.prepare(
      `INSERT INTO upload_sessions (id, repository, received_bytes, hash_algorithm, started_at, updated_at)
       SELECT ?, ?, 0, ?, ?, ? WHERE (SELECT count(*) FROM upload_sessions) < ?`,
    ),
    countUploads: db.prepare("SELECT count(*) AS count FROM upload_sessions"),
    getUpload: db.prepare("SELECT * FROM upload_sessions WHERE id = ?"),
    advanceUpload: db.prepare(
      "UPDATE upload_sessions SET received_bytes = ?, updated_at = ? WHERE id = ? AND received_bytes = ?",
    ),
    deleteUpload: db.prepare("DELETE FROM upload_sessions WHERE id = ?"),
    idleUploads: db.prepare("SELECT * FROM upload_sessions WHERE updated_at < ? ORDER BY updated_at LIMIT ?"),
    manifestByDigest: db.prepare(
      `SELECT ${manifestColumns} FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = ? AND m.digest = ?`,
    ),
    manifestByTag: db.prepare(
      `SELECT ${manifestColumns} FROM repositories r
       JOIN tags t ON t.repository_id = r.id
       JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest
       WHERE r.name = ? AND t.name = ?`,
    ),
    manifestSize: db.prepare("SELECT size FROM manifests WHERE repository_id = ? AND digest = ?"),
    insertManifest: db.prepare(
      `INSERT OR IGNORE INTO manifests
       (repository_id, digest, media_type, artifact_type, size, subject_digest, annotations, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    insertReference: db.prepare(
      `INSERT OR IGNORE INTO manifest_references (repository_id, manifest_digest, child_digest, kind)
       VALUES (?, ?, ?, ?)`,
    ),
    upsertTag: db.prepare(
      `INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
       updated_at = excluded.updated_at`,
    ),
    deleteManifest: db.prepare("DELETE FROM manifests WHERE repository_id = ? AND digest = ?"),
    deleteTagsOfManifest: db.prepare("DELETE FROM tags WHERE repository_id = ? AND manifest_digest = ?"),
    deleteReferences: db.prepare(
      "DELETE FROM manifest_references WHERE repository_id = ? AND manifest_digest = ?",
    ),
    deleteTag: db.prepare("DELETE FROM tags WHERE repository_id = ? AND name = ?"),
    insertEvent: db.prepare(
      "INSERT INTO event_outbox (endpoint, payload, attempts, available_at, created_at) VALUES (?, ?, 0, ?, ?)",
    ),
    dueEvents: db.prepare(
      "SELECT * FROM event_outbox WHERE endpoint = ? AND available_at <= ? ORDER BY id LIMIT ?",
    ),
    leaseEvent: db.prepare("UPDATE event_outbox SET available_at = ? WHERE id = ?"),
    ackEvents: db.prepare("DELETE FROM event_outbox WHERE id IN (SELECT value FROM json_each(?))"),
    retryEvents: db.prepare(
      "UPDATE event_outbox SET attempts = attempts + 1, available_at = ? WHERE id IN (SELECT value FROM json_each(?))",
    ),
    trimEvents: db.prepare(
      `DELETE FROM event_outbox WHERE endpoint = ? AND id NOT IN
       (SELECT id FROM event_outbox WHERE endpoint = ? ORDER BY id DESC LIMIT ?)`,
    ),
    listTags: db.prepare("SELECT name FROM tags WHERE repository_id = ? ORDER BY lower(name), name LIMIT ?"),
    listTagsAfter: db.prepare(
      `SELECT name FROM tags WHERE repository_id = ?
       AND (lower(name) > lower(?) OR (lower(name) = lower(?) AND name > ?))
       ORDER BY lower(name), name LIMIT ?`,
    ),
    listRepositories: db.prepare("SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?"),
    searchRepositories: db.prepare(
      `SELECT r.name,
         (SELECT count(*) FROM tags t WHERE t.repository_id = r.id) AS tag_count,
         coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repository_id = r.id), r.created_at) AS updated_at
       FROM repositories r WHERE r.name > ? AND instr(r.name, ?) > 0 ORDER BY r.name LIMIT ?`,
    ),
    tagDetails: db.prepare(
      `SELECT ${tagDetailColumns} FROM tags t
       JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
       WHERE t.repository_id = ? ORDER BY lower(t.name), t.name LIMIT ?`,
    ),
    tagDetailsAfter: db.prepare(
      `SELECT ${tagDetailColumns} FROM tags t
       JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest
       WHERE t.repository_id = ?
       AND (lower(t.name) > lower(?) OR (lower(t.name) = lower(?) AND t.name > ?))
       ORDER BY lower(t.name), t.name LIMIT ?`,
    ),
    referrers: db.prepare(
      `SELECT ${manifestColumns} FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = ? AND m.subject_digest = ? AND m.digest > ? ORDER BY m.digest LIMIT ?`,
    ),
    referrersOfType: db.prepare(
      `SELECT ${manifestColumns} FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = ? AND m.subject_digest = ? AND m.artifact_type = ? AND m.digest > ? ORDER BY m.digest LIMIT ?`,
    ),
  };
}

function toManifestRecord(row: ManifestRow): ManifestRecord {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    size: row.size,
    artifactType: row.artifact_type ?? undefined,
    subject: row.subject_digest ?? undefined,
    annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : undefined,
    createdAt: row.created_at,
  };
}

interface OutboxRow {
  id: number;
  endpoint: string;
  payload: string;
  attempts: number;
  created_at: number;
}

function toOutboxEvent(row: OutboxRow): OutboxEvent {
  return {
    id: row.id,
    endpoint: row.endpoint,
    payload: row.payload,
    attempts: row.attempts,
    createdAt: row.created_at,
  };
}

function toUploadSession(row: UploadRow): UploadSession {
  return {
    id: row.id,
    repository: row.repository,
    receivedBytes: row.received_bytes,
    hashAlgorithm: row.hash_algorithm as DigestAlgorithm,
    startedAt: row.started_at,
    updatedAt: row.updated_at,
  };
}

function toTagDetail(row: TagDetailRow): TagDetail {
  return {
    name: row.name,
    updatedAt: Number(row.updated_at),
    digest: row.digest,
    mediaType: row.media_type,
    size: Number(row.size),
    artifactType: row.artifact_type ?? undefined,
  };
}
