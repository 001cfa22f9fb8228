import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Answer,
  BerthProcess,
  call,
  corruptBlobs,
  describeAnswer,
  errorCodes,
  freePort,
  imageManifest,
  isScript,
  manifestType,
  numberFlag,
  seededRandom,
  sha256,
  sleep,
} from "../helpers/reliability.js";

/**
 * Crash safety: concurrent clients push images (chunked and monolithic) and delete tags while berth is
 * killed with SIGKILL at random moments and restarted on the same data directory. At the end, everything
 * acknowledged must be there and intact, and nothing in storage may be partial.
 *
 * Script: `node dist/test/reliability/crash.js --kills 100 [--clients 16] [--seed N]`.
 * The test suite runs it with a bounded kill count (crash.test.ts).
 */

export interface CrashOptions {
  kills: number;
  clients?: number;
  seed?: number;
  /** Longest time berth runs between a restart and the next kill. */
  maxUptimeMs?: number;
  log?: (line: string) => void;
}

export interface CrashReport {
  seed: number;
  kills: number;
  requests: number;
  connectionErrors: number;
  manifestsAcknowledged: number;
  tagsChecked: number;
  blobsVerified: number;
  uploadsResumed: number;
  uploadsUnknownAfterCrash: number;
  tagDeletes: number;
  failures: string[];
}

interface AckedManifest {
  repository: string;
  digest: string;
  bytes: Buffer;
  blobs: Map<string, number>;
}

/** Thrown by a client step when berth is down; the client waits for the restart and retries. */
class Down extends Error {}

