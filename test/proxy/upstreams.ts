import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { findBinary, inCI } from "../helpers/clients.js";
import { descriptorOf, digestOf, imageManifest, type PushedImage, randomHex, types } from "../helpers/oci.js";

/** Real upstream registries for the pull-through tests, and a relay to watch and throttle their traffic. */

/** Options for tests that need Debian's docker-registry (CNCF Distribution); in CI it must be there. */
export const needsDistribution: { skip?: string } =
  findBinary("docker-registry") !== undefined || inCI ? {} : { skip: "docker-registry not installed" };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface DistributionUpstream {
  url: string;
  host: string;
  /** Stops the process, keeping its storage, so `start` brings the same content back. */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** CNCF Distribution on a free loopback port with filesystem storage in a temp dir. */
export async function startDistribution(): Promise<DistributionUpstream> {
  const binary = findBinary("docker-registry");
  if (binary === undefined)
    throw new Error(`docker-registry not installed${inCI ? " (required because CI is set)" : ""}`);
  const dir = await mkdtemp(join(tmpdir(), "berth-proxy-distribution-"));
  const port = await freePort();
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: error",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${join(dir, "data")}`,
      "  delete:",
      "    enabled: true",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "  secret: berth-proxy-test",
      "",
    ].join("\n"),
  );
  const url = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn(binary, ["serve", config], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    started.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    child = started;
    for (let attempt = 0; attempt < 200; attempt++) {
      if (started.exitCode !== null) break;
      try {
        const response = await fetch(`${url}/v2/`);
        await response.arrayBuffer();
        if (response.status === 200) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    started.kill("SIGKILL");
    throw new Error(`docker-registry did not start: ${stderr}`);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };
  await start();
  return {
    url,
    host: `127.0.0.1:${port}`,
    stop,
    start,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Relay {
  /** host:port to configure as the upstream. */
  host: string;
  /** Bytes relayed from the upstream towards berth so far, HTTP headers included. */
  readonly forwarded: number;
  /** Lets traffic held back by `holdAfterBytes` through, and everything after it. */
  release(): void;
  /** Cuts every connection, as an upstream that dies mid-transfer. */
  cut(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of a real upstream. With `holdAfterBytes`, it stops forwarding upstream->berth
 * traffic once that many bytes went through, until `release()`: a test can then see what berth did
 * with the part it has while the upstream transfer is provably unfinished. `flipByteAt` corrupts the
 * byte at that offset of the upstream->berth traffic (of all connections together).
 */
export async function startRelay(
  target: string,
  options: { holdAfterBytes?: number; flipByteAt?: number } = {},
): Promise<Relay> {
  const [targetHost, targetPort] = target.split(":") as [string, string];
  let forwarded = 0;
  let held = options.holdAfterBytes !== undefined;
  const waiting: (() => void)[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((downstream) => {
    const upstream = connect(Number(targetPort), targetHost);
    sockets.add(downstream);
    sockets.add(upstream);
    const closeBoth = () => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    downstream.on("error", closeBoth).on("close", closeBoth);
    upstream.on("error", closeBoth).on("close", closeBoth);
    downstream.pipe(upstream);
    upstream.on("data", (received: Buffer) => {
      const flip = options.flipByteAt;
      let chunk = received;
      if (flip !== undefined && flip >= forwarded && flip < forwarded + chunk.length) {
        chunk = Buffer.from(received);
        chunk[flip - forwarded] = (chunk[flip - forwarded] ?? 0) ^ 0xff;
      }
      const limit = options.holdAfterBytes ?? Number.POSITIVE_INFINITY;
      if (!held || forwarded + chunk.length <= limit) {
        forwarded += chunk.length;
        if (!downstream.write(chunk)) upstream.pause();
        return;
      }
      const allowed = Math.max(0, limit - forwarded);
      forwarded += allowed;
      if (allowed > 0) downstream.write(chunk.subarray(0, allowed));
      upstream.pause();
      waiting.push(() => {
        forwarded += chunk.length - allowed;
        downstream.write(chunk.subarray(allowed));
        upstream.resume();
      });
    });
    downstream.on("drain", () => {
      if (!held || waiting.length === 0) upstream.resume();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    host: `127.0.0.1:${port}`,
    get forwarded() {
      return forwarded;
    },
    release() {
      held = false;
      for (const resume of waiting.splice(0)) resume();
    },
    cut() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Pushes a file as a blob with POST then a monolithic PUT, streamed; returns its digest. */
export async function pushBlobFile(url: string, repo: string, path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  const digest = `sha256:${hash.digest("hex")}`;
  const started = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await started.arrayBuffer();
  if (started.status !== 202) throw new Error(`upload start answered ${started.status}`);
  const location = new URL(started.headers.get("location") ?? "", url);
  location.searchParams.set("digest", digest);
  const body = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
  const finished = await fetch(location, {
    method: "PUT",
    headers: { "Content-Type": "application/octet-stream" },
    body,
    duplex: "half",
  } as RequestInit);
  const text = await finished.text();
  if (finished.status !== 201) throw new Error(`upload PUT answered ${finished.status}: ${text}`);
  return digest;
}

/** Hashes a response body as it streams, never holding it whole. */
export async function digestOfBody(response: Response): Promise<{ digest: string; size: number }> {
  const hash = createHash("sha256");
  let size = 0;
  if (response.body)
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.length;
    }
  return { digest: `sha256:${hash.digest("hex")}`, size };
}

/** POST then monolithic PUT (end-4a, end-6), which every registry takes, Distribution included. */
export async function pushBlobTwoStep(
  url: string,
  repo: string,
  bytes: Buffer,
  headers: Record<string, string> = {},
): Promise<string> {
  const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
  const started = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST", headers });
  await started.arrayBuffer();
  if (started.status !== 202) throw new Error(`upload start in ${repo} answered ${started.status}`);
  const location = new URL(started.headers.get("location") ?? "", url);
  location.searchParams.set("digest", digest);
  const finished = await fetch(location, {
    method: "PUT",
    headers: { ...headers, "Content-Type": "application/octet-stream" },
    body: new Uint8Array(bytes),
  });
  const text = await finished.text();
  if (finished.status !== 201) throw new Error(`upload PUT in ${repo} answered ${finished.status}: ${text}`);
  return digest;
}

/** Like the spec tests' pushImage (fresh random config and layer), with uploads any registry accepts. */
export async function pushUpstreamImage(
  url: string,
  repo: string,
  tag: string,
  headers: Record<string, string> = {},
  layerSize = 64,
): Promise<PushedImage> {
  const configBytes = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", id: randomHex() }));
  const layerBytes = randomBytes(layerSize);
  await pushBlobTwoStep(url, repo, configBytes, headers);
  await pushBlobTwoStep(url, repo, layerBytes, headers);
  const config = descriptorOf(types.ociConfig, configBytes);
  const layer = descriptorOf(types.ociLayer, layerBytes);
  const manifest = imageManifest(config, [layer]);
  const response = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    method: "PUT",
    headers: { ...headers, "Content-Type": types.ociManifest },
    body: new Uint8Array(manifest),
  });
  const text = await response.text();
  if (response.status !== 201)
    throw new Error(`manifest PUT in ${repo} answered ${response.status}: ${text}`);
  return {
    config,
    layer,
    manifest,
    digest: digestOf(manifest),
    descriptor: descriptorOf(types.ociManifest, manifest),
  };
}
