import { test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry } from "../helpers/registry.js";
import { deleteTestBucket, s3Skip, testBucket } from "../helpers/s3.js";
import { raceGcWithPushes } from "./races.js";

test("gc races 16 pushing clients on SQLite and the filesystem and loses nothing acknowledged", async (t) => {
  // synchronous normal: the same transactions, fewer fsyncs, so more rounds race in the time given.
  const registry = await startTestRegistry({
    gc: { enabled: false },
    metadata: { sqlite: { synchronous: "normal" } },
  });
  try {
    const stats = await raceGcWithPushes(registry, { clients: 16, durationMs: 10_000, graceMs: 1000 });
    t.diagnostic(JSON.stringify(stats));
  } finally {
    await registry.close();
  }
});

test("gc races 16 pushing clients on PostgreSQL and S3 and loses nothing acknowledged", {
  skip: postgresSkip || s3Skip,
}, async (t) => {
  const schema = newSchemaName();
  const bucket = testBucket();
  // Validates the settings the same way berth serve does before handing them to the test registry.
  const storage = loadConfig({
    file: {
      storage: {
        driver: "s3",
        s3: { endpoint: bucket.endpoint, bucket: bucket.bucket, forcePathStyle: bucket.forcePathStyle },
      },
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema } },
    },
    env: {},
  });
  const { S3BlobStore } = await import("../../src/storage/s3/s3-blob-store.js");
  (await S3BlobStore.open({ ...bucket, prefix: "", createBucket: true })).destroy();
  const registry = await startTestRegistry({
    gc: { enabled: false },
    storage: storage.storage,
    metadata: storage.metadata,
  });
  try {
    const stats = await raceGcWithPushes(registry, { clients: 16, durationMs: 20_000, graceMs: 5000 });
    t.diagnostic(JSON.stringify(stats));
  } finally {
    await registry.close();
    await dropSchema(schema);
    await deleteTestBucket(bucket);
  }
});
