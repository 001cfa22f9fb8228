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
  // policy: per-repository running totals for quotas, kept by triggers so every write path (GC's too)
  // keeps them exact; summing on each check took ~90 ms at 10k blobs. A digest both linked as a blob and
  // recorded as a manifest of one repository counts once. The functions resolve tables through the
  // connection's search_path, which is always berth's schema.
  {
    version: 2,
    sql: `
CREATE TABLE repository_usage (
  repository_id BIGINT PRIMARY KEY,
  bytes BIGINT NOT NULL,
  tags BIGINT NOT NULL
);
INSERT INTO repository_usage (repository_id, bytes, tags)
SELECT r.id,
  coalesce((SELECT sum(size) FROM (
    SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = r.id
    UNION SELECT digest, size FROM manifests WHERE repository_id = r.id) u), 0),
  (SELECT count(*) FROM tags WHERE repository_id = r.id)
FROM repositories r;
CREATE FUNCTION repository_usage_repository() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO repository_usage (repository_id, bytes, tags) VALUES (NEW.id, 0, 0);
  ELSE
    DELETE FROM repository_usage WHERE repository_id = OLD.id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER repository_usage_repository AFTER INSERT OR DELETE ON repositories
  FOR EACH ROW EXECUTE FUNCTION repository_usage_repository();
CREATE FUNCTION repository_usage_blob() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed repository_blobs;
  delta BIGINT;
BEGIN
  IF TG_OP = 'INSERT' THEN changed := NEW; delta := 1; ELSE changed := OLD; delta := -1; END IF;
  IF NOT EXISTS (SELECT 1 FROM manifests WHERE repository_id = changed.repository_id AND digest = changed.digest) THEN
    UPDATE repository_usage
    SET bytes = bytes + delta * coalesce((SELECT size FROM blobs WHERE digest = changed.digest), 0)
    WHERE repository_id = changed.repository_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER repository_usage_blob AFTER INSERT OR DELETE ON repository_blobs
  FOR EACH ROW EXECUTE FUNCTION repository_usage_blob();
CREATE FUNCTION repository_usage_manifest() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  changed manifests;
  delta BIGINT;
BEGIN
  IF TG_OP = 'INSERT' THEN changed := NEW; delta := 1; ELSE changed := OLD; delta := -1; END IF;
  IF NOT EXISTS (SELECT 1 FROM repository_blobs WHERE repository_id = changed.repository_id AND digest = changed.digest) THEN
    UPDATE repository_usage SET bytes = bytes + delta * changed.size WHERE repository_id = changed.repository_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER repository_usage_manifest AFTER INSERT OR DELETE ON manifests
  FOR EACH ROW EXECUTE FUNCTION repository_usage_manifest();
CREATE FUNCTION repository_usage_tag() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    UPDATE repository_usage SET tags = tags + 1 WHERE repository_id = NEW.repository_id;
  ELSE
    UPDATE repository_usage SET tags = tags - 1 WHERE repository_id = OLD.repository_id;
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER repository_usage_tag AFTER INSERT OR DELETE ON tags
  FOR EACH ROW EXECUTE FUNCTION repository_usage_tag();
`,
  },
  {
    // observe: notification outbox (events written with the change they describe).
    version: 3,
    sql: `
CREATE TABLE event_outbox (
  id BIGSERIAL PRIMARY KEY,
  endpoint TEXT COLLATE "C" NOT NULL,
  payload TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  available_at BIGINT NOT NULL,
  created_at BIGINT NOT NULL
);
CREATE INDEX event_outbox_due ON event_outbox (endpoint, available_at, id);
`,
  },
  // gc: online garbage collection.
  {
    version: 4,
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
