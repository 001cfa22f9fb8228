import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Answer,
  BerthProcess,
  call,
  describeAnswer,
  freePort,
  imageManifest,
  isScript,
  manifestType,
  numberFlag,
  sha256,
  sleep,
} from "../helpers/reliability.js";

/**
 * Soak: many concurrent clients mix pushes (monolithic and chunked), pulls, tag lists and tag deletes
 * against one berth child process. No request may fail, and the child's resident memory at the end
 * must be within 10% of what it was after warm-up.
 *
 * Script: `node dist/test/reliability/soak.js --minutes 10 [--clients 32]`; the suite runs one minute.
 */

export interface SoakOptions {
  /** Load after warm-up, in seconds. */
  seconds: number;
  warmupSeconds?: number;
  clients?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  requests: number;
  byKind: Record<string, number>;
  errors: string[];
  rssAfterWarmupKiB: number;
  rssEndKiB: number;
  rssPeakKiB: number;
}

interface Image {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
}

/** Idle time before RSS is read, so buffers of the last requests are released and GC has run. */
// Long enough for V8's memory reducer to run its idle-time collections after traffic stops, so the
// readings after warm-up and at the end are taken in the same state.
const settleMs = 10_000;

/**
 * The most RSS may reach after the measured phase: 10% over the post-warm-up reading, and never less
 * than 16 MiB over it. On a machine busy with other tests the warm-up serves fewer requests, and V8 can
 * still be growing its heap by a few MiB when the first reading is taken.
 */
