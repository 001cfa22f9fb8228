import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import { pushBlob, pushImage } from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/** The distribution API's named routes ("Endpoints" of the distribution spec) plus berth's own. */
const knownRoutes = new Set([
  "base",
  "catalog",
  "tags",
  "manifest",
  "blob",
  "blob-upload",
  "blob-upload-chunk",
  "referrers",
  "/healthz",
  "/readyz",
  "/metrics",
  "/token",
  "unmatched",
]);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparseable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1] as string] = pair[2] as string;
    samples.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return samples;
}

async function scrape(url: string, path = "/metrics"): Promise<Sample[]> {
  const response = await fetch(`${url}${path}`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return parseMetrics(await response.text());
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

describe("metrics", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => {
    await registry?.close();
  });

  test("request counters carry named routes, never raw paths, however many repositories", async () => {
    const before = await scrape(registry.url);
    const repositories = Array.from(
      { length: 50 },
      (_, i) => `cardinality/repo-${i}-${randomBytes(3).toString("hex")}`,
    );
    for (const repository of repositories) await pushImage(registry.url, repository, "v1");
    // Unknown paths and probes must not mint series either.
    for (let i = 0; i < 20; i++)
      await (await fetch(`${registry.url}/nowhere/${randomBytes(4).toString("hex")}`)).text();
    const after = await scrape(registry.url);

    const requestSeries = after.filter((s) => s.name === "berth_http_requests_total");
    for (const series of requestSeries)
      assert.ok(knownRoutes.has(series.labels.route ?? ""), `route ${series.labels.route}`);
    const text = JSON.stringify(after);
    for (const repository of repositories)
      assert.ok(!text.includes(repository), `${repository} leaked into a label`);
    // 50 repositories, 150 pushes: the series are per route/method/status, a handful.
    assert.ok(requestSeries.length < 20, `${requestSeries.length} request series`);
    const blobPushes =
      sum(after, "berth_http_requests_total", { route: "blob-upload", method: "POST", status: "201" }) -
      sum(before, "berth_http_requests_total", { route: "blob-upload", method: "POST", status: "201" });
    assert.equal(blobPushes, 100);
    const manifestPushes =
      sum(after, "berth_http_requests_total", { route: "manifest", method: "PUT", status: "201" }) -
      sum(before, "berth_http_requests_total", { route: "manifest", method: "PUT", status: "201" });
    assert.equal(manifestPushes, 50);
    assert.ok(sum(after, "berth_http_requests_total", { route: "unmatched", status: "404" }) >= 20);
    assert.ok(
      sum(after, "berth_http_request_duration_seconds_count", { route: "manifest", method: "PUT" }) >= 50,
    );
    assert.ok(
      after.some((s) => s.name === "berth_http_request_duration_seconds_bucket" && s.labels.le === "0.005"),
    );
  });

  test("bytes in and out are counted per route", async () => {
    const before = await scrape(registry.url);
    const blob = randomBytes(1024 * 1024);
    const digest = await pushBlob(registry.url, "bytes/repo", blob);
    const pulled = Buffer.from(
      await (await fetch(`${registry.url}/v2/bytes/repo/blobs/${digest}`)).arrayBuffer(),
    );
    assert.equal(pulled.length, blob.length);
    const after = await scrape(registry.url);
    const received =
      sum(after, "berth_http_received_bytes_total", { route: "blob-upload" }) -
      sum(before, "berth_http_received_bytes_total", { route: "blob-upload" });
    const sent =
      sum(after, "berth_http_sent_bytes_total", { route: "blob" }) -
      sum(before, "berth_http_sent_bytes_total", { route: "blob" });
    assert.equal(received, blob.length);
    // The body plus the response headers.
    assert.ok(sent >= blob.length && sent < blob.length + 2048, `sent ${sent}`);
  });

  test("store latency, uploads in progress and process metrics", async () => {
    const start = await fetch(`${registry.url}/v2/uploads/repo/blobs/uploads/`, { method: "POST" });
    assert.equal(start.status, 202);
    const samples = await scrape(registry.url);
    assert.ok(
      sum(samples, "berth_store_operation_duration_seconds_count", {
        store: "metadata",
        operation: "putManifest",
      }) > 0,
    );
    assert.ok(
      sum(samples, "berth_store_operation_duration_seconds_count", {
        store: "blob",
        // the filesystem store writes a closing PUT's bytes and publishes them in one call
        operation: "writeAndCommitUpload",
      }) > 0,
    );
    assert.ok(
      sum(samples, "berth_store_operation_duration_seconds_count", {
        store: "blob",
        operation: "openBlobReader",
      }) > 0,
    );
    assert.ok(sum(samples, "berth_uploads_in_progress") >= 1);
    assert.ok(sum(samples, "berth_process_resident_memory_bytes") > 0);
    assert.ok(samples.some((s) => s.name === "berth_gc_removed_bytes_total"));
  });
});

