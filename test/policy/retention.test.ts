import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { type BerthConfigInput, loadConfig } from "../../src/config/config.js";
import type { PoliciesConfig } from "../../src/config/policy-config.js";
import type { MetadataStore, NewManifest } from "../../src/metadata/metadata-store.js";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { applyRetention, type RetentionEvent } from "../../src/registry/retention.js";
import { digestOf, pushImage, randomHex } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const day = 86_400_000;
const now = Date.UTC(2026, 0, 31);

function policiesOf(rules: unknown[]): PoliciesConfig {
  return loadConfig({ file: { policies: { rules } } as BerthConfigInput, env: {} }).policies;
}

function manifestAt(at: number): NewManifest {
  const content = `image-${randomUUID()}`;
  return {
    digest: digestOf(content),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: content.length,
    artifactType: undefined,
    subject: undefined,
    annotations: undefined,
    references: [],
    now: at,
  };
}

/** Tags t1..t6 pushed 1..6 days before `now` (t1 newest), plus `latest` and `v1.0`, 10 days old. */
async function seed(store: MetadataStore, repository: string): Promise<Map<string, string>> {
  const digests = new Map<string, string>();
  for (let i = 1; i <= 6; i++) {
    const image = manifestAt(now - i * day);
    await store.putManifest(repository, image, `t${i}`);
    digests.set(`t${i}`, image.digest);
  }
  for (const tag of ["latest", "v1.0"]) {
    const image = manifestAt(now - 10 * day);
    await store.putManifest(repository, image, tag);
    digests.set(tag, image.digest);
  }
  return digests;
}

const names = (events: RetentionEvent[]) => events.map((e) => `${e.repository}:${e.tag}`).sort();

describe("retention: which tags go", () => {
  let dir: string;
  let store: SqliteMetadataStore;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-retention-"));
    store = new SqliteMetadataStore(join(dir, "metadata.sqlite"), { synchronous: "normal" });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const remaining = async (repository: string) => (await store.listTags(repository, 100, undefined)) ?? [];

  test("keepNewest with protect: dry run reports, the real run deletes exactly that, events carry the digest", async () => {
    const repository = `keep/${randomHex(3)}`;
    const digests = await seed(store, repository);
    const policies = policiesOf([
      { repositories: ["keep/*"], retention: { keepNewest: 2, protect: ["latest"] }, immutableTags: ["v*"] },
    ]);
    const seen: RetentionEvent[] = [];
    const dry = await applyRetention(store, policies, now, { dryRun: true, onRemoved: (e) => seen.push(e) });
    assert.deepEqual(
      names(dry),
      ["t3", "t4", "t5", "t6"].map((t) => `${repository}:${t}`),
    );
    assert.deepEqual(seen, dry, "every removal goes through the callback");
    assert.ok(dry.every((e) => e.dryRun && e.action === "delete" && e.rule === "rule 1 (keep/*)"));
    assert.equal((await remaining(repository)).length, 8, "a dry run deletes nothing");

    const real = await applyRetention(store, policies, now, { onRemoved: () => undefined });
    assert.deepEqual(names(real), names(dry));
    for (const event of real) {
      assert.equal(event.dryRun, false);
      assert.equal(event.digest, digests.get(event.tag));
      assert.equal(event.reason, "not among the newest 2");
    }
    assert.deepEqual(await remaining(repository), ["latest", "t1", "t2", "v1.0"]);
    assert.ok(await store.getManifest(repository, digests.get("t6") as string), "manifests stay for GC");
    assert.deepEqual(await applyRetention(store, policies, now, { onRemoved: () => undefined }), []);
  });

  test("olderThan alone, and together with keepNewest (a tag goes only when both call for it)", async () => {
    const older = `older/${randomHex(3)}`;
    const both = `both/${randomHex(3)}`;
    await seed(store, older);
    await seed(store, both);
    const policies = policiesOf([
      { repositories: ["older/*"], retention: { olderThan: "3d", protect: ["latest", "v*"] } },
      { repositories: ["both/*"], retention: { keepNewest: 1, olderThan: "4d", tagPattern: "t*" } },
    ]);
    const events = await applyRetention(store, policies, now, { onRemoved: () => undefined });
    assert.deepEqual(
      names(events),
      [...["t5", "t6"].map((t) => `${both}:${t}`), ...["t4", "t5", "t6"].map((t) => `${older}:${t}`)].sort(),
    );
    assert.deepEqual(await remaining(older), ["latest", "t1", "t2", "t3", "v1.0"], "3 days exactly is kept");
    assert.deepEqual(await remaining(both), ["latest", "t1", "t2", "t3", "t4", "v1.0"], "tagPattern t*");
    const reason = events.find((e) => e.repository === both)?.reason ?? "";
    assert.match(reason, /^not among the newest 1 and last pushed [56]d ago$/);
  });

  test("first matching rule wins: an earlier rule without retention exempts", async () => {
    const exempt = `keep/exempt-${randomHex(3)}`;
    await seed(store, exempt);
    const policies = policiesOf([
      { repositories: ["keep/exempt-*"], quota: { tags: 100 } },
      { repositories: ["**"], retention: { keepNewest: 1 } },
    ]);
    const events = await applyRetention(store, policies, now, { dryRun: true, onRemoved: () => undefined });
    assert.ok(events.length > 0, "the catch-all applies elsewhere");
    assert.ok(!events.some((e) => e.repository === exempt));
  });

  test("a tag pushed again after retention listed it is kept (compare-and-delete)", async () => {
    const repository = `race/${randomHex(3)}`;
    await seed(store, repository);
    const repushed = manifestAt(now);
    // A store that lets a push land between retention's listing and its deletes.
    const racing = new Proxy(store, {
      get(target, property, receiver) {
        if (property === "listTagRecords")
          return async (name: string) => {
            const records = await target.listTagRecords(name);
            if (name === repository) await target.putManifest(repository, repushed, "t6");
            return records;
          };
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const policies = policiesOf([{ repositories: ["race/*"], retention: { keepNewest: 4 } }]);
    const events = await applyRetention(racing, policies, now, { onRemoved: () => undefined });
    // t5, t6, latest and v1.0 are past the newest 4; t6 was pushed again meanwhile.
    assert.deepEqual(names(events), [`${repository}:latest`, `${repository}:t5`, `${repository}:v1.0`]);
    assert.equal((await store.getTaggedManifest(repository, "t6"))?.digest, repushed.digest);
  });

  test("the default report is one structured pino line per removal", async () => {
    const repository = `logged/${randomHex(3)}`;
    const digests = await seed(store, repository);
    const lines: string[] = [];
    const logger = pino(
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(...chunk.toString().split("\n").filter(Boolean));
          done();
        },
      }),
    );
    const policies = policiesOf([{ repositories: ["logged/*"], retention: { olderThan: "9d" } }]);
    await applyRetention(store, policies, now, { logger });
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(records.map((r) => r.tag).sort(), ["latest", "v1.0"], lines.join("\n"));
    for (const record of records) {
      assert.equal(record.msg, "retention deleted tag");
      assert.equal(record.event, "retention.delete");
      assert.equal(record.action, "delete");
      assert.equal(record.repository, repository);
      assert.equal(record.digest, digests.get(record.tag as string));
      assert.equal(record.level, 30);
    }
  });
});

