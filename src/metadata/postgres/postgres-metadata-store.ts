import pg from "pg";
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
import { lockRepositoryShared, PostgresGc } from "./gc-queries.js";
import { appendEventRows } from "./outbox-rows.js";
import { migrations } from "./schema.js";

export interface PostgresOptions {
  /** libpq connection string, e.g. postgres://user:password@host:5432/database. */
  url: string;
  /** Schema holding berth's tables; created if missing. Several registries may share one database. */
  schema: string;
  /** Connections this instance opens at most. */
  poolSize: number;
}

const schemaGrammar = /^[a-z_][a-z0-9_]{0,62}$/;

interface ManifestRow {
  digest: string;
  media_type: string;
  size: string;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string | null;
  created_at: string;
}

interface UploadRow {
  id: string;
  repository: string;
  received_bytes: string;
  hash_algorithm: string;
  started_at: string;
  updated_at: string;
}

interface TagDetailRow {
  name: string;
  updated_at: string;
  digest: string;
  media_type: string;
  size: string;
  artifact_type: string | null;
}

const manifestColumns =
  "m.digest, m.media_type, m.size, m.artifact_type, m.subject_digest, m.annotations, m.created_at";

type Queryable = pg.Pool | pg.PoolClient;

/**
 * MetadataStore on PostgreSQL, for several berth instances sharing one database. Same semantics as the
 * SQLite store: every method is one statement or one transaction; the checks that must not race (the
 * upload-session limit, a manifest's references) take locks inside their transaction. Nothing is cached
 * in the process, so `changeToken` is undefined: another instance may change anything at any time.
 */
export class PostgresMetadataStore implements MetadataStore {
  /** gc: garbage collection, scrub and fsck queries. */
  private readonly gc: PostgresGc;

