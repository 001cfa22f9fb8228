import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import pg from "pg";
import { PostgresMetadataStore } from "../../src/metadata/postgres/postgres-metadata-store.js";
import { migrations as postgresMigrations } from "../../src/metadata/postgres/schema.js";
import { migrations as sqliteMigrations } from "../../src/metadata/sqlite/schema.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";

/**
 * A registry that already holds data when it upgrades gets its quota totals computed by the migration:
 * repository "a" links blobs of 10 and 20 bytes, and manifest m (5 bytes) that is also linked as a blob
 * (counted once), with two tags; repository "b" is empty.
 */
const seed = [
  "INSERT INTO repositories (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0)",
  "INSERT INTO blobs (digest, size, created_at) VALUES ('sha256:x', 10, 0), ('sha256:y', 20, 0), ('sha256:m', 5, 0)",
  "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES (1, 'sha256:x', 0), (1, 'sha256:y', 0), (1, 'sha256:m', 0)",
  `INSERT INTO manifests (repository_id, digest, media_type, size, created_at)
   VALUES (1, 'sha256:m', 'application/vnd.oci.image.manifest.v1+json', 5, 0)`,
  "INSERT INTO tags (repository_id, name, manifest_digest, updated_at) VALUES (1, 't1', 'sha256:m', 0), (1, 't2', 'sha256:m', 0)",
];

describe("quota totals of repositories created before the running totals existed", () => {
  test("sqlite: the migration computes them, and triggers keep them from there", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-usage-migration-"));
    try {
      const path = join(dir, "metadata.sqlite");
      const db = new Database(path);
      db.exec("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)");
      db.exec(sqliteMigrations[0]?.sql ?? "");
      db.prepare("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)").run();
      for (const statement of seed) db.exec(statement);
      db.close();
      const store = new SqliteMetadataStore(path, { synchronous: "normal" });
      try {
        assert.deepEqual(await store.repositoryUsage("a"), { bytes: 35, tags: 2 });
        assert.deepEqual(await store.repositoryUsage("b"), { bytes: 0, tags: 0 });
        await store.recordBlob("b", "sha256:x", 10);
        assert.equal(await store.deleteTag("a", "t1"), true);
        assert.deepEqual(await store.repositoryUsage("a"), { bytes: 35, tags: 1 });
        assert.deepEqual(await store.repositoryUsage("b"), { bytes: 10, tags: 0 });
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("postgres: the same", { skip: postgresSkip }, async () => {
    const schema = newSchemaName();
    const client = new pg.Client({ connectionString: requirePostgresUrl() });
    await client.connect();
    try {
      await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(`SET search_path = ${schema}`);
      await client.query(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
      );
      await client.query(postgresMigrations[0]?.sql ?? "");
      await client.query("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0)");
      for (const statement of seed) await client.query(statement);
      // Sequences move on as BIGSERIAL would have.
      await client.query("SELECT setval('repositories_id_seq', 2)");
      const store = await PostgresMetadataStore.open({ url: requirePostgresUrl(), schema, poolSize: 2 });
      try {
        assert.deepEqual(await store.repositoryUsage("a"), { bytes: 35, tags: 2 });
        assert.deepEqual(await store.repositoryUsage("b"), { bytes: 0, tags: 0 });
        await store.recordBlob("b", "sha256:x", 10);
        await store.recordBlob("c", "sha256:y", 20);
        assert.equal(await store.deleteTag("a", "t1"), true);
        assert.deepEqual(await store.repositoryUsage("a"), { bytes: 35, tags: 1 });
        assert.deepEqual(await store.repositoryUsage("b"), { bytes: 10, tags: 0 });
        assert.deepEqual(await store.repositoryUsage("c"), { bytes: 20, tags: 0 });
      } finally {
        await store.close();
      }
    } finally {
      await client.end();
      await dropSchema(schema);
    }
  });
});
