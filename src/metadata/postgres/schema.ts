/**
 * PostgreSQL schema, as ordered migrations, applied at start under an advisory lock so several instances
 * starting at once apply each migration exactly once. A migration is never edited after release.
 * Text columns use the "C" collation: byte order, the same order SQLite gives tags, repositories and
 * referrers, whatever the database's locale.
 */
export const migrations: { version: number; sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE repositories (
  id BIGSERIAL PRIMARY KEY,
  name TEXT COLLATE "C" NOT NULL UNIQUE,
  created_at BIGINT NOT NULL
);
CREATE TABLE blobs (
  digest TEXT COLLATE "C" PRIMARY KEY,
  size BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE TABLE repository_blobs (
  repository_id BIGINT NOT NULL,
  digest TEXT COLLATE "C" NOT NULL,
  linked_at BIGINT NOT NULL,
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
CREATE TABLE manifests (
  repository_id BIGINT NOT NULL,
  digest TEXT COLLATE "C" NOT NULL,
  media_type TEXT NOT NULL,
  artifact_type TEXT,
  size BIGINT NOT NULL,
  subject_digest TEXT COLLATE "C",
  annotations TEXT,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repository_id, subject_digest, digest)
  WHERE subject_digest IS NOT NULL;
CREATE TABLE manifest_references (
  repository_id BIGINT NOT NULL,
  manifest_digest TEXT COLLATE "C" NOT NULL,
  child_digest TEXT COLLATE "C" NOT NULL,
  kind TEXT NOT NULL,
  PRIMARY KEY (repository_id, manifest_digest, child_digest, kind)
);
CREATE INDEX manifest_references_by_child ON manifest_references (repository_id, child_digest);
CREATE TABLE tags (
  repository_id BIGINT NOT NULL,
  name TEXT COLLATE "C" NOT NULL,
  manifest_digest TEXT COLLATE "C" NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (repository_id, name)
);
-- The spec's tag order is case-insensitive; ties broken by the exact name.
CREATE INDEX tags_lexical ON tags (repository_id, lower(name), name);
CREATE INDEX tags_by_manifest ON tags (repository_id, manifest_digest);
CREATE TABLE upload_sessions (
  id TEXT COLLATE "C" PRIMARY KEY,
  repository TEXT COLLATE "C" NOT NULL,
  received_bytes BIGINT NOT NULL,
  hash_algorithm TEXT NOT NULL,
  started_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX upload_sessions_by_activity ON upload_sessions (updated_at);
`,
  },
  // gc: online garbage collection (lead: renumber if another area took 2).
  {
    version: 2,
    sql: `
-- A push about to publish a blob pins its digest first; GC tombstones a digest before deleting its bytes.
CREATE TABLE gc_blob_pins (
  digest TEXT COLLATE "C" PRIMARY KEY,
  pinned_at BIGINT NOT NULL,
  tombstoned_at BIGINT
);
CREATE INDEX gc_blob_pins_by_time ON gc_blob_pins (pinned_at);
-- A manifest's bytes are a blob row too; GC keeps that row while any repository has the manifest.
CREATE INDEX manifests_by_digest ON manifests (digest);
`,
  },
];
