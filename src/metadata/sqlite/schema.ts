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
  {
    // observe: notification outbox (events written with the change they describe).
    version: 2,
    sql: `
CREATE TABLE event_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  endpoint TEXT NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  available_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX event_outbox_due ON event_outbox (endpoint, available_at, id);
`,
  },
];