export function rssLimitKiB(afterWarmupKiB: number): number {
  return Math.max(afterWarmupKiB * 1.1, afterWarmupKiB + 16 * 1024);
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const clients = options.clients ?? 32;
  const warmupSeconds = options.warmupSeconds ?? 15;
  const log = options.log ?? (() => undefined);
  const dataDir = await mkdtemp(join(tmpdir(), "berth-soak-"));
  // glibc gives each thread-pool thread its own malloc arena, and freed memory parked in 16 arenas makes
  // RSS wander by more than the 10% a leak check allows; two arenas keep RSS tracking live memory.
  const berth = new BerthProcess({ dataDir, port: await freePort(), env: { MALLOC_ARENA_MAX: "2" } });
  const report: SoakReport = {
    requests: 0,
    byKind: {},
    errors: [],
    rssAfterWarmupKiB: 0,
    rssEndKiB: 0,
    rssPeakKiB: 0,
  };
  const fail = (message: string) => {
    if (report.errors.length < 100) report.errors.push(message);
  };

  // A fixed working set, re-pushed over and over: steady state must be reachable, so growth is a leak.
  const images: Image[] = Array.from({ length: 40 }, (_, i) => {
    const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", image: i }));
    const layers = [randomBytes(2048 + (i % 7) * 4096), randomBytes(1024 + (i % 5) * 8192)];
    const manifest = imageManifest(config, layers);
    return { config, layers, manifest, digest: sha256(manifest) };
  });
  const repositories = ["soak/a", "soak/b", "soak/c", "soak/d/e"];
  // Images whose manifest PUT was acknowledged per repository: pulls by digest of these must succeed.
  const pushed = new Map<string, Set<number>>(repositories.map((r) => [r, new Set()]));

  const request = async (
    kind: string,
    method: string,
    path: string,
    init: Parameters<typeof call>[3] = {},
  ) => {
    report.requests++;
    report.byKind[kind] = (report.byKind[kind] ?? 0) + 1;
    let answer: Answer;
    try {
      answer = await call(berth.url, method, path, { timeoutMs: 30_000, ...init });
    } catch (error) {
      fail(`${method} ${path}: ${(error as Error).message}`);
      return undefined;
    }
    if (answer.status >= 500) fail(`${method} ${path}: ${describeAnswer(answer)}`);
    return answer;
  };
  const expect = (answer: Answer | undefined, statuses: number[], what: string) => {
    if (answer && !statuses.includes(answer.status)) fail(`${what}: ${describeAnswer(answer)}`);
    return answer !== undefined && statuses.includes(answer.status);
  };

  const pushBlob = async (repository: string, blob: Buffer, chunked: boolean) => {
    const digest = sha256(blob);
    if (!chunked) {
      const answer = await request("push-blob", "POST", `/v2/${repository}/blobs/uploads/?digest=${digest}`, {
        body: blob,
        headers: { "Content-Type": "application/octet-stream" },
      });
      return expect(answer, [201], "monolithic push");
    }
    const started = await request("push-blob", "POST", `/v2/${repository}/blobs/uploads/`);
    if (!expect(started, [202], "start upload") || !started) return false;
    let location = started.headers.get("location") ?? "";
    const chunk = 4096;
    for (let offset = 0; offset < blob.length; offset += chunk) {
      const part = blob.subarray(offset, offset + chunk);
      const answer = await request("push-chunk", "PATCH", location, {
        body: part,
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `${offset}-${offset + part.length - 1}`,
        },
      });
      if (!expect(answer, [202], "PATCH") || !answer) return false;
      location = answer.headers.get("location") ?? location;
    }
    const closed = await request("push-blob", "PUT", `${location}?digest=${digest}`);
    return expect(closed, [201], "closing PUT");
  };

  const operations = {
    async push(worker: number) {
      const repository = repositories[worker % repositories.length] ?? "soak/a";
      const index = Math.floor(Math.random() * images.length);
      const image = images[index] as Image;
      for (const blob of [image.config, ...image.layers]) {
        if (!(await pushBlob(repository, blob, Math.random() < 0.5))) return;
      }
      const tag = `t${Math.floor(Math.random() * 10)}`;
      const answer = await request("push-manifest", "PUT", `/v2/${repository}/manifests/${tag}`, {
        body: image.manifest,
        headers: { "Content-Type": manifestType },
      });
      if (expect(answer, [201], "manifest PUT")) pushed.get(repository)?.add(index);
    },
    async pull(worker: number) {
      const repository = repositories[(worker + 1) % repositories.length] ?? "soak/a";
      const known = [...(pushed.get(repository) ?? [])];
      if (known.length === 0) return;
      const image = images[known[Math.floor(Math.random() * known.length)] ?? 0] as Image;
      const manifest = await request("pull-manifest", "GET", `/v2/${repository}/manifests/${image.digest}`, {
        headers: { Accept: manifestType },
      });
      if (!expect(manifest, [200], "pull manifest by digest")) return;
      const layer = image.layers[Math.floor(Math.random() * image.layers.length)] as Buffer;
      const blob = await request("pull-blob", "GET", `/v2/${repository}/blobs/${sha256(layer)}`);
      if (expect(blob, [200], "pull blob") && blob && !blob.body.equals(layer)) fail("pulled blob differs");
      const byTag = await request("pull-manifest", "GET", `/v2/${repository}/manifests/t${worker % 10}`, {
        headers: { Accept: manifestType },
      });
      expect(byTag, [200, 404], "pull by tag");
    },
    async list(worker: number) {
      const repository = repositories[worker % repositories.length] ?? "soak/a";
      expect(await request("tags-list", "GET", `/v2/${repository}/tags/list?n=5`), [200, 404], "tags list");
      expect(await request("catalog", "GET", "/v2/_catalog"), [200], "catalog");
    },
    async delete(worker: number) {
      const repository = repositories[worker % repositories.length] ?? "soak/a";
      const answer = await request(
        "delete-tag",
        "DELETE",
        `/v2/${repository}/manifests/t${Math.floor(Math.random() * 10)}`,
      );
      expect(answer, [202, 404], "tag delete");
    },
  };

  let stopAt = 0;
  const worker = async (id: number) => {
    while (Date.now() < stopAt) {
      const pick = Math.random();
      if (pick < 0.3) await operations.push(id);
      else if (pick < 0.75) await operations.pull(id);
      else if (pick < 0.9) await operations.list(id);
      else await operations.delete(id);
    }
  };
  const phase = async (seconds: number) => {
    stopAt = Date.now() + seconds * 1000;
    const sampler = setInterval(() => {
      berth
        .rssKiB()
        .then((rss) => {
          report.rssPeakKiB = Math.max(report.rssPeakKiB, rss);
        })
        .catch(() => undefined);
    }, 1000);
    await Promise.all(Array.from({ length: clients }, (_, id) => worker(id)));
    clearInterval(sampler);
    await sleep(settleMs);
  };

  /** Lowest of a few readings a moment apart: one reading can catch a collection half done. */
  const quietRss = async () => {
    let lowest = Number.POSITIVE_INFINITY;
    for (let sample = 0; sample < 5; sample++) {
      lowest = Math.min(lowest, await berth.rssKiB());
      await sleep(400);
    }
    return lowest;
  };

  try {
    await berth.start();
    await phase(warmupSeconds);
    report.rssAfterWarmupKiB = await quietRss();
    log(`after warm-up: ${report.requests} requests, RSS ${report.rssAfterWarmupKiB} KiB`);
    const minutes = Math.ceil(options.seconds / 60);
    for (let minute = 0; minute < minutes; minute++) {
      await phase(Math.min(60, options.seconds - minute * 60));
      log(`minute ${minute + 1}/${minutes}: ${report.requests} requests, RSS ${await berth.rssKiB()} KiB`);
    }
    report.rssEndKiB = await quietRss();
    if (!berth.alive) fail("berth exited");
  } finally {
    await berth.stop("SIGTERM");
    await rm(dataDir, { recursive: true, force: true });
  }
  return report;
}

if (isScript(import.meta.url)) {
  const report = await runSoak({
    seconds: numberFlag("minutes", 10) * 60,
    warmupSeconds: numberFlag("warmup", 30),
    clients: numberFlag("clients", 32),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  const grew = report.rssEndKiB > rssLimitKiB(report.rssAfterWarmupKiB);
  process.exit(report.errors.length === 0 && !grew ? 0 : 1);
}
