import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
export const DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";

const REF_NAME = "org.opencontainers.image.ref.name";
// A fixed timestamp keeps every blob, and so every digest, identical from run to run.
const CREATED = "2024-01-01T00:00:00Z";
const MTIME = Date.parse(CREATED) / 1000;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

/** One image manifest written into the layout, with what a registry should end up holding. */
export interface LayoutImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** sha256 of each uncompressed layer tar, as listed in config.rootfs.diff_ids. */
  diffIds: string[];
  platform: Platform;
}

export interface LayoutIndex {
  index: Descriptor;
  images: LayoutImage[];
}

export interface OciLayoutFixture {
  /** Directory holding oci-layout, index.json and blobs/. */
  dir: string;
  /** Three-layer linux/amd64 OCI image, tagged `image` in index.json. */
  image: LayoutImage & { tag: string };
  /** OCI index over linux/amd64 and linux/arm64 images, tagged `multiarch`. */
  multiarch: LayoutIndex & { tag: string };
  /**
   * The same filesystem as `image` under a Docker schema 2 manifest, in a directory of
   * containers/image's `dir:` transport: skopeo looks up only OCI media types in an OCI
   * layout, but copies a `dir:` image byte for byte.
   */
  docker: LayoutImage & { dir: string };
  remove(): Promise<void>;
}

