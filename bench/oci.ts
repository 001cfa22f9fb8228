/**
 * OCI helpers for the benchmark: verified upload/manifest calls, images with real tar+gzip layers,
 * and the large random test blobs (generated once per size and reused between invocations).
 */
import { createHash, randomBytes, randomFillSync } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, readFile, rename, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { type BlobFile, check, log, MiB } from "./core.js";
import { bodyExcerpt, type HttpClient } from "./http.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

// ------------------------------------------------------------------ registry calls

/** POST /blobs/uploads/ and return the upload session URL. */
export async function startUpload(client: HttpClient, repo: string): Promise<URL> {
  const res = await client.request("POST", `/v2/${repo}/blobs/uploads/`);
  check(
    res.status === 202,
    `POST /v2/${repo}/blobs/uploads/ answered ${res.status}, want 202 ${bodyExcerpt(res)}`,
  );
  const location = res.headers.location;
  check(location, "POST upload: no Location header");
  return client.resolve(location);
}

export function withDigest(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  return url;
}

/** PUT <location>?digest=, with or without a (final) body; checks 201 and Docker-Content-Digest. */
export async function finishUpload(
  client: HttpClient,
  location: URL,
  digest: string,
  body?: Buffer | (() => Readable),
  size?: number,
): Promise<void> {
  const headers: Record<string, string> = { "content-type": "application/octet-stream" };
  if (typeof body === "function") headers["content-length"] = String(size ?? 0);
  const res = await client.request("PUT", withDigest(location, digest), {
    headers,
    body,
    timeoutMs: 180_000,
  });
  check(res.status === 201, `PUT upload?digest= answered ${res.status}, want 201 ${bodyExcerpt(res)}`);
  const returned = res.headers["docker-content-digest"];
  check(returned === digest, `PUT upload: Docker-Content-Digest ${returned}, want ${digest}`);
}

export async function pushBlob(
  client: HttpClient,
  repo: string,
  data: Buffer,
  digest: string,
): Promise<void> {
  const location = await startUpload(client, repo);
  await finishUpload(client, location, digest, data);
}

/** HEAD a blob: 200, Content-Length = size, Docker-Content-Digest = digest. */
export async function headBlob(
  client: HttpClient,
  repo: string,
  digest: string,
  size: number,
): Promise<void> {
  const res = await client.request("HEAD", `/v2/${repo}/blobs/${digest}`);
  check(res.status === 200, `HEAD blob ${digest.slice(0, 19)} answered ${res.status}, want 200`);
  check(
    Number(res.headers["content-length"]) === size,
    `HEAD blob: Content-Length ${res.headers["content-length"]}, want ${size}`,
  );
  const returned = res.headers["docker-content-digest"];
  check(returned === digest, `HEAD blob: Docker-Content-Digest ${returned}, want ${digest}`);
}

export async function putManifest(
  client: HttpClient,
  repo: string,
  ref: string,
  image: Image,
): Promise<void> {
  const res = await client.request("PUT", `/v2/${repo}/manifests/${ref}`, {
    headers: { "content-type": OCI_MANIFEST },
    body: image.manifest,
  });
  check(
    res.status === 201,
    `PUT manifest ${repo}:${ref} answered ${res.status}, want 201 ${bodyExcerpt(res)}`,
  );
  const returned = res.headers["docker-content-digest"];
  check(returned === image.manifestDigest, `PUT manifest: Docker-Content-Digest ${returned}`);
}

/** GET a manifest by tag and check body digest, Content-Type and Docker-Content-Digest. */
export async function getManifestVerified(
  client: HttpClient,
  repo: string,
  ref: string,
  image: Image,
): Promise<void> {
  const res = await client.request("GET", `/v2/${repo}/manifests/${ref}`, {
    headers: { accept: OCI_MANIFEST },
  });
  check(res.status === 200, `GET manifest ${repo}:${ref} answered ${res.status}, want 200`);
  check(sha256Digest(res.body) === image.manifestDigest, `GET manifest ${repo}:${ref}: body digest mismatch`);
  const type = (res.headers["content-type"] ?? "").split(";")[0]?.trim();
  check(type === OCI_MANIFEST, `GET manifest ${repo}:${ref}: Content-Type ${type}`);
  check(
    res.headers["docker-content-digest"] === image.manifestDigest,
    "GET manifest: wrong Docker-Content-Digest",
  );
}

/** HEAD a manifest by tag: 200, Content-Length and Docker-Content-Digest. */
export async function headManifestVerified(
  client: HttpClient,
  repo: string,
  ref: string,
  image: Image,
): Promise<void> {
  const res = await client.request("HEAD", `/v2/${repo}/manifests/${ref}`, {
    headers: { accept: OCI_MANIFEST },
  });
  check(res.status === 200, `HEAD manifest ${repo}:${ref} answered ${res.status}, want 200`);
  check(
    Number(res.headers["content-length"]) === image.manifest.length,
    `HEAD manifest: Content-Length ${res.headers["content-length"]}, want ${image.manifest.length}`,
  );
  check(
    res.headers["docker-content-digest"] === image.manifestDigest,
    "HEAD manifest: wrong Docker-Content-Digest",
  );
}

