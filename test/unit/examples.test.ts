import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config/config.js";

const examples = fileURLToPath(new URL("../../../examples/", import.meta.url));

describe("examples/*.yaml", () => {
  const files = readdirSync(examples).filter((name) => name.endsWith(".yaml"));

  test("there are examples", () => {
    assert.ok(files.includes("embedded.yaml") && files.includes("scale-out.yaml"), files.join(", "));
  });

  for (const file of files) {
    test(`${file} is a valid config`, () => {
      loadConfig({ file: `${examples}${file}`, env: {} });
    });
  }

  test("embedded.yaml is exactly the defaults", () => {
    const fromFile = loadConfig({ file: `${examples}embedded.yaml`, env: {} });
    assert.deepEqual(fromFile, loadConfig({ env: {} }));
  });

  test("scale-out.yaml uses S3 and PostgreSQL, secrets overridable from the environment", () => {
    const config = loadConfig({
      file: `${examples}scale-out.yaml`,
      env: { BERTH_METADATA_POSTGRES_URL: "postgres://berth:secret@db:5432/berth" },
    });
    assert.equal(config.storage.driver, "s3");
    assert.equal(config.storage.s3.bucket, "berth-blobs");
    assert.equal(config.storage.s3.forcePathStyle, true);
    assert.equal(config.metadata.driver, "postgres");
    assert.equal(config.metadata.postgres.url, "postgres://berth:secret@db:5432/berth");
    assert.equal(config.metadata.postgres.schema, "berth");
  });
});
