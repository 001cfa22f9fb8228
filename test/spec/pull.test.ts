import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  descriptorOf,
  digestOf,
  errorCodes,
  imageManifest,
  type PushedImage,
  pushBlob,
  pushImage,
  putManifest,
  types,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const unknownDigest = digestOf("hello world");

describe("Pull: pulling manifests", () => {
  let registry: TestRegistry;
  let image: PushedImage;
  const repo = "pull/manifests";

  before(async () => {
    registry = await startTestRegistry();
    image = await pushImage(registry.url, repo, "v1");
  });
  after(async () => {
    await registry.close();
  });

  for (const by of ["tag", "digest"] as const) {
    test(`Pulling manifests: GET by ${by} is 200 with the exact bytes and headers`, async () => {
      const reference = by === "tag" ? "v1" : image.digest;
      const response = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, {
        headers: { Accept: types.ociManifest },
      });
      assert.equal(response.status, 200);
      // "The registry SHOULD NOT include parameters on the Content-Type header."
      assert.equal(response.headers.get("content-type"), types.ociManifest);
      assert.equal(response.headers.get("docker-content-digest"), image.digest);
      assert.equal(response.headers.get("content-length"), String(image.manifest.length));
      assert.equal(response.headers.get("etag"), `"${image.digest}"`);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.manifest);
    });

    test(`Checking if content exists in the registry: HEAD of a manifest by ${by} is 200 with no body`, async () => {
      const reference = by === "tag" ? "v1" : image.digest;
      const response = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`, {
        method: "HEAD",
        headers: { Accept: types.ociManifest },
      });
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), types.ociManifest);
      assert.equal(response.headers.get("docker-content-digest"), image.digest);
      assert.equal(response.headers.get("content-length"), String(image.manifest.length));
      assert.equal((await response.arrayBuffer()).byteLength, 0);
    });
  }

  test("Pulling manifests: If-None-Match with the manifest's ETag is 304 with no body", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/manifests/v1`, {
      headers: { "If-None-Match": `"${image.digest}"` },
    });
    assert.equal(response.status, 304);
    assert.equal(response.headers.get("etag"), `"${image.digest}"`);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  test("Pulling manifests: If-None-Match with another ETag is 200", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/manifests/v1`, {
      headers: { "If-None-Match": `"${unknownDigest}"` },
    });
    assert.equal(response.status, 200);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.manifest);
  });

  test("Pulling manifests: an unknown tag is 404 MANIFEST_UNKNOWN", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/manifests/nope`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
    const head = await fetch(`${registry.url}/v2/${repo}/manifests/nope`, { method: "HEAD" });
    assert.equal(head.status, 404);
  });

  test("Pulling manifests: an unknown digest is 404 MANIFEST_UNKNOWN", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/manifests/${unknownDigest}`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
  });

  test("Pulling manifests: a reference that is not a valid tag is 404 on GET and HEAD (conformance)", async () => {
    const get = await fetch(`${registry.url}/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`);
    assert.equal(get.status, 404);
    assert.deepEqual(await errorCodes(get), ["MANIFEST_UNKNOWN"]);
    const head = await fetch(`${registry.url}/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`, {
      method: "HEAD",
    });
    assert.equal(head.status, 404);
    await head.arrayBuffer();
  });

  test("Pulling manifests: a malformed digest reference is 400 DIGEST_INVALID", async () => {
    for (const reference of ["sha256:totallywrong", `sha256:${"A".repeat(64)}`, `md5:${"a".repeat(32)}`]) {
      const response = await fetch(`${registry.url}/v2/${repo}/manifests/${reference}`);
      assert.equal(response.status, 400, reference);
      assert.deepEqual(await errorCodes(response), ["DIGEST_INVALID"], reference);
    }
  });

  test("Pulling manifests: a repository that does not exist is 404", async () => {
    const response = await fetch(`${registry.url}/v2/no/such/repo/manifests/v1`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
    const byDigest = await fetch(`${registry.url}/v2/no/such/repo/manifests/${image.digest}`);
    assert.equal(byDigest.status, 404);
    await byDigest.arrayBuffer();
  });

  test("Pulling manifests: a manifest is not visible from another repository", async () => {
    await pushBlob(registry.url, "pull/other", "x");
    const response = await fetch(`${registry.url}/v2/pull/other/manifests/${image.digest}`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
  });

  test("Pulling manifests: Content-Type is the pushed media type (Docker schema 2)", async () => {
    const config = Buffer.from('{"architecture":"arm64","os":"linux"}');
    const layer = randomBytes(10);
    await pushBlob(registry.url, repo, config);
    await pushBlob(registry.url, repo, layer);
    const manifest = imageManifest(
      descriptorOf(types.dockerConfig, config),
      [descriptorOf(types.dockerLayer, layer)],
      {
        mediaType: types.dockerManifest,
      },
    );
    const put = await putManifest(registry.url, repo, "docker", manifest, types.dockerManifest);
    assert.equal(put.status, 201);
    const response = await fetch(`${registry.url}/v2/${repo}/manifests/docker`, {
      headers: { Accept: `${types.dockerManifest}, ${types.ociManifest}` },
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), types.dockerManifest);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), manifest);
  });
});

describe("Pull: pulling blobs", () => {
  let registry: TestRegistry;
  const repo = "pull/blobs";
  const blob = randomBytes(100);
  const digest = digestOf(blob);

  before(async () => {
    registry = await startTestRegistry();
    await pushBlob(registry.url, repo, blob);
  });
  after(async () => {
    await registry.close();
  });

  test("Pulling blobs: GET of a blob is 200 with its bytes, Docker-Content-Digest and Content-Length", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    assert.equal(response.headers.get("content-length"), String(blob.length));
    assert.equal(response.headers.get("etag"), `"${digest}"`);
    assert.equal(response.headers.get("accept-ranges"), "bytes");
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob);
  });

  test("Checking if content exists in the registry: HEAD of a blob is 200 with Content-Length and no body", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    assert.equal(response.headers.get("content-length"), String(blob.length));
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  test("Pulling blobs: GET of an unknown blob is 404 BLOB_UNKNOWN", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${unknownDigest}`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["BLOB_UNKNOWN"]);
  });

  test("Checking if content exists in the registry: HEAD of an unknown blob is 404", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${unknownDigest}`, { method: "HEAD" });
    assert.equal(response.status, 404);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  test("Pulling blobs: a malformed digest is 400 DIGEST_INVALID", async () => {
    for (const bad of ["sha256:abc", `sha256:${"G".repeat(64)}`, "nodigest", `sha1:${"a".repeat(40)}`]) {
      const response = await fetch(`${registry.url}/v2/${repo}/blobs/${bad}`);
      assert.equal(response.status, 400, bad);
      assert.deepEqual(await errorCodes(response), ["DIGEST_INVALID"], bad);
    }
  });

  test("Pulling blobs: an unknown repository is 404 BLOB_UNKNOWN", async () => {
    const response = await fetch(`${registry.url}/v2/never/pushed/blobs/${digest}`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["BLOB_UNKNOWN"]);
  });

  test("Pulling blobs: a blob pushed to another repository is not visible (repository isolation)", async () => {
    const other = randomBytes(20);
    const otherDigest = await pushBlob(registry.url, "pull/elsewhere", other);
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${otherDigest}`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["BLOB_UNKNOWN"]);
    const head = await fetch(`${registry.url}/v2/${repo}/blobs/${otherDigest}`, { method: "HEAD" });
    assert.equal(head.status, 404);
    const there = await fetch(`${registry.url}/v2/pull/elsewhere/blobs/${otherDigest}`);
    assert.equal(there.status, 200);
    assert.deepEqual(Buffer.from(await there.arrayBuffer()), other);
  });

  test("Pulling blobs: If-None-Match with the blob's ETag is 304", async () => {
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, {
      headers: { "If-None-Match": `"${digest}"` },
    });
    assert.equal(response.status, 304);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  const ranges: [string, number, number][] = [
    ["bytes=0-9", 0, 9],
    ["bytes=10-19", 10, 19],
    ["bytes=90-", 90, 99],
    ["bytes=-5", 95, 99],
    ["bytes=-500", 0, 99],
    ["bytes=95-1000", 95, 99],
  ];
  for (const [header, start, end] of ranges) {
    test(`Pulling blobs: Range ${header} is 206 with Content-Range bytes ${start}-${end}/100`, async () => {
      const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, {
        headers: { Range: header },
      });
      assert.equal(response.status, 206);
      assert.equal(response.headers.get("content-range"), `bytes ${start}-${end}/${blob.length}`);
      assert.equal(response.headers.get("content-length"), String(end - start + 1));
      assert.equal(response.headers.get("docker-content-digest"), digest);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob.subarray(start, end + 1));
    });
  }

  for (const header of ["bytes=100-", "bytes=500-600", "bytes=-0"]) {
    test(`Pulling blobs: unsatisfiable Range ${header} is 416 with Content-Range bytes */100`, async () => {
      const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, {
        headers: { Range: header },
      });
      assert.equal(response.status, 416);
      assert.equal(response.headers.get("content-range"), `bytes */${blob.length}`);
      assert.equal((await response.arrayBuffer()).byteLength, 0);
    });
  }

  test("Pulling blobs: a malformed or multi-part Range is ignored and the whole blob is 200", async () => {
    for (const header of ["items=0-5", "bytes=0-1,5-6", "bytes=9-3"]) {
      const response = await fetch(`${registry.url}/v2/${repo}/blobs/${digest}`, {
        headers: { Range: header },
      });
      assert.equal(response.status, 200, header);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), blob, header);
    }
  });

  test("Pulling blobs: a manifest of the repository can be fetched from the blobs endpoint", async () => {
    const image = await pushImage(registry.url, repo, "digest");
    const response = await fetch(`${registry.url}/v2/${repo}/blobs/${image.digest}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-content-digest"), image.digest);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), image.manifest);
  });
});
