import assert from "node:assert/strict";
import { type Descriptor, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, sha256 } from "./oci-layout.js";

const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const ANY_MANIFEST = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");

export interface ManifestResponse {
  status: number;
  contentType: string | null;
  /** The Docker-Content-Digest header. */
  digest: string | null;
  body: Buffer;
}

export async function getManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  accept = ANY_MANIFEST,
): Promise<ManifestResponse> {
  const response = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, { headers: { accept } });
  return {
    status: response.status,
    contentType: response.headers.get("content-type"),
    digest: response.headers.get("docker-content-digest"),
    body: Buffer.from(await response.arrayBuffer()),
  };
}

export async function blobStatus(registryUrl: string, repo: string, digest: string): Promise<number> {
  const response = await fetch(`${registryUrl}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
  return response.status;
}

interface ManifestBody {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

/**
 * Fetches a manifest over plain HTTP and checks that berth serves it consistently (status,
 * Docker-Content-Digest matching the bytes, Content-Type matching mediaType) and that every
 * blob and child manifest it references can be fetched from the same repository. Returns the
 * parsed body.
 */
export async function assertManifestComplete(
  registryUrl: string,
  repo: string,
  reference: string,
  expectedDigest?: string,
): Promise<ManifestBody & { digest: string }> {
  const where = `GET /v2/${repo}/manifests/${reference}`;
  const response = await getManifest(registryUrl, repo, reference);
  assert.equal(response.status, 200, `${where}: status ${response.status}, body ${response.body.toString()}`);
  const digest = sha256(response.body);
  assert.equal(response.digest, digest, `${where}: Docker-Content-Digest does not match the body`);
  if (expectedDigest !== undefined)
    assert.equal(digest, expectedDigest, `${where}: unexpected manifest digest`);
  const body = JSON.parse(response.body.toString("utf8")) as ManifestBody;
  if (body.mediaType !== undefined) {
    assert.equal(
      response.contentType,
      body.mediaType,
      `${where}: Content-Type differs from the body's mediaType`,
    );
  }
  for (const child of body.manifests ?? []) {
    await assertManifestComplete(registryUrl, repo, child.digest, child.digest);
  }
  for (const blob of [...(body.config ? [body.config] : []), ...(body.layers ?? [])]) {
    const status = await blobStatus(registryUrl, repo, blob.digest);
    assert.equal(
      status,
      200,
      `HEAD /v2/${repo}/blobs/${blob.digest} (referenced by ${reference}): status ${status}`,
    );
  }
  return { ...body, digest };
}
