import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PostgresMetadataStore } from "../../src/metadata/postgres/postgres-metadata-store.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { metadataStoreContract } from "./metadata-store-contract.js";

const schema = newSchemaName();
const open = () => PostgresMetadataStore.open({ url: requirePostgresUrl(), schema, poolSize: 10 });

metadataStoreContract(
  "postgres",
  { cachesListings: false, open, openAnother: open, cleanup: () => dropSchema(schema) },
  postgresSkip,
);

describe("PostgresMetadataStore: migrations", { skip: postgresSkip }, () => {
  test("instances starting at once migrate a fresh schema exactly once", async () => {
    const fresh = newSchemaName();
    try {
      const stores = await Promise.all(
        Array.from({ length: 6 }, () =>
          PostgresMetadataStore.open({ url: requirePostgresUrl(), schema: fresh, poolSize: 2 }),
        ),
      );
      for (const store of stores) await store.ping();
      assert.deepEqual(await stores[0]?.listRepositories(10, undefined), []);
      await Promise.all(stores.map((s) => s.close()));
      // And a restart finds it migrated.
      const again = await PostgresMetadataStore.open({
        url: requirePostgresUrl(),
        schema: fresh,
        poolSize: 1,
      });
      await again.close();
    } finally {
      await dropSchema(fresh);
    }
  });

  test("an unreachable database fails at start with the driver's error", async () => {
    await assert.rejects(
      PostgresMetadataStore.open({
        url: "postgres://nobody@127.0.0.1:1/none",
        schema: "public",
        poolSize: 1,
      }),
    );
  });
});