export async function runCrashTest(options: CrashOptions): Promise<CrashReport> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const random = seededRandom(seed);
  const clientCount = options.clients ?? 16;
  const maxUptimeMs = options.maxUptimeMs ?? 1500;
  const log = options.log ?? (() => undefined);
  const dataDir = await mkdtemp(join(tmpdir(), "berth-crash-"));
  const berth = new BerthProcess({ dataDir, port: await freePort() });
  const report: CrashReport = {
    seed,
    kills: 0,
    requests: 0,
    connectionErrors: 0,
    manifestsAcknowledged: 0,
    tagsChecked: 0,
    blobsVerified: 0,
    uploadsResumed: 0,
    uploadsUnknownAfterCrash: 0,
    tagDeletes: 0,
    failures: [],
  };
  const fail = (message: string) => {
    if (report.failures.length < 200) report.failures.push(message);
  };
  const acked: AckedManifest[] = [];
  // Per tag, every state it may be in: one after an acknowledged change, several after an unanswered one.
  const tagStates = new Map<string, Set<string | null>>();

  // Clients wait on `up` after a connection error; a kill replaces it with a fresh, unresolved promise.
  let markUp: () => void = () => undefined;
  let up = Promise.resolve();
  const newGeneration = () => {
    up = new Promise<void>((resolve) => {
      markUp = resolve;
    });
  };
  let stopping = false;

  const request = async (
    method: string,
    path: string,
    init: { body?: Uint8Array; headers?: Record<string, string> } = {},
  ): Promise<Answer> => {
    let answer: Answer;
    try {
      answer = await call(berth.url, method, path, { ...init, timeoutMs: 20_000 });
    } catch {
      report.connectionErrors++;
      throw new Down();
    }
    report.requests++;
    if (answer.status >= 500) fail(`${method} ${path} answered ${describeAnswer(answer)}`);
    return answer;
  };

  /** Runs `step` until it gets an answer, waiting out restarts. */
  const retrying = async <T>(step: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await step();
      } catch (error) {
        if (!(error instanceof Down)) throw error;
        await up;
        await sleep(random() * 50);
      }
    }
  };

  const expect = (answer: Answer, status: number, what: string): boolean => {
    if (answer.status === status) return true;
    fail(`${what}: expected ${status}, got ${describeAnswer(answer)}`);
    return false;
  };

  const blobExists = async (repository: string, digest: string): Promise<boolean> => {
    const answer = await retrying(() => request("HEAD", `/v2/${repository}/blobs/${digest}`));
    return answer.status === 200;
  };

  /** POST, PATCH chunks with Content-Range, closing PUT; after a crash, resumes from the upload's status. */
  const pushChunked = async (repository: string, blob: Buffer, chunkSize: number): Promise<boolean> => {
    const digest = sha256(blob);
    for (let attempt = 0; attempt < 20; attempt++) {
      const started = await retrying(() => request("POST", `/v2/${repository}/blobs/uploads/`));
      if (!expect(started, 202, "start upload")) return false;
      let location = started.headers.get("location") ?? "";
      let offset = 0;
      let acknowledged = 0;
      let lost = false;
      const resume = async (): Promise<"resumed" | "unknown" | "failed"> => {
        const status = await retrying(() => request("GET", location));
        if (status.status === 204) {
          const range = /^0-(\d+)$/.exec(status.headers.get("range") ?? "");
          if (!range) {
            fail(`upload status without a Range: ${describeAnswer(status)}`);
            return "failed";
          }
          // Chunks are never 1 byte long, so "0-0" can only mean nothing was received.
          const end = Number(range[1]);
          offset = end === 0 ? 0 : end + 1;
          if (offset % chunkSize !== 0 && offset !== blob.length) {
            fail(`upload resumed at ${offset}, which no chunk boundary explains (chunk ${chunkSize})`);
            return "failed";
          }
          if (offset < acknowledged) {
            fail(`upload resumed at ${offset}, but ${acknowledged} bytes were acknowledged`);
            return "failed";
          }
          location = status.headers.get("location") ?? location;
          report.uploadsResumed++;
          return "resumed";
        }
        if (status.status === 404 && errorCodes(status)?.includes("BLOB_UPLOAD_UNKNOWN")) {
          report.uploadsUnknownAfterCrash++;
          return "unknown";
        }
        fail(`upload status after a crash: ${describeAnswer(status)}`);
        return "failed";
      };
      while (offset < blob.length && !lost) {
        const chunk = blob.subarray(offset, offset + chunkSize);
        try {
          const answer = await request("PATCH", location, {
            body: chunk,
            headers: {
              "Content-Type": "application/octet-stream",
              "Content-Range": `${offset}-${offset + chunk.length - 1}`,
            },
          });
          if (!expect(answer, 202, "PATCH chunk")) return false;
          location = answer.headers.get("location") ?? location;
          offset += chunk.length;
          acknowledged = offset;
        } catch (error) {
          if (!(error instanceof Down)) throw error;
          await up;
          const outcome = await resume();
          if (outcome === "failed") return false;
          if (outcome === "unknown") lost = true;
        }
      }
      if (lost) continue;
      const separator = location.includes("?") ? "&" : "?";
      try {
        const closed = await request("PUT", `${location}${separator}digest=${digest}`);
        return expect(closed, 201, "closing PUT");
      } catch (error) {
        if (!(error instanceof Down)) throw error;
        await up;
        // The PUT may have been applied before the kill.
        if (await blobExists(repository, digest)) return true;
        const outcome = await resume();
        if (outcome === "failed") return false;
        if (outcome === "resumed") {
          const closed = await retrying(() => request("PUT", `${location}${separator}digest=${digest}`));
          if (closed.status === 201) return true;
          if (closed.status === 404 && (await blobExists(repository, digest))) return true;
          return expect(closed, 201, "closing PUT after a crash");
        }
      }
    }
    fail(`chunked upload of ${digest} never completed`);
    return false;
  };

  const pushMonolithic = async (repository: string, blob: Buffer): Promise<boolean> => {
    const digest = sha256(blob);
    const answer = await retrying(() =>
      request("POST", `/v2/${repository}/blobs/uploads/?digest=${digest}`, {
        body: blob,
        headers: { "Content-Type": "application/octet-stream" },
      }),
    );
    return expect(answer, 201, "monolithic POST");
  };

  /** POST for a session, then one PUT with the whole body. */
  const pushPostPut = async (repository: string, blob: Buffer): Promise<boolean> => {
    const digest = sha256(blob);
    for (let attempt = 0; attempt < 20; attempt++) {
      const started = await retrying(() => request("POST", `/v2/${repository}/blobs/uploads/`));
      if (!expect(started, 202, "start upload")) return false;
      const location = started.headers.get("location") ?? "";
      try {
        const answer = await request("PUT", `${location}?digest=${digest}`, {
          body: blob,
          headers: { "Content-Type": "application/octet-stream" },
        });
        return expect(answer, 201, "PUT with body");
      } catch (error) {
        if (!(error instanceof Down)) throw error;
        await up;
        if (await blobExists(repository, digest)) return true;
      }
    }
    fail(`POST+PUT upload of ${digest} never completed`);
    return false;
  };

  const client = async (id: number): Promise<void> => {
    const repository = `crash/r${id % 4}`;
    const sharedLayer = Buffer.from(`shared base layer of ${repository}`);
    let round = 0;
    while (!stopping) {
      round++;
      const tag = `c${id}-t${round % 3}`;
      const key = `${repository}:${tag}`;
      if (random() < 0.15 && tagStates.has(key)) {
        const states = tagStates.get(key) ?? new Set();
        try {
          const answer = await request("DELETE", `/v2/${repository}/manifests/${tag}`);
          if (answer.status === 202 || (answer.status === 404 && states.has(null))) {
            tagStates.set(key, new Set([null]));
            report.tagDeletes++;
          } else expect(answer, 202, `DELETE tag ${key}`);
        } catch (error) {
          if (!(error instanceof Down)) throw error;
          states.add(null);
          await up;
        }
        continue;
      }
      const layerCount = 1 + Math.floor(random() * 3);
      const layers = [sharedLayer];
      for (let i = 0; i < layerCount; i++) layers.push(randomBytes(512 + Math.floor(random() * 48 * 1024)));
      const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", client: id, round }));
      let pushed = true;
      for (const blob of [config, ...layers]) {
        const mode = random();
        const ok =
          blob.length > 8192 && mode < 0.5
            ? await pushChunked(repository, blob, 4096 + 1024 * Math.floor(random() * 8))
            : mode < 0.75
              ? await pushMonolithic(repository, blob)
              : await pushPostPut(repository, blob);
        if (!ok) {
          pushed = false;
          break;
        }
      }
      if (!pushed) continue;
      const manifest = imageManifest(config, layers);
      const digest = sha256(manifest);
      const states = tagStates.get(key) ?? new Set<string | null>([null]);
      tagStates.set(key, states);
      states.add(digest);
      const answer = await retrying(() =>
        request("PUT", `/v2/${repository}/manifests/${tag}`, {
          body: manifest,
          headers: { "Content-Type": manifestType },
        }),
      );
      if (!expect(answer, 201, `PUT manifest ${key}`)) continue;
      tagStates.set(key, new Set([digest]));
      const blobs = new Map<string, number>([[sha256(config), config.length]]);
      for (const layer of layers) blobs.set(sha256(layer), layer.length);
      acked.push({ repository, digest, bytes: manifest, blobs });
      report.manifestsAcknowledged++;
    }
  };

  try {
    await berth.start();
    markUp();
    const clients = Array.from({ length: clientCount }, (_, id) =>
      client(id).catch((error: unknown) => fail(`client ${id} crashed: ${(error as Error).stack}`)),
    );
    while (report.kills < options.kills) {
      await sleep(100 + random() * maxUptimeMs);
      newGeneration();
      await berth.stop("SIGKILL");
      report.kills++;
      log(`kill ${report.kills}/${options.kills}: ${report.manifestsAcknowledged} manifests acknowledged`);
      await berth.start();
      markUp();
    }
    // A last stretch without kills, so interrupted uploads finish before the checks.
    await sleep(1000);
    stopping = true;
    await Promise.all(clients);

    // One more crash and restart with nothing in flight: recovery alone must not lose anything.
    await berth.stop("SIGKILL");
    await berth.start();
    await verify(berth.url);
    for (const problem of await corruptBlobs(dataDir)) fail(`storage: ${problem}`);
    const leftovers = await readdir(join(dataDir, "tmp"));
    if (leftovers.length > 0) fail(`tmp/ holds ${leftovers.length} file(s) after restart`);
  } finally {
    stopping = true;
    await berth.stop("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  }
  return report;

  async function verify(url: string): Promise<void> {
    const verified = new Set<string>();
    for (const manifest of acked) {
      const byDigest = await call(url, "GET", `/v2/${manifest.repository}/manifests/${manifest.digest}`, {
        headers: { Accept: manifestType },
      });
      if (byDigest.status !== 200 || !byDigest.body.equals(manifest.bytes)) {
        fail(`manifest ${manifest.repository}@${manifest.digest}: ${describeAnswer(byDigest)}`);
      }
      for (const [digest, size] of manifest.blobs) {
        const key = `${manifest.repository}@${digest}`;
        if (verified.has(key)) continue;
        verified.add(key);
        const blob = await call(url, "GET", `/v2/${manifest.repository}/blobs/${digest}`);
        if (blob.status !== 200 || blob.body.length !== size || sha256(blob.body) !== digest) {
          fail(`blob ${key}: status ${blob.status}, ${blob.body.length} bytes, expected ${size}`);
        }
        report.blobsVerified++;
      }
    }
    for (const [key, states] of tagStates) {
      const [repository, tag] = key.split(":");
      const answer = await call(url, "GET", `/v2/${repository}/manifests/${tag}`, {
        headers: { Accept: manifestType },
      });
      const found = answer.status === 200 ? sha256(answer.body) : answer.status === 404 ? null : undefined;
      if (found === undefined || !states.has(found)) {
        fail(`tag ${key}: ${answer.status} ${found ?? ""}, expected one of ${[...states].join(", ")}`);
      }
      report.tagsChecked++;
    }
  }
}

if (isScript(import.meta.url)) {
  const report = await runCrashTest({
    kills: numberFlag("kills", 20),
    clients: numberFlag("clients", 16),
    ...(process.argv.includes("--seed") ? { seed: numberFlag("seed", 0) } : {}),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  process.exit(report.failures.length === 0 ? 0 : 1);
}