export interface TarEntry {
  path: string;
  /** Omitted for directories (a path ending in "/"). */
  content?: string;
  mode?: number;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * Builds an OCI image layout in a fresh temp dir. `label` is written into every layer so
 * fixtures built with different labels share no blobs.
 */
export async function buildOciLayout(label = "berth"): Promise<OciLayoutFixture> {
  const root = await mkdtemp(join(tmpdir(), "berth-oci-layout-"));
  const dir = join(root, "oci");
  const blobs = new BlobWriter(join(dir, "blobs", "sha256"));
  const dockerDir = join(root, "docker");
  const dockerBlobs = new BlobWriter(dockerDir);

  const amd64 = { architecture: "amd64", os: "linux" };
  const arm64 = { architecture: "arm64", os: "linux", variant: "v8" };

  const image = await writeImage(blobs, label, amd64, "oci");
  const docker = await writeImage(dockerBlobs, label, amd64, "docker");
  await writeDirTransportFiles(dockerDir, docker.manifest.digest);
  const amd64Only = await writeImage(blobs, `${label}-multiarch`, amd64, "oci");
  const arm64Only = await writeImage(blobs, `${label}-multiarch`, arm64, "oci");
  const indexBody = json({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [amd64Only.manifest, arm64Only.manifest],
  });
  const index = { mediaType: OCI_INDEX, ...(await blobs.write(indexBody)) };

  const refs = [
    { tag: "image", descriptor: withoutPlatform(image.manifest) },
    { tag: "multiarch", descriptor: index },
  ];
  await writeFile(join(dir, "oci-layout"), json({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    json({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: refs.map(({ tag, descriptor }) => ({ ...descriptor, annotations: { [REF_NAME]: tag } })),
    }),
  );

  return {
    dir,
    image: { ...image, tag: "image" },
    multiarch: { index, images: [amd64Only, arm64Only], tag: "multiarch" },
    docker: { ...docker, dir: dockerDir },
    remove: () => rm(root, { recursive: true, force: true }),
  };
}

/** The descriptor that a layout's index.json (e.g. one written by `skopeo copy`) gives for a tag. */
export async function readLayoutRef(dir: string, tag: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const found = index.manifests.find((m) => m.annotations?.[REF_NAME] === tag);
  if (!found) throw new Error(`no ${REF_NAME}=${tag} in ${dir}/index.json`);
  return found;
}

export async function readLayoutBlob(dir: string, digest: string): Promise<Buffer> {
  const [algorithm, hex] = digest.split(":");
  return readFile(join(dir, "blobs", algorithm ?? "", hex ?? ""));
}

async function writeImage(
  blobs: BlobWriter,
  label: string,
  platform: Platform,
  flavour: "oci" | "docker",
): Promise<LayoutImage> {
  const arch = platform.architecture;
  // Three layers: a directory tree, an executable, and a file the third layer overwrites.
  const tars = [
    tar([
      { path: "etc/" },
      { path: "etc/berth-release", content: `label=${label}\narch=${arch}\n` },
      { path: "app/" },
      { path: "app/data.txt", content: "first version\n" },
    ]),
    tar([
      { path: "usr/" },
      { path: "usr/local/" },
      { path: "usr/local/bin/" },
      {
        path: "usr/local/bin/hello",
        content: `#!/bin/sh\necho hello from ${label} on ${arch}\n`,
        mode: 0o755,
      },
    ]),
    tar([{ path: "app/" }, { path: "app/data.txt", content: `second version for ${label}\n` }]),
  ];
  const diffIds = tars.map((t) => sha256(t));
  const layerType = flavour === "oci" ? OCI_LAYER_GZIP : DOCKER_LAYER_GZIP;
  const layers: Descriptor[] = [];
  for (const t of tars) {
    // mtime 0 in the gzip header keeps compressed bytes stable too.
    layers.push({ mediaType: layerType, ...(await blobs.write(gzipSync(t, { level: 9 }))) });
  }

  const configBody = json({
    created: CREATED,
    architecture: arch,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: {
      Env: ["PATH=/usr/local/bin:/usr/bin:/bin"],
      Cmd: ["/usr/local/bin/hello"],
      WorkingDir: "/app",
      Labels: { "org.example.berth.fixture": label },
    },
    rootfs: { type: "layers", diff_ids: diffIds },
    history: [
      { created: CREATED, created_by: "berth fixture: etc and app" },
      { created: CREATED, created_by: "berth fixture: hello" },
      { created: CREATED, created_by: "berth fixture: app/data.txt v2" },
    ],
  });
  const config = {
    mediaType: flavour === "oci" ? OCI_CONFIG : DOCKER_CONFIG,
    ...(await blobs.write(configBody)),
  };

  const manifestBody = json({
    schemaVersion: 2,
    mediaType: flavour === "oci" ? OCI_MANIFEST : DOCKER_MANIFEST,
    config,
    layers,
  });
  const manifest: Descriptor = {
    mediaType: flavour === "oci" ? OCI_MANIFEST : DOCKER_MANIFEST,
    ...(await blobs.write(manifestBody)),
    platform,
  };
  return { manifest, config, layers, diffIds, platform };
}

/** The `dir:` transport names blobs by bare hex and keeps the manifest as manifest.json. */
async function writeDirTransportFiles(dir: string, manifestDigest: string): Promise<void> {
  const hex = manifestDigest.slice("sha256:".length);
  await writeFile(join(dir, "manifest.json"), await readFile(join(dir, hex)));
  await rm(join(dir, hex));
  await writeFile(join(dir, "version"), "Directory Transport Version: 1.1\n");
}

function withoutPlatform({ platform: _platform, ...rest }: Descriptor): Descriptor {
  return rest;
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Stores content-addressed files named by the bare hex of their sha256. */
class BlobWriter {
  constructor(private readonly dir: string) {}

  async write(data: Buffer): Promise<{ digest: string; size: number }> {
    const digest = sha256(data);
    await mkdir(this.dir, { recursive: true });
    await writeFile(join(this.dir, digest.slice("sha256:".length)), data);
    return { digest, size: data.length };
  }
}

/** A POSIX ustar archive; enough of the format for short paths and regular files/dirs. */
export function tar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const isDir = entry.path.endsWith("/");
    const body = Buffer.from(isDir ? "" : (entry.content ?? ""));
    parts.push(tarHeader(entry.path, body.length, entry.mode ?? (isDir ? 0o755 : 0o644), isDir ? "5" : "0"));
    parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

function tarHeader(path: string, size: number, mode: number, type: "0" | "5"): Buffer {
  if (Buffer.byteLength(path) > 100) throw new Error(`tar path too long for ustar: ${path}`);
  const header = Buffer.alloc(512);
  const put = (offset: number, length: number, value: string) => header.write(value, offset, length, "ascii");
  const octal = (offset: number, length: number, value: number) =>
    put(offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);
  put(0, 100, path);
  octal(100, 8, mode);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, MTIME);
  put(148, 8, "        ");
  put(156, 1, type);
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return header;
}