describe("metrics: access", () => {
  test("a bearer token guards /metrics when configured", async () => {
    const token = randomBytes(16).toString("hex");
    const registry = await startTestRegistry({ metrics: { bearerToken: token } });
    try {
      const denied = await fetch(`${registry.url}/metrics`);
      assert.equal(denied.status, 401);
      await denied.text();
      const allowed = await fetch(`${registry.url}/metrics`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(allowed.status, 200);
      assert.match(await allowed.text(), /berth_http_requests_total/);
    } finally {
      await registry.close();
    }
  });

  test("a separate listen address serves metrics and probes, and the registry port does not", async () => {
    const registry = await startTestRegistry({ metrics: { listen: "127.0.0.1:0" } });
    try {
      const onMain = await fetch(`${registry.url}/metrics`);
      assert.equal(onMain.status, 404);
      await onMain.text();
      const address = registry.server.metricsAddress;
      assert.ok(address);
      const samples = await scrape(`http://${address}`);
      assert.ok(samples.some((s) => s.name === "berth_http_requests_total"));
      const ready = await fetch(`http://${address}/readyz`);
      assert.equal(ready.status, 200);
      await ready.text();
    } finally {
      await registry.close();
    }
  });

  test("metrics can be turned off", async () => {
    const registry = await startTestRegistry({ metrics: { enabled: false } });
    try {
      const response = await fetch(`${registry.url}/metrics`);
      assert.equal(response.status, 404);
      await response.text();
    } finally {
      await registry.close();
    }
  });
});

async function readyStatus(url: string): Promise<number> {
  const response = await fetch(`${url}/readyz`);
  await response.text();
  return response.status;
}

/** The failed probes log warnings, expected here. */
const quiet = { log: { level: "error" as const } };

describe("health", () => {
  test("readiness fails while the blob store's directories are gone and recovers", async () => {
    const registry = await startTestRegistry(quiet);
    try {
      assert.equal(await readyStatus(registry.url), 200);
      // As root, permissions do not stop writes; a directory replaced by a file does.
      const tmp = join(registry.dataDir, "tmp");
      await rename(tmp, `${tmp}.away`);
      await writeFile(tmp, "not a directory");
      assert.equal(await readyStatus(registry.url), 503);
      const live = await fetch(`${registry.url}/healthz`);
      assert.equal(live.status, 200, "liveness does not depend on the stores");
      await live.text();
      await rm(tmp);
      await rename(`${tmp}.away`, tmp);
      assert.equal(await readyStatus(registry.url), 200);

      const blobs = join(registry.dataDir, "blobs");
      await rename(blobs, `${blobs}.away`);
      await writeFile(blobs, "");
      assert.equal(await readyStatus(registry.url), 503);
      await rm(blobs);
      await rename(`${blobs}.away`, blobs);
      assert.equal(await readyStatus(registry.url), 200);
    } finally {
      await registry.close();
    }
  });

  test("readiness fails once the SQLite metadata store is closed", async () => {
    const registry = await startTestRegistry(quiet);
    try {
      assert.equal(await readyStatus(registry.url), 200);
      await registry.server.registry.ctx.metadata.close();
      assert.equal(await readyStatus(registry.url), 503);
      const samples = parseMetrics(await (await fetch(`${registry.url}/metrics`)).text());
      assert.ok(sum(samples, "berth_store_errors_total", { store: "metadata", operation: "ping" }) >= 1);
    } finally {
      await registry.close().catch(() => undefined);
    }
  });

  test("readiness fails while the PostgreSQL schema is unreachable and recovers", {
    skip: postgresSkip,
  }, async () => {
    const schema = newSchemaName();
    const registry = await startTestRegistry({
      ...quiet,
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema, poolSize: 2 } },
    });
    const admin = new pg.Client({ connectionString: requirePostgresUrl() });
    await admin.connect();
    try {
      assert.equal(await readyStatus(registry.url), 200);
      await admin.query(`ALTER SCHEMA ${schema} RENAME TO ${schema}_away`);
      assert.equal(await readyStatus(registry.url), 503);
      await admin.query(`ALTER SCHEMA ${schema}_away RENAME TO ${schema}`);
      assert.equal(await readyStatus(registry.url), 200);
    } finally {
      await admin.query(`ALTER SCHEMA IF EXISTS ${schema}_away RENAME TO ${schema}`).catch(() => undefined);
      await admin.end();
      await registry.close();
      await dropSchema(schema);
    }
  });
});
