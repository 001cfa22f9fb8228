import type pg from "pg";
import type { ManifestReference } from "../../oci/manifest.js";
import type {
  DanglingPointer,
  GcBlob,
  GcDeletedManifest,
  GcManifestRules,
  GcRepositorySnapshot,
  NewOutboxEvent,
} from "../metadata-store.js";
import { appendEventRows } from "./outbox-rows.js";

/**
 * The advisory lock key of a repository's GC. GC takes it exclusively for each transaction that removes
 * manifests or links of the repository; every write that adds a pointer into the repository (putManifest,
 * recordBlob, linkBlob) takes it shared. Under READ COMMITTED this is what makes "check, then delete" one
 * step: no push can commit between GC's check and its delete, and a push that waited sees the delete.
 */
export function repositoryLockKey(schema: string, id: number): string {
  return `berth:gc:${schema}:repository:${id}`;
}

export async function lockRepositoryShared(client: pg.PoolClient, schema: string, id: number): Promise<void> {
  await client.query("SELECT pg_advisory_xact_lock_shared(hashtext($1))", [repositoryLockKey(schema, id)]);
}

/** The same recursive walk as SQLite's: every manifest that reaches a digest, within its repository. */
const reachingManifests = `
WITH RECURSIVE reach(repository_id, manifest) AS (
  SELECT repository_id, digest FROM manifests WHERE digest = $1
  UNION SELECT repository_id, manifest_digest FROM manifest_references WHERE child_digest = $1
  UNION SELECT r.repository_id, r.manifest_digest FROM manifest_references r
    JOIN reach ON r.repository_id = reach.repository_id AND r.child_digest = reach.manifest
    WHERE r.kind = 'manifest'
)`;

