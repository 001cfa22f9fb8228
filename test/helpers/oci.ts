import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";

/** Small building blocks for the spec tests: digests, descriptors, blob and manifest pushes, error bodies. */

export const types = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [field: string]: unknown;
}

export function digestOf(bytes: Uint8Array | string, algorithm: "sha256" | "sha512" = "sha256"): string {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}`;
}

export function descriptorOf(
  mediaType: string,
  bytes: Uint8Array | string,
  extra: Record<string, unknown> = {},
): Descriptor {
  return { mediaType, digest: digestOf(bytes), size: Buffer.byteLength(bytes), ...extra };
}

/** A body fetch sends with `Transfer-Encoding: chunked` and no Content-Length, as Go's net/http does. */
export function streamed(bytes: Uint8Array): { body: ReadableStream<Uint8Array>; duplex: "half" } {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
  return { body, duplex: "half" };
}

/** Single POST (end-4b) of a whole blob; asserts 201 and returns the digest. */
export async function pushBlob(
  url: string,
  repo: string,
  bytes: Uint8Array | string,
  algorithm: "sha256" | "sha512" = "sha256",
): Promise<string> {
  const digest = digestOf(bytes, algorithm);
  const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream" },
    body: typeof bytes === "string" ? bytes : Buffer.from(bytes),
  });
  assert.equal(response.status, 201, `push blob ${digest} to ${repo}: ${await response.text()}`);
  return digest;
}

export function imageManifest(
  config: Descriptor,
  layers: Descriptor[],
  extra: Record<string, unknown> = {},
): Buffer {
  return Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: types.ociManifest, config, layers, ...extra }),
  );
}

export function imageIndex(manifests: Descriptor[], extra: Record<string, unknown> = {}): Buffer {
  return Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: types.ociIndex, manifests, ...extra }));
}

export function putManifest(
  url: string,
  repo: string,
  reference: string,
  body: Uint8Array | string,
  contentType: string = types.ociManifest,
): Promise<Response> {
  return fetch(`${url}/v2/${repo}/manifests/${reference}`, {
    method: "PUT",
    headers: { "Content-Type": contentType },
    body: typeof body === "string" ? body : Buffer.from(body),
  });
}

export interface PushedImage {
  config: Descriptor;
  layer: Descriptor;
  manifest: Buffer;
  digest: string;
  descriptor: Descriptor;
}

/** Pushes a fresh random config and layer, then a manifest over them at `reference` (a tag or "digest"). */
export async function pushImage(
  url: string,
  repo: string,
  reference: string,
  extra: Record<string, unknown> = {},
): Promise<PushedImage> {
  const configBytes = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", id: randomHex() }));
  const layerBytes = randomBytes(64);
  await pushBlob(url, repo, configBytes);
  await pushBlob(url, repo, layerBytes);
  const config = descriptorOf(types.ociConfig, configBytes);
  const layer = descriptorOf(types.ociLayer, layerBytes);
  const manifest = imageManifest(config, [layer], extra);
  const digest = digestOf(manifest);
  const response = await putManifest(url, repo, reference === "digest" ? digest : reference, manifest);
  assert.equal(response.status, 201, `push manifest to ${repo}: ${await response.text()}`);
  return { config, layer, manifest, digest, descriptor: descriptorOf(types.ociManifest, manifest) };
}

/** The codes of a spec error body `{"errors":[{code,message,detail}]}`, checking its shape. */
export async function errorCodes(response: Response): Promise<string[]> {
  const text = await response.text();
  assert.match(response.headers.get("content-type") ?? "", /^application\/json/, `error body: ${text}`);
  const body = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, `no errors array: ${text}`);
  return body.errors.map((error) => {
    assert.equal(typeof error.code, "string");
    assert.match(error.code as string, /^[A-Z_]+$/);
    return error.code as string;
  });
}

export function randomHex(bytes = 8): string {
  return randomBytes(bytes).toString("hex");
}