  private constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
  ) {
    this.gc = new PostgresGc(pool, schema, (body) => this.transaction(body));
  }

  static async open(options: PostgresOptions): Promise<PostgresMetadataStore> {
    if (!schemaGrammar.test(options.schema))
      throw new Error(`invalid PostgreSQL schema name ${options.schema}`);
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize,
      options: `-c search_path=${options.schema}`,
    });
    // An idle connection that fails (the server restarted) is dropped by the pool; without a listener
    // the error would crash the process.
    pool.on("error", () => undefined);
    const store = new PostgresMetadataStore(pool, options.schema);
    try {
      await store.migrate();
    } catch (error) {
      await pool.end();
      throw error;
    }
    return store;
  }

  /** Applies pending migrations; instances starting together queue on the advisory lock. */
  private async migrate(): Promise<void> {
    await this.transaction(async (client) => {
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`berth:migrate:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
      );
      const applied = new Set(
        (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
          (r) => r.version,
        ),
      );
      for (const migration of migrations) {
        if (applied.has(migration.version)) continue;
        await client.query(migration.sql);
        await client.query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", [
          migration.version,
          Date.now(),
        ]);
      }
    });
  }

  private async transaction<T>(body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN");
      const result = await body(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private async repositoryId(db: Queryable, name: string): Promise<number | undefined> {
    const { rows } = await db.query<{ id: string }>("SELECT id FROM repositories WHERE name = $1", [name]);
    return rows[0] ? Number(rows[0].id) : undefined;
  }

  private async ensureRepository(db: Queryable, name: string, now: number): Promise<number> {
    const { rows } = await db.query<{ id: string }>(
      `INSERT INTO repositories (name, created_at) VALUES ($1, $2)
       ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id`,
      [name, now],
    );
    return Number(rows[0]?.id);
  }

  async getRepositoryBlob(repository: string, digest: string): Promise<{ size: number } | undefined> {
    const { rows } = await this.pool.query<{ size: string }>(
      `SELECT b.size FROM repositories r
       JOIN repository_blobs rb ON rb.repository_id = r.id
       JOIN blobs b ON b.digest = rb.digest
       WHERE r.name = $1 AND rb.digest = $2`,
      [repository, digest],
    );
    return rows[0] ? { size: Number(rows[0].size) } : undefined;
  }

  async repositoriesWithBlob(digest: string, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
       WHERE rb.digest = $1 ORDER BY r.name LIMIT $2`,
      [digest, limit],
    );
    return rows.map((r) => r.name);
  }

  async linkBlob(repository: string, digest: string): Promise<boolean> {
    return this.transaction(async (client) => {
      // FOR SHARE: the blob row cannot be deleted (by a collector) until the link is committed.
      const blob = await client.query("SELECT 1 FROM blobs WHERE digest = $1 FOR SHARE", [digest]);
      if (blob.rowCount === 0) return false;
      const now = Date.now();
      const id = await this.ensureRepository(client, repository, now);
      await lockRepositoryShared(client, this.schema, id);
      // A link mounted again is fresh again: GC counts its grace period from the last link.
      await client.query(
        `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
        [id, digest, now],
      );
      return true;
    });
  }

  async recordBlob(
    repository: string,
    digest: string,
    size: number,
    uploadId?: string,
    events?: NewOutboxEvent[],
  ): Promise<void> {
    const now = Date.now();
    await this.transaction(async (client) => {
      await client.query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [digest, size, now],
      );
      const id = await this.ensureRepository(client, repository, now);
      await lockRepositoryShared(client, this.schema, id);
      await client.query(
        `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, digest) DO UPDATE SET linked_at = excluded.linked_at`,
        [id, digest, now],
      );
      if (uploadId !== undefined) await client.query("DELETE FROM upload_sessions WHERE id = $1", [uploadId]);
      await appendEventRows(client, events);
    });
  }

  async unlinkBlob(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean> {
    return this.changeWithEvents(events, async (db) => {
      const result = await db.query(
        `DELETE FROM repository_blobs rb USING repositories r
         WHERE rb.repository_id = r.id AND r.name = $1 AND rb.digest = $2`,
        [repository, digest],
      );
      return (result.rowCount ?? 0) > 0;
    });
  }

  // observe: a one-statement change, in a transaction with its events only when there are events.
  private async changeWithEvents(
    events: NewOutboxEvent[] | undefined,
    change: (db: Queryable) => Promise<boolean>,
  ): Promise<boolean> {
    if (!events?.length) return change(this.pool);
    return this.transaction(async (client) => {
      const changed = await change(client);
      if (changed) await appendEventRows(client, events);
      return changed;
    });
  }

  async createUploadSession(session: NewUploadSession, limit: number): Promise<boolean> {
    return this.transaction(async (client) => {
      // Count and insert under one lock: under READ COMMITTED two concurrent inserts would both see
      // room for one more session.
      await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`berth:uploads:${this.schema}`]);
      const inserted = await client.query(
        `INSERT INTO upload_sessions (id, repository, received_bytes, hash_algorithm, started_at, updated_at)
         SELECT $1, $2, 0, $3, $4, $4 WHERE (SELECT count(*) FROM upload_sessions) < $5`,
        [session.id, session.repository, session.hashAlgorithm, session.now, limit],
      );
      return inserted.rowCount === 1;
    });
  }

  async countUploadSessions(): Promise<number> {
    const { rows } = await this.pool.query<{ count: string }>(
      "SELECT count(*) AS count FROM upload_sessions",
    );
    return Number(rows[0]?.count ?? 0);
  }

  async getUploadSession(id: string): Promise<UploadSession | undefined> {
    const { rows } = await this.pool.query<UploadRow>("SELECT * FROM upload_sessions WHERE id = $1", [id]);
    return rows[0] && toUploadSession(rows[0]);
  }

  async advanceUploadSession(id: string, from: number, to: number, now: number): Promise<boolean> {
    // A concurrent UPDATE of the same row waits for the first and re-checks the WHERE clause on the
    // committed row, so exactly one of two writers starting from `from` succeeds.
    const result = await this.pool.query(
      "UPDATE upload_sessions SET received_bytes = $1, updated_at = $2 WHERE id = $3 AND received_bytes = $4",
      [to, now, id, from],
    );
    return result.rowCount === 1;
  }

  async deleteUploadSession(id: string): Promise<void> {
    await this.pool.query("DELETE FROM upload_sessions WHERE id = $1", [id]);
  }

  async listIdleUploadSessions(before: number, limit: number): Promise<UploadSession[]> {
    const { rows } = await this.pool.query<UploadRow>(
      "SELECT * FROM upload_sessions WHERE updated_at < $1 ORDER BY updated_at LIMIT $2",
      [before, limit],
    );
    return rows.map(toUploadSession);
  }

  async getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined> {
    const { rows } = await this.pool.query<ManifestRow>(
      `SELECT ${manifestColumns} FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = $1 AND m.digest = $2`,
      [repository, digest],
    );
    return rows[0] && toManifestRecord(rows[0]);
  }

  async getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined> {
    const { rows } = await this.pool.query<ManifestRow>(
      `SELECT ${manifestColumns} FROM repositories r
       JOIN tags t ON t.repository_id = r.id
       JOIN manifests m ON m.repository_id = r.id AND m.digest = t.manifest_digest
       WHERE r.name = $1 AND t.name = $2`,
      [repository, tag],
    );
    return rows[0] && toManifestRecord(rows[0]);
  }

  /**
   * The references missing from repository `id`. With `lock`, the rows found are locked FOR SHARE until
   * the transaction ends, so a concurrent unlink or manifest delete waits for the manifest to be recorded.
   */
  private async findMissing(
    db: Queryable,
    id: number | undefined,
    references: ManifestReference[],
    lock: boolean,
  ): Promise<MissingReference[]> {
    if (references.length === 0) return [];
    const sizes = new Map<string, number>();
    const manifestSizes = new Map<string, number>();
    if (id !== undefined) {
      const blobDigests = references.filter((r) => r.kind !== "manifest").map((r) => r.digest.value);
      const manifestDigests = references.filter((r) => r.kind === "manifest").map((r) => r.digest.value);
      if (blobDigests.length > 0) {
        const { rows } = await db.query<{ digest: string; size: string }>(
          `SELECT rb.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
           WHERE rb.repository_id = $1 AND rb.digest = ANY($2::text[])${lock ? " FOR SHARE OF rb, b" : ""}`,
          [id, blobDigests],
        );
        for (const row of rows) sizes.set(row.digest, Number(row.size));
      }
      if (manifestDigests.length > 0) {
        const { rows } = await db.query<{ digest: string; size: string }>(
          `SELECT digest, size FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])${
            lock ? " FOR SHARE" : ""
          }`,
          [id, manifestDigests],
        );
        for (const row of rows) manifestSizes.set(row.digest, Number(row.size));
      }
    }
    const missing: MissingReference[] = [];
    for (const reference of references) {
      const found = (reference.kind === "manifest" ? manifestSizes : sizes).get(reference.digest.value);
      if (found === undefined) missing.push({ digest: reference.digest.value, kind: reference.kind });
      else if (found !== reference.size)
        missing.push({ digest: reference.digest.value, kind: reference.kind, actualSize: found });
    }
    return missing;
  }

  async missingReferences(repository: string, references: ManifestReference[]): Promise<MissingReference[]> {
    return this.findMissing(this.pool, await this.repositoryId(this.pool, repository), references, false);
  }

  async putManifest(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]> {
    return this.transaction(async (client) => {
      const existing = await this.repositoryId(client, repository);
      if (existing !== undefined) await lockRepositoryShared(client, this.schema, existing);
      const missing = manifest.referencesFetchedOnDemand
        ? []
        : await this.findMissing(client, existing, manifest.references, true);
      if (missing.length > 0) return missing;
      const repositoryId = existing ?? (await this.ensureRepository(client, repository, manifest.now));
      await this.writeManifest(client, repositoryId, manifest, tag, events);
      return [];
    });
  }

  /** The writes of putManifest, once its references are checked. */
  private async writeManifest(
    client: pg.PoolClient,
    repositoryId: number,
    manifest: NewManifest,
    tag: string | undefined,
    events: NewOutboxEvent[] | undefined,
  ): Promise<void> {
    await client.query(
      "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
      [manifest.digest, manifest.size, manifest.now],
    );
    const inserted = await client.query(
      `INSERT INTO manifests
       (repository_id, digest, media_type, artifact_type, size, subject_digest, annotations, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
      [
        repositoryId,
        manifest.digest,
        manifest.mediaType,
        manifest.artifactType ?? null,
        manifest.size,
        manifest.subject ?? null,
        manifest.annotations ? JSON.stringify(manifest.annotations) : null,
        manifest.now,
      ],
    );
    if ((inserted.rowCount ?? 0) > 0 && manifest.references.length > 0) {
      await client.query(
        `INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, kind)
         SELECT $1, $2, child, kind FROM unnest($3::text[], $4::text[]) AS r(child, kind)
         ON CONFLICT DO NOTHING`,
        [
          repositoryId,
          manifest.digest,
          manifest.references.map((r) => r.digest.value),
          manifest.references.map((r) => r.kind),
        ],
      );
    }
    if (tag !== undefined) {
      await client.query(
        `INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (repository_id, name) DO UPDATE SET manifest_digest = excluded.manifest_digest,
         updated_at = excluded.updated_at`,
        [repositoryId, tag, manifest.digest, manifest.now],
      );
    }
    await appendEventRows(client, events);
  }

  async deleteManifest(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean> {
    return this.transaction(async (client) => {
      const id = await this.repositoryId(client, repository);
      if (id === undefined) return false;
      return this.removeManifest(client, id, digest, events);
    });
  }

  /** The writes of deleteManifest inside the caller's transaction: the manifest, its tags and references. */
  private async removeManifest(
    client: pg.PoolClient,
    id: number,
    digest: string,
    events: NewOutboxEvent[] | undefined,
  ): Promise<boolean> {
    const deleted = await client.query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2", [
      id,
      digest,
    ]);
    if ((deleted.rowCount ?? 0) === 0) return false;
    await client.query("DELETE FROM tags WHERE repository_id = $1 AND manifest_digest = $2", [id, digest]);
    await client.query("DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = $2", [
      id,
      digest,
    ]);
    await appendEventRows(client, events);
    return true;
  }

  async deleteTag(repository: string, tag: string, events?: NewOutboxEvent[]): Promise<boolean> {
    return this.changeWithEvents(events, async (db) => {
      const result = await db.query(
        "DELETE FROM tags t USING repositories r WHERE t.repository_id = r.id AND r.name = $1 AND t.name = $2",
        [repository, tag],
      );
      return (result.rowCount ?? 0) > 0;
    });
  }

  async appendEvents(events: NewOutboxEvent[]): Promise<void> {
    await appendEventRows(this.pool, events);
  }

  async claimEvents(endpoint: string, limit: number, now: number, leaseMs: number): Promise<OutboxEvent[]> {
    // SKIP LOCKED: instances claiming at once each take different rows instead of queueing on the same ones.
    const { rows } = await this.pool.query<OutboxRow>(
      `UPDATE event_outbox SET available_at = $3 WHERE id IN (
         SELECT id FROM event_outbox WHERE endpoint = $1 AND available_at <= $2
         ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
       RETURNING id, endpoint, payload, attempts, created_at`,
      [endpoint, now, now + leaseMs, limit],
    );
    return rows.map(toOutboxEvent).sort((a, b) => a.id - b.id);
  }

  async ackEvents(ids: number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query("DELETE FROM event_outbox WHERE id = ANY($1::bigint[])", [ids]);
  }

  async retryEvents(ids: number[], availableAt: number): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      "UPDATE event_outbox SET attempts = attempts + 1, available_at = $1 WHERE id = ANY($2::bigint[])",
      [availableAt, ids],
    );
  }

  async trimEvents(endpoint: string, keep: number): Promise<number> {
    const result = await this.pool.query(
      `DELETE FROM event_outbox WHERE endpoint = $1 AND id < COALESCE(
         (SELECT id FROM event_outbox WHERE endpoint = $1 ORDER BY id DESC OFFSET $2 - 1 LIMIT 1), 0)`,
      [endpoint, keep],
    );
    return result.rowCount ?? 0;
  }

  async repositoryExists(repository: string): Promise<boolean> {
    return (await this.repositoryId(this.pool, repository)) !== undefined;
  }

  async listTags(repository: string, limit: number, last: string | undefined): Promise<string[] | undefined> {
    const id = await this.repositoryId(this.pool, repository);
    if (id === undefined) return undefined;
    const { rows } =
      last === undefined
        ? await this.pool.query<{ name: string }>(
            "SELECT name FROM tags WHERE repository_id = $1 ORDER BY lower(name), name LIMIT $2",
            [id, limit],
          )
        : await this.pool.query<{ name: string }>(
            `SELECT name FROM tags WHERE repository_id = $1
             AND (lower(name) > lower($2) OR (lower(name) = lower($2) AND name > $2))
             ORDER BY lower(name), name LIMIT $3`,
            [id, last, limit],
          );
    return rows.map((r) => r.name);
  }

  async listRepositories(limit: number, last: string | undefined): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
      [last ?? "", limit],
    );
    return rows.map((r) => r.name);
  }

  async listReferrers(
    repository: string,
    subject: string,
    options: { artifactType?: string; limit: number; last?: string },
  ): Promise<ManifestRecord[]> {
    const { rows } = await this.pool.query<ManifestRow>(
      `SELECT ${manifestColumns} FROM repositories r JOIN manifests m ON m.repository_id = r.id
       WHERE r.name = $1 AND m.subject_digest = $2 AND ($3::text IS NULL OR m.artifact_type = $3)
       AND m.digest > $4 ORDER BY m.digest LIMIT $5`,
      [repository, subject, options.artifactType ?? null, options.last ?? "", options.limit],
    );
    return rows.map(toManifestRecord);
  }

  async searchRepositories(
    query: string,
    limit: number,
    last: string | undefined,
  ): Promise<RepositorySummary[]> {
    const { rows } = await this.pool.query<{ name: string; tag_count: string; updated_at: string }>(
      `SELECT r.name,
         (SELECT count(*) FROM tags t WHERE t.repository_id = r.id) AS tag_count,
         coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repository_id = r.id), r.created_at) AS updated_at
       FROM repositories r WHERE r.name > $1 AND strpos(r.name, $2) > 0 ORDER BY r.name LIMIT $3`,
      [last ?? "", query, limit],
    );
    return rows.map((r) => ({
      name: r.name,
      tagCount: Number(r.tag_count),
      updatedAt: Number(r.updated_at),
    }));
  }

  async listTagDetails(
    repository: string,
    limit: number,
    last: string | undefined,
  ): Promise<TagDetail[] | undefined> {
    const id = await this.repositoryId(this.pool, repository);
    if (id === undefined) return undefined;
    const columns = "t.name, t.updated_at, m.digest, m.media_type, m.size, m.artifact_type";
    const join = "JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.manifest_digest";
    const { rows } =
      last === undefined
        ? await this.pool.query<TagDetailRow>(
            `SELECT ${columns} FROM tags t ${join}
             WHERE t.repository_id = $1 ORDER BY lower(t.name), t.name LIMIT $2`,
            [id, limit],
          )
        : await this.pool.query<TagDetailRow>(
            `SELECT ${columns} FROM tags t ${join} WHERE t.repository_id = $1
             AND (lower(t.name) > lower($2) OR (lower(t.name) = lower($2) AND t.name > $2))
             ORDER BY lower(t.name), t.name LIMIT $3`,
            [id, last, limit],
          );
    return rows.map((row) => ({
      name: row.name,
      updatedAt: Number(row.updated_at),
      digest: row.digest,
      mediaType: row.media_type,
      size: Number(row.size),
      artifactType: row.artifact_type ?? undefined,
    }));
  }

  // gc: garbage collection, scrub and fsck; the SQL lives in gc-queries.ts.

  async pinBlob(digest: string, now: number): Promise<boolean> {
    return this.gc.pin(digest, now);
  }

  async gcRepositorySnapshot(repository: string): Promise<GcRepositorySnapshot | undefined> {
    const id = await this.repositoryId(this.pool, repository);
    return id === undefined ? undefined : this.gc.snapshot(id);
  }

  async gcDeleteManifests(
    repository: string,
    candidates: string[],
    rules: GcManifestRules,
    eventsFor?: (deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcDeletedManifest[]> {
    const id = await this.repositoryId(this.pool, repository);
    if (id === undefined || candidates.length === 0) return [];
    return this.gc.deleteManifests(id, candidates, rules, eventsFor);
  }

  async gcUnlinkBlobs(
    repository: string,
    digests: string[],
    before: number,
    eventsFor?: (unlinked: GcBlob[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcBlob[]> {
    const id = await this.repositoryId(this.pool, repository);
    if (id === undefined || digests.length === 0) return [];
    return this.gc.unlinkBlobs(id, digests, before, eventsFor);
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
    return this.gc.tombstoneBlobs(digests, before, now);
  }

  async gcClearTombstones(digests: string[]): Promise<void> {
    if (digests.length > 0) await this.gc.clearTombstones(digests);
  }

  async gcListTombstones(before: number, limit: number): Promise<string[]> {
    return this.gc.tombstones(before, limit);
  }

  async gcPrunePins(before: number): Promise<number> {
    return this.gc.prunePins(before);
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
    return undefined;
  }

  async ping(): Promise<void> {
    // observe: reads a real table, so a dropped or renamed schema (or lost privileges) fails the probe.
    await this.pool.query("SELECT 1 FROM schema_migrations LIMIT 1");
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  // --- policies: quotas, immutable tags, retention ---
  // Every write under limits first locks the repository's row (FOR UPDATE, or the row lock that
  // ensureRepository's upsert takes), so limited writes to one repository run one after another across
  // all instances; under READ COMMITTED each later statement then sees what the previous holder committed.

  private async lockRepository(client: pg.PoolClient, name: string): Promise<number | undefined> {
    const { rows } = await client.query<{ id: string }>(
      "SELECT id FROM repositories WHERE name = $1 FOR UPDATE",
      [name],
    );
    return rows[0] ? Number(rows[0].id) : undefined;
  }

  private async usage(db: Queryable, id: number): Promise<RepositoryUsage> {
    // Running totals kept by triggers (schema migration 2).
    const { rows } = await db.query<{ bytes: string; tags: string }>(
      "SELECT bytes, tags FROM repository_usage WHERE repository_id = $1",
      [id],
    );
    return { bytes: Number(rows[0]?.bytes ?? 0), tags: Number(rows[0]?.tags ?? 0) };
  }

  /** Throws when linking `digest` (of `size` bytes) would take repository `id` past limits.maxBytes. */
  private async checkBytes(
    db: Queryable,
    id: number,
    digest: string,
    size: number,
    limits: WriteLimits,
  ): Promise<void> {
    if (limits.maxBytes === undefined) return;
    const held = await db.query(
      `SELECT 1 FROM repository_blobs WHERE repository_id = $1 AND digest = $2
       UNION ALL SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 LIMIT 1`,
      [id, digest],
    );
    if ((held.rowCount ?? 0) > 0) return;
    const usedBytes = (await this.usage(db, id)).bytes;
    if (usedBytes + size > limits.maxBytes)
      throw new LimitViolationError({
        kind: "bytes",
        usedBytes,
        addedBytes: size,
        maxBytes: limits.maxBytes,
      });
  }

  async recordBlobWithin(
    repository: string,
    digest: string,
    size: number,
    uploadId: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<void> {
    const now = Date.now();
    await this.transaction(async (client) => {
      const id = await this.ensureRepository(client, repository, now);
      await this.checkBytes(client, id, digest, size, limits);
      await client.query(
        "INSERT INTO blobs (digest, size, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [digest, size, now],
      );
      await client.query(
        `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING`,
        [id, digest, now],
      );
      if (uploadId !== undefined) await client.query("DELETE FROM upload_sessions WHERE id = $1", [uploadId]);
      await appendEventRows(client, events);
    });
  }

  async linkBlobWithin(repository: string, digest: string, limits: WriteLimits): Promise<boolean> {
    return this.transaction(async (client) => {
      const blob = await client.query<{ size: string }>(
        "SELECT size FROM blobs WHERE digest = $1 FOR SHARE",
        [digest],
      );
      const size = blob.rows[0]?.size;
      if (size === undefined) return false;
      const now = Date.now();
      const id = await this.ensureRepository(client, repository, now);
      await this.checkBytes(client, id, digest, Number(size), limits);
      await client.query(
        `INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING`,
        [id, digest, now],
      );
      return true;
    });
  }

  async putManifestWithin(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]> {
    return this.transaction(async (client) => {
      const existing = await this.lockRepository(client, repository);
      const missing = await this.findMissing(client, existing, manifest.references, true);
      if (missing.length > 0) return missing;
      // A repository created here is rolled back with everything else if a limit refuses the write.
      const id = existing ?? (await this.ensureRepository(client, repository, manifest.now));
      if (tag !== undefined) {
        const { rows } = await client.query<{ manifest_digest: string }>(
          "SELECT manifest_digest FROM tags WHERE repository_id = $1 AND name = $2",
          [id, tag],
        );
        const current = rows[0]?.manifest_digest;
        if (limits.immutableTag && current !== undefined && current !== manifest.digest)
          throw new LimitViolationError({ kind: "immutable-tag", tag, currentDigest: current });
        if (limits.maxTags !== undefined && current === undefined) {
          const tagCount = (await this.usage(client, id)).tags;
          if (tagCount + 1 > limits.maxTags)
            throw new LimitViolationError({ kind: "tags", tagCount, maxTags: limits.maxTags });
        }
      }
      await this.checkBytes(client, id, manifest.digest, manifest.size, limits);
      await this.writeManifest(client, id, manifest, tag, events);
      return [];
    });
  }

  async deleteManifestUnlessTagged(
    repository: string,
    digest: string,
    isProtectedTag: (tag: string) => boolean,
    events?: NewOutboxEvent[],
  ): Promise<boolean> {
    return this.transaction(async (client) => {
      const id = await this.lockRepository(client, repository);
      if (id === undefined) return false;
      const tags = await client.query<{ name: string }>(
        "SELECT name FROM tags WHERE repository_id = $1 AND manifest_digest = $2",
        [id, digest],
      );
      const kept = tags.rows.find((t) => isProtectedTag(t.name));
      if (kept)
        throw new LimitViolationError({ kind: "immutable-tag", tag: kept.name, currentDigest: digest });
      return this.removeManifest(client, id, digest, events);
    });
  }

  async repositoryUsage(repository: string): Promise<RepositoryUsage> {
    const id = await this.repositoryId(this.pool, repository);
    return id === undefined ? { bytes: 0, tags: 0 } : this.usage(this.pool, id);
  }

  async listTagRecords(repository: string): Promise<TagRecord[] | undefined> {
    const id = await this.repositoryId(this.pool, repository);
    if (id === undefined) return undefined;
    const { rows } = await this.pool.query<{ name: string; manifest_digest: string; updated_at: string }>(
      "SELECT name, manifest_digest, updated_at FROM tags WHERE repository_id = $1",
      [id],
    );
    return rows.map((r) => ({ name: r.name, digest: r.manifest_digest, updatedAt: Number(r.updated_at) }));
  }

  async deleteTagIfUnchanged(
    repository: string,
    tag: string,
    digest: string,
    updatedAt: number,
    events?: NewOutboxEvent[],
  ): Promise<boolean> {
    return this.changeWithEvents(events, async (db) => {
      const result = await db.query(
        `DELETE FROM tags t USING repositories r WHERE t.repository_id = r.id AND r.name = $1 AND t.name = $2
         AND t.manifest_digest = $3 AND t.updated_at = $4`,
        [repository, tag, digest, updatedAt],
      );
      return (result.rowCount ?? 0) > 0;
    });
  }
}

function toManifestRecord(row: ManifestRow): ManifestRecord {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    size: Number(row.size),
    artifactType: row.artifact_type ?? undefined,
    subject: row.subject_digest ?? undefined,
    annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : undefined,
    createdAt: Number(row.created_at),
  };
}

interface OutboxRow {
  id: string;
  endpoint: string;
  payload: string;
  attempts: number;
  created_at: string;
}

function toOutboxEvent(row: OutboxRow): OutboxEvent {
  return {
    id: Number(row.id),
    endpoint: row.endpoint,
    payload: row.payload,
    attempts: row.attempts,
    createdAt: Number(row.created_at),
  };
}

function toUploadSession(row: UploadRow): UploadSession {
  return {
    id: row.id,
    repository: row.repository,
    receivedBytes: Number(row.received_bytes),
    hashAlgorithm: row.hash_algorithm as DigestAlgorithm,
    startedAt: Number(row.started_at),
    updatedAt: Number(row.updated_at),
  };
}
