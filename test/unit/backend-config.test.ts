import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError, loadConfig } from "../../src/config/config.js";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig({ env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("config: storage and metadata drivers", () => {
  test("defaults stay filesystem and sqlite", () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.storage.driver, "filesystem");
    assert.equal(config.metadata.driver, "sqlite");
  });

  test("s3 and postgres from the environment", () => {
    const config = loadConfig({
      env: {
        BERTH_STORAGE_DRIVER: "s3",
        BERTH_STORAGE_S3_BUCKET: "blobs",
        BERTH_STORAGE_S3_ENDPOINT: "http://127.0.0.1:7480",
        BERTH_STORAGE_S3_FORCE_PATH_STYLE: "true",
        BERTH_STORAGE_S3_PREFIX: "a/b/",
        BERTH_METADATA_DRIVER: "postgres",
        BERTH_METADATA_POSTGRES_URL: "postgres://u:p@h:5432/d",
        BERTH_METADATA_POSTGRES_POOL_SIZE: "4",
      },
    });
    assert.deepEqual(config.storage.s3, {
      bucket: "blobs",
      endpoint: "http://127.0.0.1:7480",
      forcePathStyle: true,
      prefix: "a/b/",
      redirect: false,
      redirectExpirySeconds: 300,
    });
    assert.deepEqual(config.metadata.postgres, {
      url: "postgres://u:p@h:5432/d",
      schema: "public",
      poolSize: 4,
    });
  });

  test("blob GET redirects from the environment", () => {
    const config = loadConfig({
      env: {
        BERTH_STORAGE_DRIVER: "s3",
        BERTH_STORAGE_S3_BUCKET: "blobs",
        BERTH_STORAGE_S3_REDIRECT: "true",
        BERTH_STORAGE_S3_REDIRECT_EXPIRY_SECONDS: "60",
      },
    });
    assert.equal(config.storage.s3.redirect, true);
    assert.equal(config.storage.s3.redirectExpirySeconds, 60);
    const problems = problemsOf({ BERTH_STORAGE_S3_REDIRECT_EXPIRY_SECONDS: "0" });
    assert.ok(
      problems.some((p) => p.includes("BERTH_STORAGE_S3_REDIRECT_EXPIRY_SECONDS")),
      problems.join("\n"),
    );
  });

  test("required settings and bad values are reported with their names", () => {
    const problems = problemsOf({
      BERTH_STORAGE_DRIVER: "s3",
      BERTH_METADATA_DRIVER: "postgres",
    });
    assert.ok(
      problems.some((p) => p.includes("BERTH_STORAGE_S3_BUCKET")),
      problems.join("\n"),
    );
    assert.ok(
      problems.some((p) => p.includes("BERTH_METADATA_POSTGRES_URL")),
      problems.join("\n"),
    );
    const bad = problemsOf({
      BERTH_STORAGE_DRIVER: "gcs",
      BERTH_STORAGE_S3_PREFIX: "no-slash",
      BERTH_METADATA_POSTGRES_URL: "mysql://x",
      BERTH_METADATA_POSTGRES_SCHEMA: "Robert'); DROP",
    });
    for (const name of ["driver", "prefix", "postgres.url", "postgres.schema"]) {
      assert.ok(
        bad.some((p) => p.includes(name)),
        `${name} in\n${bad.join("\n")}`,
      );
    }
  });
});