/** Garbage collection, scrub and fsck on PostgreSQL; the store's gc methods delegate here. */
export class PostgresGc {
  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly transaction: <T>(body: (client: pg.PoolClient) => Promise<T>) => Promise<T>,
  ) {}

  async pin(digest: string, now: number): Promise<boolean> {
    // The pin row serialises with GC's tombstone of the same digest: whichever commits first wins, and an
    // upsert that waited re-evaluates its WHERE on the committed row.
    const result = await this.pool.query(
      `INSERT INTO gc_blob_pins (digest, pinned_at) VALUES ($1, $2)
       ON CONFLICT (digest) DO UPDATE SET pinned_at = excluded.pinned_at WHERE gc_blob_pins.tombstoned_at IS NULL`,
      [digest, now],
    );
    return (result.rowCount ?? 0) > 0;
  }

  async snapshot(id: number): Promise<GcRepositorySnapshot> {
    const [manifests, tags, references, links] = await Promise.all([
      this.pool.query<{
        digest: string;
        media_type: string;
        size: string;
        subject_digest: string | null;
        created_at: string;
      }>(
        "SELECT digest, media_type, size, subject_digest, created_at FROM manifests WHERE repository_id = $1",
        [id],
      ),
      this.pool.query<{ manifest_digest: string }>(
        "SELECT DISTINCT manifest_digest FROM tags WHERE repository_id = $1",
        [id],
      ),
      this.pool.query<{ manifest_digest: string; child_digest: string; kind: string }>(
        "SELECT manifest_digest, child_digest, kind FROM manifest_references WHERE repository_id = $1",
        [id],
      ),
      this.pool.query<{ digest: string; size: string | null; linked_at: string }>(
        `SELECT rb.digest, b.size, rb.linked_at FROM repository_blobs rb LEFT JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository_id = $1`,
        [id],
      ),
    ]);
    return {
      manifests: manifests.rows.map((m) => ({
        digest: m.digest,
        mediaType: m.media_type,
        size: Number(m.size),
        subject: m.subject_digest ?? undefined,
        createdAt: Number(m.created_at),
      })),
      taggedDigests: tags.rows.map((t) => t.manifest_digest),
      references: references.rows.map((r) => ({
        manifest: r.manifest_digest,
        child: r.child_digest,
        kind: r.kind as ManifestReference["kind"],
      })),
      links: links.rows.map((l) => ({
        digest: l.digest,
        size: Number(l.size ?? 0),
        linkedAt: Number(l.linked_at),
      })),
    };
  }

  private async lockRepository(client: pg.PoolClient, id: number): Promise<void> {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [repositoryLockKey(this.schema, id)]);
  }

  async deleteManifests(
    id: number,
    candidates: string[],
    rules: GcManifestRules,
    eventsFor?: (deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcDeletedManifest[]> {
    return this.transaction(async (client) => {
      await this.lockRepository(client, id);
      const deleted: GcDeletedManifest[] = [];
      let pending = candidates;
      for (;;) {
        const { rows } = await client.query<{
          digest: string;
          media_type: string;
          size: string;
          subject_digest: string | null;
          orphan: boolean;
        }>(
          `SELECT m.digest, m.media_type, m.size, m.subject_digest,
             (m.subject_digest IS NOT NULL AND NOT EXISTS (SELECT 1 FROM manifests s
               WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest)) AS orphan
           FROM manifests m WHERE m.repository_id = $1 AND m.digest = ANY($2::text[]) AND m.created_at < $3
           AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id
             AND r.child_digest = m.digest AND r.kind = 'manifest')`,
          [id, pending, rules.before],
        );
        const round = rows.filter((row) =>
          row.orphan
            ? rules.untagged || rules.orphanReferrers
            : row.subject_digest === null && rules.untagged,
        );
        if (round.length === 0) {
          // Webhook events of the removals, committed with them.
          if (deleted.length > 0) await appendEventRows(client, eventsFor?.(deleted));
          return deleted;
        }
        const digests = round.map((r) => r.digest);
        await client.query("DELETE FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])", [
          id,
          digests,
        ]);
        await client.query(
          "DELETE FROM manifest_references WHERE repository_id = $1 AND manifest_digest = ANY($2::text[])",
          [id, digests],
        );
        for (const row of round) {
          deleted.push({
            digest: row.digest,
            mediaType: row.media_type,
            size: Number(row.size),
            reason: row.orphan ? "orphan-referrer" : "untagged",
          });
        }
        const gone = new Set(digests);
        pending = pending.filter((d) => !gone.has(d));
      }
    });
  }

  async unlinkBlobs(
    id: number,
    digests: string[],
    before: number,
    eventsFor?: (unlinked: GcBlob[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcBlob[]> {
    return this.transaction(async (client) => {
      await this.lockRepository(client, id);
      const { rows } = await client.query<{ digest: string; size: string | null }>(
        `WITH gone AS (
           DELETE FROM repository_blobs rb WHERE rb.repository_id = $1 AND rb.digest = ANY($2::text[])
           AND rb.linked_at < $3
           AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = $1 AND r.child_digest = rb.digest)
           RETURNING rb.digest)
         SELECT gone.digest, b.size FROM gone LEFT JOIN blobs b ON b.digest = gone.digest`,
        [id, digests, before],
      );
      const unlinked = rows.map((r) => ({ digest: r.digest, size: Number(r.size ?? 0) }));
      if (unlinked.length > 0) await appendEventRows(client, eventsFor?.(unlinked));
      return unlinked;
    });
  }

  async unreferencedBlobs(before: number, after: string, limit: number): Promise<GcBlob[]> {
    const { rows } = await this.pool.query<{ digest: string; size: string }>(
      `SELECT b.digest, b.size FROM blobs b WHERE b.digest > $1 AND b.created_at < $2
       AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM gc_blob_pins p WHERE p.digest = b.digest AND p.pinned_at >= $2)
       ORDER BY b.digest LIMIT $3`,
      [after, before, limit],
    );
    return rows.map((r) => ({ digest: r.digest, size: Number(r.size) }));
  }

  async recordedBlobs(digests: string[]): Promise<Set<string>> {
    const { rows } = await this.pool.query<{ digest: string }>(
      "SELECT digest FROM blobs WHERE digest = ANY($1::text[])",
      [digests],
    );
    return new Set(rows.map((r) => r.digest));
  }

  /**
   * Per digest: lock the blob row (a mount's FOR SHARE waits, or finds it gone), check in a fresh statement
   * that nothing references it, then take the pin row with the tombstone unless a push pinned it within the
   * grace period. A push that pins later waits on that row and then sees the tombstone.
   */
  async tombstoneBlobs(
    digests: string[],
    before: number,
    now: number,
  ): Promise<{ digest: string; size?: number }[]> {
    return this.transaction(async (client) => {
      const tombstoned: { digest: string; size?: number }[] = [];
      for (const digest of [...digests].sort()) {
        const blob = await client.query<{ size: string; created_at: string }>(
          "SELECT size, created_at FROM blobs WHERE digest = $1 FOR UPDATE",
          [digest],
        );
        const row = blob.rows[0];
        if (row) {
          if (Number(row.created_at) >= before) continue;
          const used = await client.query(
            `SELECT 1 WHERE EXISTS (SELECT 1 FROM repository_blobs WHERE digest = $1)
             OR EXISTS (SELECT 1 FROM manifests WHERE digest = $1)`,
            [digest],
          );
          if ((used.rowCount ?? 0) > 0) continue;
        }
        const marked = await client.query(
          `INSERT INTO gc_blob_pins (digest, pinned_at, tombstoned_at) VALUES ($1, 0, $3)
           ON CONFLICT (digest) DO UPDATE SET tombstoned_at = coalesce(gc_blob_pins.tombstoned_at, $3)
           WHERE gc_blob_pins.pinned_at < $2 OR gc_blob_pins.tombstoned_at IS NOT NULL`,
          [digest, before, now],
        );
        if ((marked.rowCount ?? 0) === 0) continue;
        if (row) await client.query("DELETE FROM blobs WHERE digest = $1", [digest]);
        tombstoned.push(row ? { digest, size: Number(row.size) } : { digest });
      }
      return tombstoned;
    });
  }

  async clearTombstones(digests: string[]): Promise<void> {
    await this.pool.query(
      "DELETE FROM gc_blob_pins WHERE digest = ANY($1::text[]) AND tombstoned_at IS NOT NULL",
      [digests],
    );
  }

  async tombstones(before: number, limit: number): Promise<string[]> {
    const { rows } = await this.pool.query<{ digest: string }>(
      "SELECT digest FROM gc_blob_pins WHERE tombstoned_at < $1 LIMIT $2",
      [before, limit],
    );
    return rows.map((r) => r.digest);
  }

  async prunePins(before: number): Promise<number> {
    const result = await this.pool.query(
      "DELETE FROM gc_blob_pins WHERE pinned_at < $1 AND tombstoned_at IS NULL",
      [before],
    );
    return result.rowCount ?? 0;
  }

  async blobRecords(after: string, limit: number): Promise<GcBlob[]> {
    const { rows } = await this.pool.query<{ digest: string; size: string }>(
      "SELECT digest, size FROM blobs WHERE digest > $1 ORDER BY digest LIMIT $2",
      [after, limit],
    );
    return rows.map((r) => ({ digest: r.digest, size: Number(r.size) }));
  }

  async manifestRecords(
    after: { repository: string; digest: string } | undefined,
    limit: number,
  ): Promise<{ repository: string; digest: string; size: number; mediaType: string }[]> {
    const { rows } = await this.pool.query<{
      repository: string;
      digest: string;
      size: string;
      media_type: string;
    }>(
      `SELECT r.name AS repository, m.digest, m.size, m.media_type FROM manifests m
       JOIN repositories r ON r.id = m.repository_id
       WHERE (r.name, m.digest) > ($1, $2) ORDER BY r.name, m.digest LIMIT $3`,
      [after?.repository ?? "", after?.digest ?? "", limit],
    );
    return rows.map((r) => ({
      repository: r.repository,
      digest: r.digest,
      size: Number(r.size),
      mediaType: r.media_type,
    }));
  }

  async usage(digest: string): Promise<{ repository: string; tags: string[] }[]> {
    const repositories = await this.pool.query<{ name: string }>(
      `${reachingManifests}
       SELECT name FROM repositories WHERE id IN (SELECT repository_id FROM reach)
         OR id IN (SELECT repository_id FROM repository_blobs WHERE digest = $1) ORDER BY name`,
      [digest],
    );
    const tags = await this.pool.query<{ repository: string; tag: string }>(
      `${reachingManifests}
       SELECT DISTINCT r.name AS repository, t.name AS tag FROM reach
       JOIN tags t ON t.repository_id = reach.repository_id AND t.manifest_digest = reach.manifest
       JOIN repositories r ON r.id = reach.repository_id ORDER BY 1, 2`,
      [digest],
    );
    const byRepository = new Map<string, string[]>(repositories.rows.map((r) => [r.name, []]));
    for (const row of tags.rows)
      byRepository.set(row.repository, [...(byRepository.get(row.repository) ?? []), row.tag]);
    return [...byRepository].map(([repository, list]) => ({ repository, tags: list }));
  }

  async dangling(limit: number): Promise<DanglingPointer[]> {
    const { rows } = await this.pool.query<{
      kind: DanglingPointer["kind"];
      repository: string;
      digest: string;
      source: string | null;
    }>(
      `SELECT * FROM (
         SELECT 'link-without-blob' AS kind, r.name AS repository, rb.digest AS digest, NULL::text AS source
         FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = rb.digest)
         UNION ALL
         SELECT 'manifest-without-blob', r.name, m.digest, NULL
         FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest)
         UNION ALL
         SELECT 'tag-without-manifest', r.name, t.manifest_digest, t.name
         FROM tags t JOIN repositories r ON r.id = t.repository_id
         WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = t.repository_id
           AND m.digest = t.manifest_digest)
         UNION ALL
         SELECT 'reference-missing', r.name, x.child_digest, x.manifest_digest
         FROM manifest_references x JOIN repositories r ON r.id = x.repository_id
         WHERE (x.kind = 'manifest' AND NOT EXISTS (SELECT 1 FROM manifests m
             WHERE m.repository_id = x.repository_id AND m.digest = x.child_digest))
           OR (x.kind <> 'manifest' AND NOT EXISTS (SELECT 1 FROM repository_blobs rb
             WHERE rb.repository_id = x.repository_id AND rb.digest = x.child_digest))
       ) d LIMIT $1`,
      [limit],
    );
    return rows.map((r) => ({
      kind: r.kind,
      repository: r.repository,
      digest: r.digest,
      ...(r.source !== null ? { from: r.source } : {}),
    }));
  }
}
