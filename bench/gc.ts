/**
 * Garbage collection benchmark: `npm run bench:gc -- [--manifests N] [--repositories N] [--json FILE]`.
 *
 * Fills a registry with N manifests (default 100,000) across R repositories (default 1,000), each image a
 * tagged manifest over a config shared by its repository and a layer of its own, deletes half the tags,
 * and times one garbage collection pass with untagged deletion on: how long it takes and how many
 * manifests per second it removes.
 *
 * The fill goes in-process straight to the stores (MetadataStore.recordBlob/putManifest, and blob files
 * written into the filesystem store's layout without fsync), not through 200,000 HTTP requests: the fill is
 * fixture, the pass is the measurement. The pass itself is the product path: the same GarbageCollector,
 * SQLite store (synchronous "full", the default) and filesystem store `berth serve` uses.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { GarbageCollector } from "../src/gc/garbage-collector.js";
import { SqliteMetadataStore } from "../src/metadata/sqlite/sqlite-metadata-store.js";
import { parseDigest } from "../src/oci/digest.js";
import { FilesystemBlobStore } from "../src/storage/filesystem/filesystem-blob-store.js";

const { values } = parseArgs({
  options: {
    manifests: { type: "string", default: "100000" },
    repositories: { type: "string", default: "1000" },
    json: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  process.stdout.write("npm run bench:gc -- [--manifests 100000] [--repositories 1000] [--json FILE]\n");
  process.exit(0);
}
const manifestCount = Number(values.manifests);
const repositoryCount = Number(values.repositories);
const perRepository = Math.ceil(manifestCount / repositoryCount);

const sha256 = (bytes: Buffer | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const log = (message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`);

const dataDir = await mkdtemp(join(tmpdir(), "berth-bench-gc-"));
try {
  const blobStore = await FilesystemBlobStore.open(dataDir);
  // The fill skips the per-commit flush; the pass below runs on a store reopened with the default "full".
  const metadataPath = join(dataDir, "metadata.sqlite");
  const filling = new SqliteMetadataStore(metadataPath, { synchronous: "normal" });
  const metadata = filling;
  const writeBlob = (digest: string, bytes: Buffer) =>
    writeFile(join(dataDir, "blobs", "sha256", digest.slice("sha256:".length)), bytes);

  log(`filling ${manifestCount} manifests in ${repositoryCount} repositories`);
  const fillStarted = performance.now();
  let manifests = 0;
  for (let r = 0; r < repositoryCount && manifests < manifestCount; r++) {
    const repository = `bench/repo-${String(r).padStart(4, "0")}`;
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", repository }));
    const configDigest = sha256(config);
    await writeBlob(configDigest, config);
    await metadata.recordBlob(repository, configDigest, config.length);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < perRepository && manifests < manifestCount; i++, manifests++) {
      const layer = randomBytes(256);
      const layerDigest = sha256(layer);
      writes.push(writeBlob(layerDigest, layer));
      await metadata.recordBlob(repository, layerDigest, layer.length);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: {
            mediaType: "application/vnd.oci.image.config.v1+json",
            digest: configDigest,
            size: config.length,
          },
          layers: [
            {
              mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
              digest: layerDigest,
              size: layer.length,
            },
          ],
        }),
      );
      const digest = sha256(manifest);
      writes.push(writeBlob(digest, manifest));
      const missing = await metadata.putManifest(
        repository,
        {
          digest,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          size: manifest.length,
          artifactType: undefined,
          subject: undefined,
          annotations: undefined,
          references: [
            { kind: "config", digest: parseDigest(configDigest), size: config.length },
            { kind: "layer", digest: parseDigest(layerDigest), size: layer.length },
          ],
          now: Date.now(),
        },
        `v${i}`,
      );
      if (missing.length > 0) throw new Error(`fill: ${repository} missing ${JSON.stringify(missing)}`);
    }
    await Promise.all(writes);
    if ((r + 1) % 100 === 0) log(`  ${manifests} manifests`);
  }
  const fillSeconds = (performance.now() - fillStarted) / 1000;

  log("deleting half the tags");
  let deletedTags = 0;
  for (let r = 0; r < repositoryCount; r++) {
    const repository = `bench/repo-${String(r).padStart(4, "0")}`;
    for (let i = 0; i < perRepository; i += 2)
      if (await metadata.deleteTag(repository, `v${i}`)) deletedTags++;
  }

  await filling.close();
  const durable = new SqliteMetadataStore(metadataPath, { synchronous: "full" });
  await new Promise((resolve) => setTimeout(resolve, 5));
  const collector = new GarbageCollector(
    durable,
    blobStore,
    {
      graceMs: 0,
      deleteUntagged: true,
      deleteOrphanReferrers: true,
      uploadIdleMs: 86_400_000,
      dryRun: false,
    },
    pino({ level: "warn" }),
  );
  log("one garbage collection pass");
  const passStarted = performance.now();
  // Phase boundaries, to tell where a pass spends its time.
  const phases: { phase: string; seconds: number }[] = [];
  let phaseStarted = passStarted;
  let phaseName = "tombstones";
  const summary = await collector.run({
    phase(name) {
      const at = performance.now();
      phases.push({ phase: phaseName, seconds: round((at - phaseStarted) / 1000) });
      phaseName = name;
      phaseStarted = at;
    },
    advance() {},
  });
  const passSeconds = (performance.now() - passStarted) / 1000;
  phases.push({ phase: phaseName, seconds: round((performance.now() - phaseStarted) / 1000) });
  await durable.close();

  const result = {
    manifests: manifestCount,
    repositories: repositoryCount,
    deletedTags,
    fillSeconds: round(fillSeconds),
    passSeconds: round(passSeconds),
    removed: summary,
    manifestsPerSecond: Math.round(summary.manifests / passSeconds),
    phases,
    machine: { cpus: cpus().length, loadavg: loadavg().map(round) },
  };
  process.stdout.write(
    `gc pass over ${manifestCount} manifests in ${repositoryCount} repositories (${deletedTags} tags deleted): ` +
      `${result.passSeconds} s, removed ${summary.manifests} manifests (${result.manifestsPerSecond}/s), ` +
      `${summary.links} links, ${summary.blobs} blobs (${summary.blobBytes} bytes); fill took ${result.fillSeconds} s; ` +
      `load average ${result.machine.loadavg.join(" ")} on ${result.machine.cpus} cores\n` +
      `phases: ${phases.map((p) => `${p.phase} ${p.seconds} s`).join(", ")}\n`,
  );
  if (values.json) await writeFile(values.json, `${JSON.stringify(result, null, 2)}\n`);
  if (summary.manifests !== deletedTags)
    throw new Error(`expected ${deletedTags} manifests removed, got ${summary.manifests}`);
} finally {
  await rm(dataDir, { recursive: true, force: true });
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