export async function pushImage(client: HttpClient, repo: string, tag: string, image: Image): Promise<void> {
  await pushBlob(client, repo, image.config, image.configDigest);
  for (const layer of image.layers) await pushBlob(client, repo, layer.data, layer.digest);
  await putManifest(client, repo, tag, image);
}

/** Every tag of a repository, following `Link: <...>; rel="next"` pages. */
export async function listTags(client: HttpClient, repo: string): Promise<{ tags: string[]; pages: number }> {
  const tags: string[] = [];
  let next: string | null = `/v2/${repo}/tags/list`;
  let pages = 0;
  while (next !== null && pages < 10_000) {
    const res = await client.request("GET", next);
    check(res.status === 200, `GET ${next} answered ${res.status}`);
    const page = JSON.parse(res.body.toString("utf8")) as { tags?: string[] };
    tags.push(...(page.tags ?? []));
    pages++;
    const link = res.headers.link;
    const match = typeof link === "string" ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
    next = match?.[1] ? client.resolve(match[1]).toString() : null;
  }
  return { tags, pages };
}

// ------------------------------------------------------------------ images

export interface Layer {
  data: Buffer;
  digest: string;
  diffId: string;
}

export interface Image {
  config: Buffer;
  configDigest: string;
  layers: Layer[];
  manifest: Buffer;
  manifestDigest: string;
}

/** A ustar archive holding one regular file. */
export function tarWithFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const field = (value: string, offset: number, length: number) => {
    header.write(value.slice(0, length), offset, "ascii");
  };
  const octal = (value: number, length: number) => `${value.toString(8).padStart(length - 1, "0")}\0`;
  field(name, 0, 100);
  field(octal(0o644, 8), 100, 8);
  field(octal(0, 8), 108, 8);
  field(octal(0, 8), 116, 8);
  field(octal(content.length, 12), 124, 12);
  field(octal(1_700_000_000, 12), 136, 12);
  field(" ".repeat(8), 148, 8);
  field("0", 156, 1);
  field("ustar\0", 257, 6);
  field("00", 263, 2);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  field(`${checksum.toString(8).padStart(6, "0")}\0 `, 148, 8);
  const padding = (512 - (content.length % 512)) % 512;
  return Buffer.concat([header, content, Buffer.alloc(padding), Buffer.alloc(1024)]);
}

export function makeLayer(name: string, contentBytes: number): Layer {
  const tar = tarWithFile(`bench/${name}.bin`, randomBytes(contentBytes));
  const data = gzipSync(tar, { level: 1 });
  return { data, digest: sha256Digest(data), diffId: sha256Digest(tar) };
}

/** An image with random tar+gzip layers and a config whose diff_ids match them. */
export function makeImage(name: string, layerContentBytes: number[]): Image {
  const layers = layerContentBytes.map((bytes, i) => makeLayer(`${name}-${i}`, bytes));
  const config = Buffer.from(
    JSON.stringify({
      created: "2025-01-01T00:00:00Z",
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/bin:/bin"], Labels: { "berth.bench.image": name, pad: "x".repeat(700) } },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({
        created: "2025-01-01T00:00:00Z",
        created_by: `berth bench layer ${i}`,
      })),
    }),
  );
  const configDigest = sha256Digest(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER_GZIP, digest: l.digest, size: l.data.length })),
    }),
  );
  return { config, configDigest, layers, manifest, manifestDigest: sha256Digest(manifest) };
}

// ------------------------------------------------------------------ large test blobs

/**
 * A file of `bytes` random bytes under `dir`, named by label and size, with its digest in a
 * sidecar JSON. Reused while file and sidecar agree; read once so it sits in the page cache.
 */
export async function ensureBlobFile(dir: string, label: string, bytes: number): Promise<BlobFile> {
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${label}-${bytes}.bin`);
  const sidecar = `${file}.json`;
  try {
    const [info, meta] = await Promise.all([stat(file), readFile(sidecar, "utf8")]);
    const parsed = JSON.parse(meta) as { size: number; digest: string; mtimeMs: number };
    if (info.size === bytes && parsed.size === bytes && parsed.mtimeMs === info.mtimeMs) {
      await readThrough(file);
      return { file, size: bytes, digest: parsed.digest };
    }
  } catch {
    // missing or stale: generate below
  }
  log(`generating ${bytes / MiB} MiB test blob ${file}`);
  const hash = createHash("sha256");
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, "w");
  const chunk = Buffer.alloc(MiB);
  try {
    for (let offset = 0; offset < bytes; offset += MiB) {
      const part = chunk.subarray(0, Math.min(MiB, bytes - offset));
      randomFillSync(part);
      hash.update(part);
      await handle.write(part);
    }
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
  const info = await stat(file);
  const digest = `sha256:${hash.digest("hex")}`;
  await writeFile(sidecar, `${JSON.stringify({ size: bytes, digest, mtimeMs: info.mtimeMs })}\n`);
  return { file, size: bytes, digest };
}

async function readThrough(file: string): Promise<void> {
  for await (const _ of createReadStream(file, { highWaterMark: 4 * MiB })) {
    // only warming the page cache
  }
}

export function fileBody(file: string, start?: number, end?: number): () => Readable {
  return () => createReadStream(file, { start, end, highWaterMark: MiB });
}
