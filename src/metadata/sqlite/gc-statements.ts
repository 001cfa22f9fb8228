import type Database from "better-sqlite3";
import type { ManifestReference } from "../../oci/manifest.js";
import type {
  DanglingPointer,
  GcBlob,
  GcDeletedManifest,
  GcManifestRules,
  GcRepositorySnapshot,
  NewOutboxEvent,
} from "../metadata-store.js";

/**
 * Garbage collection, scrub and fsck on SQLite. Every removal is an IMMEDIATE transaction that re-checks
 * its conditions: SQLite runs one writer at a time, so a push's transaction (putManifest, recordBlob,
 * linkBlob, pinBlob) commits either wholly before the check, which then sees it, or wholly after the
 * removal, and then finds the row gone and answers as if it never existed (MANIFEST_BLOB_UNKNOWN, or a
 * failed mount the client follows with an upload).
 */
export class GcStatements {
  private readonly statements: ReturnType<typeof prepare>;
  readonly deleteManifests: (
    id: number,
    candidates: string[],
    rules: GcManifestRules,
    eventsFor: ((deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined) | undefined,
  ) => GcDeletedManifest[];
  readonly unlinkBlobs: (
    id: number,
    digests: string[],
    before: number,
    eventsFor: ((unlinked: GcBlob[]) => NewOutboxEvent[] | undefined) | undefined,
  ) => GcBlob[];
  readonly tombstoneBlobs: (
    digests: string[],
    before: number,
    now: number,
  ) => { digest: string; size?: number }[];
  readonly clearTombstones: (digests: string[]) => void;

  constructor(
    db: Database.Database,
    deleteManifest: (id: number, digest: string) => boolean,
    /** Appends webhook events in the transaction running (the removals'). */
    appendEvents: (events: NewOutboxEvent[] | undefined) => void,
  ) {
    const s = prepare(db);
    this.statements = s;
    const deleteManifests = (
      id: number,
      candidates: string[],
      rules: GcManifestRules,
    ): GcDeletedManifest[] => {
      const deleted: GcDeletedManifest[] = [];
      let pending = candidates;
      // Deleting an index frees its children, deleting a subject orphans its referrers: repeat until stable.
      for (;;) {
        const kept: string[] = [];
        for (const digest of pending) {
          const row = s.deletableManifest.get(id, digest, rules.before) as
            | {
                digest: string;
                media_type: string;
                size: number;
                subject_digest: string | null;
                orphan: number;
              }
            | undefined;
          const allowed =
            row !== undefined &&
            (row.orphan === 1
              ? rules.untagged || rules.orphanReferrers
              : row.subject_digest === null && rules.untagged);
          if (row && allowed && deleteManifest(id, digest)) {
            deleted.push({
              digest,
              mediaType: row.media_type,
              size: row.size,
              reason: row.orphan === 1 ? "orphan-referrer" : "untagged",
            });
          } else kept.push(digest);
        }
        if (kept.length === pending.length) return deleted;
        pending = kept;
      }
    };
    this.deleteManifests = db.transaction(
      (
        id: number,
        candidates: string[],
        rules: GcManifestRules,
        eventsFor: ((deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined) | undefined,
      ) => {
        const deleted = deleteManifests(id, candidates, rules);
        if (deleted.length > 0) appendEvents(eventsFor?.(deleted));
        return deleted;
      },
    ).immediate;
    const unlinkBlobs = (id: number, digests: string[], before: number): GcBlob[] => {
      const unlinked: GcBlob[] = [];
      for (const digest of digests) {
        const size = s.blobSize.get(digest) as number | undefined;
        if (s.unlinkUnreferenced.run(id, digest, before).changes > 0)
          unlinked.push({ digest, size: size ?? 0 });
      }
      return unlinked;
    };
    this.unlinkBlobs = db.transaction(
      (
        id: number,
        digests: string[],
        before: number,
        eventsFor: ((unlinked: GcBlob[]) => NewOutboxEvent[] | undefined) | undefined,
      ) => {
        const unlinked = unlinkBlobs(id, digests, before);
        if (unlinked.length > 0) appendEvents(eventsFor?.(unlinked));
        return unlinked;
      },
    ).immediate;
    this.tombstoneBlobs = db.transaction((digests: string[], before: number, now: number) => {
      const tombstoned: { digest: string; size?: number }[] = [];
      for (const digest of digests) {
        const pin = s.pinOf.get(digest) as { pinned_at: number; tombstoned_at: number | null } | undefined;
        if (pin && pin.tombstoned_at === null && pin.pinned_at >= before) continue;
        const blob = s.blobRow.get(digest) as { size: number; created_at: number } | undefined;
        if (blob) {
          if (blob.created_at >= before || s.blobReferenced.get(digest, digest)) continue;
          s.deleteBlob.run(digest);
        }
        s.tombstone.run(digest, now, now);
        tombstoned.push(blob ? { digest, size: blob.size } : { digest });
      }
      return tombstoned;
    }).immediate;
    this.clearTombstones = db.transaction((digests: string[]) => {
      for (const digest of digests) s.clearTombstone.run(digest);
    }).immediate;
  }

  pin(digest: string, now: number): boolean {
    return this.statements.pin.run(digest, now).changes > 0;
  }

  snapshot(id: number): GcRepositorySnapshot {
    const s = this.statements;
    const manifests = (
      s.snapshotManifests.all(id) as {
        digest: string;
        media_type: string;
        size: number;
        subject_digest: string | null;
        created_at: number;
      }[]
    ).map((m) => ({
      digest: m.digest,
      mediaType: m.media_type,
      size: m.size,
      subject: m.subject_digest ?? undefined,
      createdAt: m.created_at,
    }));
    const taggedDigests = s.snapshotTags.all(id) as string[];
    const references = (
      s.snapshotReferences.all(id) as { manifest_digest: string; child_digest: string; kind: string }[]
    ).map((r) => ({
      manifest: r.manifest_digest,
      child: r.child_digest,
      kind: r.kind as ManifestReference["kind"],
    }));
    const links = (
      s.snapshotLinks.all(id) as { digest: string; size: number | null; linked_at: number }[]
    ).map((l) => ({ digest: l.digest, size: l.size ?? 0, linkedAt: l.linked_at }));
    return { manifests, taggedDigests, references, links };
  }

  unreferencedBlobs(before: number, after: string, limit: number): GcBlob[] {
    return this.statements.unreferencedBlobs.all(after, before, before, limit) as GcBlob[];
  }

  recordedBlobs(digests: string[]): Set<string> {
    const found = new Set<string>();
    for (const digest of digests) if (this.statements.blobRow.get(digest)) found.add(digest);
    return found;
  }

  tombstones(before: number, limit: number): string[] {
    return this.statements.tombstones.all(before, limit) as string[];
  }

  prunePins(before: number): number {
    return this.statements.prunePins.run(before).changes;
  }

  blobRecords(after: string, limit: number): GcBlob[] {
    return this.statements.blobRecords.all(after, limit) as GcBlob[];
  }

  manifestRecords(
    after: { repository: string; digest: string } | undefined,
    limit: number,
  ): { repository: string; digest: string; size: number; mediaType: string }[] {
    return (
      this.statements.manifestRecords.all(after?.repository ?? "", after?.digest ?? "", limit) as {
        repository: string;
        digest: string;
        size: number;
        media_type: string;
      }[]
    ).map((r) => ({ repository: r.repository, digest: r.digest, size: r.size, mediaType: r.media_type }));
  }

  usage(digest: string): { repository: string; tags: string[] }[] {
    const byRepository = new Map<string, Set<string>>();
    for (const row of this.statements.usageRepositories.all(digest, digest, digest) as { name: string }[])
      byRepository.set(row.name, new Set());
    for (const row of this.statements.usageTags.all(digest, digest) as {
      repository: string;
      tag: string;
    }[]) {
      const tags = byRepository.get(row.repository) ?? new Set<string>();
      tags.add(row.tag);
      byRepository.set(row.repository, tags);
    }
    return [...byRepository].map(([repository, tags]) => ({ repository, tags: [...tags].sort() }));
  }

  dangling(limit: number): DanglingPointer[] {
    return (
      this.statements.dangling.all(limit) as {
        kind: DanglingPointer["kind"];
        repository: string;
        digest: string;
        source: string | null;
      }[]
    ).map((r) => ({
      kind: r.kind,
      repository: r.repository,
      digest: r.digest,
      ...(r.source !== null ? { from: r.source } : {}),
    }));
  }
}

/** The recursive walk from a digest up to every manifest that reaches it, shared by scrub's usage report. */
const reachingManifests = `
WITH RECURSIVE reach(repository_id, manifest) AS (
  SELECT repository_id, digest FROM manifests WHERE digest = ?
  UNION SELECT repository_id, manifest_digest FROM manifest_references WHERE child_digest = ?
  UNION SELECT r.repository_id, r.manifest_digest FROM manifest_references r
    JOIN reach ON r.repository_id = reach.repository_id AND r.child_digest = reach.manifest
    WHERE r.kind = 'manifest'
)`;

function prepare(db: Database.Database) {
  return {
    pin: db.prepare(
      `INSERT INTO gc_blob_pins (digest, pinned_at) VALUES (?, ?)
       ON CONFLICT (digest) DO UPDATE SET pinned_at = excluded.pinned_at WHERE tombstoned_at IS NULL`,
    ),
    pinOf: db.prepare("SELECT pinned_at, tombstoned_at FROM gc_blob_pins WHERE digest = ?"),
    tombstone: db.prepare(
      `INSERT INTO gc_blob_pins (digest, pinned_at, tombstoned_at) VALUES (?, 0, ?)
       ON CONFLICT (digest) DO UPDATE SET tombstoned_at = coalesce(tombstoned_at, ?)`,
    ),
    clearTombstone: db.prepare("DELETE FROM gc_blob_pins WHERE digest = ? AND tombstoned_at IS NOT NULL"),
    tombstones: db.prepare("SELECT digest FROM gc_blob_pins WHERE tombstoned_at < ? LIMIT ?").pluck(),
    prunePins: db.prepare("DELETE FROM gc_blob_pins WHERE pinned_at < ? AND tombstoned_at IS NULL"),
    blobRow: db.prepare("SELECT size, created_at FROM blobs WHERE digest = ?"),
    blobSize: db.prepare("SELECT size FROM blobs WHERE digest = ?").pluck(),
    blobReferenced: db.prepare(
      `SELECT 1 WHERE EXISTS (SELECT 1 FROM repository_blobs WHERE digest = ?)
       OR EXISTS (SELECT 1 FROM manifests WHERE digest = ?)`,
    ),
    deleteBlob: db.prepare("DELETE FROM blobs WHERE digest = ?"),
    deletableManifest: db.prepare(
      `SELECT m.digest, m.media_type, m.size, m.subject_digest,
         (m.subject_digest IS NOT NULL AND NOT EXISTS (SELECT 1 FROM manifests s
           WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest)) AS orphan
       FROM manifests m WHERE m.repository_id = ? AND m.digest = ? AND m.created_at < ?
       AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.manifest_digest = m.digest)
       AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = m.repository_id
         AND r.child_digest = m.digest AND r.kind = 'manifest')`,
    ),
    unlinkUnreferenced: db.prepare(
      `DELETE FROM repository_blobs WHERE repository_id = ? AND digest = ? AND linked_at < ?
       AND NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.repository_id = repository_blobs.repository_id
         AND r.child_digest = repository_blobs.digest)`,
    ),
    unreferencedBlobs: db.prepare(
      `SELECT b.digest, b.size FROM blobs b WHERE b.digest > ? AND b.created_at < ?
       AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM gc_blob_pins p WHERE p.digest = b.digest AND p.pinned_at >= ?)
       ORDER BY b.digest LIMIT ?`,
    ),
    snapshotManifests: db.prepare(
      "SELECT digest, media_type, size, subject_digest, created_at FROM manifests WHERE repository_id = ?",
    ),
    snapshotTags: db.prepare("SELECT DISTINCT manifest_digest FROM tags WHERE repository_id = ?").pluck(),
    snapshotReferences: db.prepare(
      "SELECT manifest_digest, child_digest, kind FROM manifest_references WHERE repository_id = ?",
    ),
    snapshotLinks: db.prepare(
      `SELECT rb.digest, b.size, rb.linked_at FROM repository_blobs rb LEFT JOIN blobs b ON b.digest = rb.digest
       WHERE rb.repository_id = ?`,
    ),
    blobRecords: db.prepare("SELECT digest, size FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?"),
    manifestRecords: db.prepare(
      `SELECT r.name AS repository, m.digest, m.size, m.media_type FROM manifests m
       JOIN repositories r ON r.id = m.repository_id
       WHERE (r.name, m.digest) > (?, ?) ORDER BY r.name, m.digest LIMIT ?`,
    ),
    usageRepositories: db.prepare(
      `${reachingManifests}
       SELECT name FROM repositories WHERE id IN (SELECT repository_id FROM reach)
         OR id IN (SELECT repository_id FROM repository_blobs WHERE digest = ?) ORDER BY name`,
    ),
    usageTags: db.prepare(
      `${reachingManifests}
       SELECT DISTINCT r.name AS repository, t.name AS tag FROM reach
       JOIN tags t ON t.repository_id = reach.repository_id AND t.manifest_digest = reach.manifest
       JOIN repositories r ON r.id = reach.repository_id ORDER BY r.name, t.name`,
    ),
    dangling: db.prepare(
      `SELECT * FROM (
         SELECT 'link-without-blob' AS kind, r.name AS repository, rb.digest AS digest, NULL AS source
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
       ) LIMIT ?`,
    ),
  };
}
