import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * Building blocks for the reliability suites (crash, disk full, hostile input, slow clients, soak):
 * berth as a child process that can be killed and restarted, raw HTTP calls that never throw on a
 * status, and checks of what the data directory holds.
 */

/** The compiled CLI; tests run from dist/, so this is dist/src/cli/main.js. */
export const berthMain = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

export const manifestType = "application/vnd.oci.image.manifest.v1+json";
export const configType = "application/vnd.oci.image.config.v1+json";
export const layerType = "application/vnd.oci.image.layer.v1.tar+gzip";

export function sha256(bytes: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A loopback port that was free a moment ago (the child binds it by number, so it must be fixed). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface BerthProcessOptions {
  dataDir: string;
  port: number;
  /** Extra BERTH_* settings, e.g. { BERTH_LIMITS_UPLOAD_SESSIONS: "50" }. */
  env?: Record<string, string>;
  /** Extra node flags such as --max-old-space-size. */
  nodeArgs?: string[];
}

/** `berth serve` as a child process, on the same port and data directory across restarts. */
export class BerthProcess {
  child: ChildProcess | undefined;
  /** What the child wrote to stderr, capped; shown when a start fails. */
  stderr = "";
  starts = 0;

  constructor(readonly options: BerthProcessOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.options.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns berth and resolves once /healthz answers; rejects if it exits or takes over `timeoutMs`. */
  async start(timeoutMs = 60_000): Promise<void> {
    const { dataDir, port, env = {}, nodeArgs = [] } = this.options;
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs,
        berthMain,
        "serve",
        "--listen",
        `127.0.0.1:${port}`,
        "--data",
        dataDir,
        "--log-level",
        "warn",
      ],
      {
        env: { PATH: process.env.PATH ?? "", BERTH_LOG_FORMAT: "json", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    this.child = child;
    this.starts++;
    const collect = (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`berth exited during start (${child.exitCode ?? child.signalCode}):\n${this.stderr}`);
      }
      try {
        const response = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        await response.arrayBuffer();
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(25);
    }
    child.kill("SIGKILL");
    throw new Error(`berth did not become healthy within ${timeoutMs} ms:\n${this.stderr}`);
  }

  /** Sends `signal` and resolves once the process is gone. */
  async stop(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    await exited;
  }

  /** True while the child process exists (it may still be starting). */
  get alive(): boolean {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Resident set size of the child in KiB, from /proc/<pid>/status. */
  async rssKiB(): Promise<number> {
    if (this.pid === undefined) throw new Error("berth is not running");
    const status = await readFile(`/proc/${this.pid}/status`, "utf8");
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!match) throw new Error("no VmRSS in /proc status");
    return Number(match[1]);
  }
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** One HTTP call that reads the whole answer; throws only on transport errors. */
export async function call(
  url: string,
  method: string,
  path: string,
  init: { body?: Uint8Array | string; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Answer> {
  const response = await fetch(url + path, {
    method,
    headers: init.headers,
    body:
      init.body === undefined
        ? undefined
        : typeof init.body === "string"
          ? init.body
          : Buffer.from(init.body),
    redirect: "manual",
    // Generous: under a loaded CI machine a large upload can take a while; a hang still fails.
    signal: AbortSignal.timeout(init.timeoutMs ?? 90_000),
  });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body };
}

/** The spec's error codes in an answer's JSON body, or undefined when the body is not that shape. */
export function errorCodes(answer: Answer): string[] | undefined {
  try {
    const parsed = JSON.parse(answer.body.toString("utf8")) as { errors?: { code?: unknown }[] };
    if (!Array.isArray(parsed.errors) || parsed.errors.length === 0) return undefined;
    const codes = parsed.errors.map((e) => e.code);
    return codes.every((c): c is string => typeof c === "string") ? codes : undefined;
  } catch {
    return undefined;
  }
}

export function describeAnswer(answer: Answer): string {
  return `${answer.status} ${answer.body.toString("utf8").slice(0, 300)}`;
}

/** An image manifest over a config and layers, as exact bytes. */
export function imageManifest(config: Uint8Array, layers: Uint8Array[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: configType, digest: sha256(config), size: config.length },
      layers: layers.map((layer) => ({ mediaType: layerType, digest: sha256(layer), size: layer.length })),
    }),
  );
}

/** Single POST (end-4b); throws unless 201. */
export async function pushBlob(url: string, repository: string, bytes: Uint8Array): Promise<string> {
  const digest = sha256(bytes);
  const answer = await call(url, "POST", `/v2/${repository}/blobs/uploads/?digest=${digest}`, {
    body: bytes,
    headers: { "Content-Type": "application/octet-stream" },
  });
  if (answer.status !== 201) throw new Error(`push of blob ${digest}: ${describeAnswer(answer)}`);
  return digest;
}

/** Pushes config, layers and the manifest under `reference`; throws unless every step succeeds. */
export async function pushImage(
  url: string,
  repository: string,
  reference: string,
  layers: Uint8Array[],
  config: Uint8Array = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" })),
): Promise<string> {
  for (const blob of [config, ...layers]) await pushBlob(url, repository, blob);
  const manifest = imageManifest(config, layers);
  const answer = await call(url, "PUT", `/v2/${repository}/manifests/${reference}`, {
    body: manifest,
    headers: { "Content-Type": manifestType },
  });
  if (answer.status !== 201) throw new Error(`push of manifest ${reference}: ${describeAnswer(answer)}`);
  return sha256(manifest);
}

/** Every regular file under `dir`, as paths relative to it. */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(join(dir, relative), { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    for (const entry of entries) {
      const path = relative ? join(relative, entry.name) : entry.name;
      if (entry.isDirectory()) await walk(path);
      else out.push(path);
    }
  };
  await walk("");
  return out.sort();
}

/**
 * Re-hashes every file under `<dataDir>/blobs/<algorithm>/<xx>/<hex>` and returns the ones whose
 * content is not their name: partial or corrupt content. Empty means storage is sound.
 */
export async function corruptBlobs(dataDir: string): Promise<string[]> {
  const blobsDir = join(dataDir, "blobs");
  const bad: string[] = [];
  for (const path of await listFiles(blobsDir)) {
    // The store's layout: blobs/<algorithm>/<encoded>.
    const [algorithm, encoded, ...rest] = path.split("/");
    if (!algorithm || !encoded || rest.length > 0) {
      bad.push(`${path}: unexpected path`);
      continue;
    }
    const hash = createHash(algorithm);
    for await (const chunk of createReadStream(join(blobsDir, path))) hash.update(chunk as Buffer);
    if (hash.digest("hex") !== encoded) bad.push(`${path}: content does not match its digest`);
  }
  return bad;
}

/** Deterministic pseudo-random numbers (mulberry32), so a failing run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** True when this module runs as `node file.js` rather than as a file of `node --test`. */
export function isScript(moduleUrl: string): boolean {
  return (
    process.env.NODE_TEST_CONTEXT === undefined &&
    process.argv[1] !== undefined &&
    fileURLToPath(moduleUrl) === process.argv[1]
  );
}

/** `--name value` from argv, as a number. */
export function numberFlag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  const raw = index >= 0 ? process.argv[index + 1] : undefined;
  const value = raw === undefined ? Number.NaN : Number(raw);
  return Number.isFinite(value) ? value : fallback;
}