describe("berth retention (CLI)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-retention-cli-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("--dry-run reports without deleting; without it, deletes; a bad policy exits 2", async () => {
    const dataDir = join(dir, "data");
    const configFile = join(dir, "berth.yaml");
    await writeFile(
      configFile,
      `dataDir: ${dataDir}\nlog: {format: json}\npolicies:\n  rules:\n    - repositories: ["app"]\n      retention: {olderThan: 1d, protect: [latest]}\n`,
    );
    loadConfig({ file: configFile, env: {} });
    const { mkdir } = await import("node:fs/promises");
    await mkdir(dataDir, { recursive: true });
    const store = new SqliteMetadataStore(join(dataDir, "metadata.sqlite"), { synchronous: "full" });
    const old = manifestAt(Date.now() - 2 * day);
    const fresh = manifestAt(Date.now());
    await store.putManifest("app", old, "old");
    await store.putManifest("app", old, "latest");
    await store.putManifest("app", fresh, "fresh");
    await store.close();

    const run = (...args: string[]) =>
      spawnSync(process.execPath, [cli, "retention", "--config", configFile, ...args], {
        encoding: "utf8",
        env: { PATH: process.env.PATH },
      });
    const dry = run("--dry-run");
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stderr, /retention would delete 1 tag\(s\)/);
    const dryLines = dry.stdout
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      dryLines.map((l) => [l.msg, l.repository, l.tag, l.digest, l.dryRun]),
      [["retention would delete tag", "app", "old", old.digest, true]],
    );
    const real = run();
    assert.equal(real.status, 0, real.stderr);
    assert.match(real.stderr, /retention deleted 1 tag\(s\)/);
    assert.match(real.stdout, /"msg":"retention deleted tag"/);
    const after = new SqliteMetadataStore(join(dataDir, "metadata.sqlite"), { synchronous: "full" });
    try {
      assert.deepEqual(await after.listTags("app", 10, undefined), ["fresh", "latest"]);
    } finally {
      await after.close();
    }

    await writeFile(
      configFile,
      `dataDir: ${dataDir}\npolicies:\n  rules:\n    - repositories: ["app"]\n      retention: {olderThan: soon}\n`,
    );
    const bad = run();
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /policies\.rules\.0\.retention\.olderThan: must be a positive duration/);
  });
});

describe("retention in the server, on its schedule", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({
      policies: {
        retentionIntervalSeconds: 1,
        rules: [{ repositories: ["sched/*"], retention: { keepNewest: 1 } }],
      },
    });
  });
  after(async () => {
    await registry?.close();
  });

  test("keeps only the newest tag; the untagged manifests stay pullable by digest", async () => {
    const repo = `sched/${randomHex(3)}`;
    const pushed = [];
    for (const tag of ["a", "b", "c"]) {
      pushed.push(await pushImage(registry.url, repo, tag));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    let tags: string[] = [];
    for (let attempt = 0; attempt < 100; attempt++) {
      tags = ((await (await fetch(`${registry.url}/v2/${repo}/tags/list`)).json()) as { tags: string[] })
        .tags;
      if (tags.length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(tags, ["c"]);
    const head = await fetch(`${registry.url}/v2/${repo}/manifests/${pushed[0]?.digest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
  });
});
