/**
 * SQLite schema, as ordered migrations. A migration is applied once, in a transaction, and never edited
 * after release: add a new one instead.
 */
export const migrations: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE repositories (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);
CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE repository_blobs (
  repository_id INTEGER NOT NULL,
  digest TEXT NOT NULL,
  linked_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
CREATE TABLE manifests (
  repository_id INTEGER NOT NULL,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  artifact_type TEXT,
  size INTEGER NOT NULL,
  subject_digest TEXT,
  annotations TEXT,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;
CREATE INDEX manifests_by_subject ON manifests (repository_id, subject_digest, digest)
  WHERE subject_digest IS NOT NULL;
CREATE TABLE manifest_references (
  repository_id INTEGER NOT NULL,
  manifest_digest TEXT NOT NULL,
  child_digest TEXT NOT NULL,
  kind TEXT NOT NULL,
  PRIMARY KEY (repository_id, manifest_digest, child_digest, kind)
) WITHOUT ROWID;
CREATE INDEX manifest_references_by_child ON manifest_references (repository_id, child_digest);
CREATE TABLE tags (
  repository_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, name)
) WITHOUT ROWID;
-- The spec's tag order is case-insensitive; ties broken by the exact name.
CREATE INDEX tags_lexical ON tags (repository_id, lower(name), name);
CREATE INDEX tags_by_manifest ON tags (repository_id, manifest_digest);
CREATE TABLE upload_sessions (
  id TEXT PRIMARY KEY,
  repository TEXT NOT NULL,
  received_bytes INTEGER NOT NULL,
  hash_algorithm TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX upload_sessions_by_activity ON upload_sessions (updated_at);
`,
  },
  // gc: online garbage collection (lead: renumber if another area took 2).
  {
    version: 2,
    sql: `
-- A push about to publish a blob pins its digest first; GC tombstones a digest before deleting its bytes.
-- One row per digest, so a pin and a tombstone of the same digest are serialised by the row.
CREATE TABLE gc_blob_pins (
  digest TEXT PRIMARY KEY,
  pinned_at INTEGER NOT NULL,
  tombstoned_at INTEGER
) WITHOUT ROWID;
CREATE INDEX gc_blob_pins_by_time ON gc_blob_pins (pinned_at);
-- A manifest's bytes are a blob row too; GC keeps that row while any repository has the manifest.
CREATE INDEX manifests_by_digest ON manifests (digest);
`,
  },
];
