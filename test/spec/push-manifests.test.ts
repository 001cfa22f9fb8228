import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import {
  type Descriptor,
  descriptorOf,
  digestOf,
  errorCodes,
  imageIndex,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  randomHex,
  streamed,
  types,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const manifestLimit = 4096;

describe("Push: pushing manifests", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "push/manifests";
  let config: Descriptor;
  let layer: Descriptor;

  /** GET by reference; asserts 200 and returns Content-Type, digest header and bytes. */
  async function pull(reference: string, repository = repo) {
    const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`);
    const bytes = Buffer.from(await response.arrayBuffer());
    assert.equal(response.status, 200, `GET ${reference}: ${bytes.toString()}`);
    return {
      contentType: response.headers.get("content-type"),
      digest: response.headers.get("docker-content-digest"),
      bytes,
    };
  }

  async function status(reference: string, repository = repo): Promise<number> {
    const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, { method: "HEAD" });
    return response.status;
  }

  /** PUT, asserting 201 with Location and Docker-Content-Digest; returns the digest. */
  async function push(reference: string | "digest", body: Buffer, contentType: string): Promise<string> {
    const digest = digestOf(body);
    const response = await putManifest(
      url,
      repo,
      reference === "digest" ? digest : reference,
      body,
      contentType,
    );
    assert.equal(response.status, 201, `PUT ${reference}: ${await response.text()}`);
    assert.equal(response.headers.get("location"), `/v2/${repo}/manifests/${digest}`);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    return digest;
  }

  before(async () => {
    registry = await startTestRegistry({ limits: { manifestBytes: manifestLimit } });
    url = registry.url;
    const configBytes = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
    const layerBytes = randomBytes(100);
    await pushBlob(url, repo, configBytes);
    await pushBlob(url, repo, layerBytes);
    config = descriptorOf(types.ociConfig, configBytes);
    layer = descriptorOf(types.ociLayer, layerBytes);
  });
  after(async () => {
    await registry.close();
  });

  for (const by of ["tag", "digest"] as const) {
    test(`Pushing Manifests: an OCI image manifest PUT by ${by} is 201 and served back byte for byte`, async () => {
      const body = imageManifest(config, [layer], { annotations: { by } });
      const digest = await push(by === "tag" ? `oci-${by}` : "digest", body, types.ociManifest);
      const pulled = await pull(by === "tag" ? `oci-${by}` : digest);
      assert.equal(pulled.contentType, types.ociManifest);
      assert.equal(pulled.digest, digest);
      assert.deepEqual(pulled.bytes, body);
    });

    test(`Pushing Manifests: an OCI image index PUT by ${by} is 201`, async () => {
      const child = imageManifest(config, [layer], { annotations: { child: by } });
      const childDigest = await push("digest", child, types.ociManifest);
      const body = imageIndex([
        { ...descriptorOf(types.ociManifest, child), platform: { architecture: "amd64", os: "linux" } },
      ]);
      const digest = await push(by === "tag" ? `index-${by}` : "digest", body, types.ociIndex);
      const pulled = await pull(by === "tag" ? `index-${by}` : digest);
      assert.equal(pulled.contentType, types.ociIndex);
      assert.deepEqual(pulled.bytes, body);
      assert.equal((await pull(childDigest)).digest, childDigest);
    });
  }

  test("Pushing Manifests: a Docker schema 2 manifest and manifest list keep their media types", async () => {
    const dockerConfigBytes = Buffer.from('{"architecture":"arm64","os":"linux","docker":true}');
    await pushBlob(url, repo, dockerConfigBytes);
    const manifest = imageManifest(
      descriptorOf(types.dockerConfig, dockerConfigBytes),
      [{ ...layer, mediaType: types.dockerLayer }],
      { mediaType: types.dockerManifest },
    );
    const manifestDigest = await push("docker", manifest, types.dockerManifest);
    const pulled = await pull("docker");
    assert.equal(pulled.contentType, types.dockerManifest);
    assert.deepEqual(pulled.bytes, manifest);

    const list = imageIndex(
      [{ ...descriptorOf(types.dockerManifest, manifest), platform: { architecture: "arm64", os: "linux" } }],
      { mediaType: types.dockerManifestList },
    );
    const listDigest = await push("docker-list", list, types.dockerManifestList);
    const pulledList = await pull(listDigest);
    assert.equal(pulledList.contentType, types.dockerManifestList);
    assert.deepEqual(pulledList.bytes, list);
    assert.equal((await pull(manifestDigest)).contentType, types.dockerManifest);
  });

  test("Pushing Manifests: an artifact with artifactType and the empty config is accepted", async () => {
    const empty = await pushBlob(url, repo, "{}");
    assert.equal(empty, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    const payload = Buffer.from("signature bytes");
    await pushBlob(url, repo, payload);
    const body = imageManifest(
      descriptorOf(types.ociEmpty, "{}", { data: "e30=" }),
      [descriptorOf("application/vnd.example.signature.v1", payload)],
      { artifactType: "application/vnd.example.signature.v1" },
    );
    const digest = await push("artifact", body, types.ociManifest);
    const pulled = await pull(digest);
    assert.equal(pulled.contentType, types.ociManifest);
    assert.deepEqual(pulled.bytes, body);
  });

  test("Pushing Manifests: the exact bytes are stored (whitespace, key order, unicode escapes)", async () => {
    const text =
      `{\n\t"layers" :[ ${JSON.stringify(layer)} ],\r\n  "config":${JSON.stringify(config)},` +
      `"annotations":{"z":"\\u00e9t\\u00e9","a":"1"},   "schemaVersion": 2,\n` +
      `"mediaType":"${types.ociManifest}"   }\n\n`;
    const body = Buffer.from(text);
    const digest = await push("digest", body, types.ociManifest);
    const pulled = await pull(digest);
    assert.deepEqual(pulled.bytes, body);
    assert.equal(digestOf(pulled.bytes), digest);
  });

  test("Pushing Manifests: descriptors with unknown fields are accepted (newUnspecifiedField)", async () => {
    const body = imageManifest(
      { ...config, newUnspecifiedField: "aGVsbG8gd29ybGQ=", data: Buffer.from("x").toString("base64") },
      [{ ...layer, newUnspecifiedField: null }],
      { newTopLevelField: { nested: [1, 2, 3] } },
    );
    const digest = await push("unknown-fields", body, types.ociManifest);
    assert.deepEqual((await pull(digest)).bytes, body);
  });

  test("Pushing Manifests: a manifest without mediaType is typed by its Content-Type", async () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [] }, null, "\t"));
    const digest = await push("emptylayer", body, types.ociManifest);
    const pulled = await pull("emptylayer");
    assert.equal(pulled.contentType, types.ociManifest);
    assert.equal(pulled.digest, digest);
    assert.deepEqual(pulled.bytes, body);
  });

  test("Pushing Manifests: Content-Type parameters are ignored", async () => {
    const body = imageManifest(config, [layer], { annotations: { charset: "yes" } });
    const digest = await push("with-params", body, `${types.ociManifest}; charset=utf-8`);
    assert.equal((await pull(digest)).contentType, types.ociManifest);
  });

  test("Pushing Manifests: a streamed body (chunked transfer encoding) is accepted", async () => {
    const body = imageManifest(config, [layer], { annotations: { streamed: "yes" } });
    const digest = digestOf(body);
    const response = await fetch(`${url}/v2/${repo}/manifests/streamed`, {
      method: "PUT",
      headers: { "Content-Type": types.ociManifest },
      ...streamed(body),
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    assert.deepEqual((await pull("streamed")).bytes, body);
  });

  test("Push: a manifest with a missing layer is 404 MANIFEST_BLOB_UNKNOWN and nothing is stored", async () => {
    const missing = descriptorOf(types.ociLayer, randomBytes(10));
    const body = imageManifest(config, [layer, missing]);
    const response = await putManifest(url, repo, "missing-layer", body);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_BLOB_UNKNOWN"]);
    assert.equal(await status("missing-layer"), 404);
    assert.equal(await status(digestOf(body)), 404);
    const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
    assert.ok(!tags.tags.includes("missing-layer"));
  });

  test("Push: a missing config is 404 MANIFEST_BLOB_UNKNOWN", async () => {
    const body = imageManifest(descriptorOf(types.ociConfig, `{"n":"${randomHex()}"}`), [layer]);
    const response = await putManifest(url, repo, digestOf(body), body);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_BLOB_UNKNOWN"]);
    assert.equal(await status(digestOf(body)), 404);
  });

  test("Push: a blob in another repository does not satisfy a manifest (repository isolation)", async () => {
    const foreign = randomBytes(10);
    await pushBlob(url, "push/foreign", foreign);
    const body = imageManifest(config, [descriptorOf(types.ociLayer, foreign)]);
    const response = await putManifest(url, repo, "foreign", body);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_BLOB_UNKNOWN"]);
  });

  test("Push: an index with a missing child manifest is 404 MANIFEST_BLOB_UNKNOWN", async () => {
    const child = imageManifest(config, [layer], { annotations: { never: "pushed" } });
    const body = imageIndex([descriptorOf(types.ociManifest, child)]);
    const response = await putManifest(url, repo, "missing-child", body, types.ociIndex);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_BLOB_UNKNOWN"]);
    assert.equal(await status("missing-child"), 404);
  });

  test("Pushing Manifests: a descriptor whose size is wrong is 400 MANIFEST_INVALID", async () => {
    const body = imageManifest(config, [{ ...layer, size: layer.size + 1 }]);
    const response = await putManifest(url, repo, "wrong-size", body);
    assert.equal(response.status, 400);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_INVALID"]);
    assert.equal(await status("wrong-size"), 404);
  });

  test("Pushing Manifests: invalid JSON is 400 MANIFEST_INVALID", async () => {
    for (const body of ["{not json", "[]", '"string"', ""]) {
      const response = await putManifest(url, repo, "invalid", body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.deepEqual(await errorCodes(response), ["MANIFEST_INVALID"], JSON.stringify(body));
    }
    assert.equal(await status("invalid"), 404);
  });

  test("Pushing Manifests: a manifest that breaks the image-spec schema is 400 MANIFEST_INVALID", async () => {
    const bodies = [
      JSON.stringify({ schemaVersion: 1, mediaType: types.ociManifest, config, layers: [] }),
      JSON.stringify({ schemaVersion: 2, mediaType: types.ociManifest, layers: [] }),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.ociManifest,
        config: { ...config, size: -1 },
        layers: [],
      }),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types.ociManifest,
        config: { ...config, digest: "sha256:x" },
        layers: [],
      }),
    ];
    for (const body of bodies) {
      const response = await putManifest(url, repo, "schema", body);
      assert.equal(response.status, 400, body);
      assert.deepEqual(await errorCodes(response), ["MANIFEST_INVALID"], body);
    }
  });

  test("Pushing Manifests: a Content-Type that differs from mediaType is 400 MANIFEST_INVALID", async () => {
    const body = imageManifest(config, [layer]);
    const response = await putManifest(url, repo, "mismatch", body, types.ociIndex);
    assert.equal(response.status, 400);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_INVALID"]);
    assert.equal(await status("mismatch"), 404);
  });

  test("Pushing Manifests: PUT by a digest that does not match the body is 400 DIGEST_INVALID", async () => {
    const body = imageManifest(config, [layer], { annotations: { wrong: "digest" } });
    const wrong = digestOf(`${body.toString()} `);
    const response = await putManifest(url, repo, wrong, body);
    assert.equal(response.status, 400);
    assert.deepEqual(await errorCodes(response), ["DIGEST_INVALID"]);
    assert.equal(await status(wrong), 404);
    assert.equal(await status(digestOf(body)), 404);
  });

  test("Pushing Manifests: PUT by a sha512 digest stores it under that digest", async () => {
    const body = imageManifest(config, [layer], { annotations: { algorithm: "sha512" } });
    const digest = digestOf(body, "sha512");
    const response = await putManifest(url, repo, digest, body);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    const pulled = await pull(digest);
    assert.equal(pulled.digest, digest);
    assert.deepEqual(pulled.bytes, body);
  });

  test("Pushing Manifests: a manifest over limits.manifestBytes is 413 and not stored", async () => {
    const body = imageManifest(config, [layer], { annotations: { pad: "x".repeat(manifestLimit) } });
    const response = await putManifest(url, repo, "too-large", body);
    assert.equal(response.status, 413);
    assert.ok((await errorCodes(response)).length > 0);
    assert.equal(await status("too-large"), 404);
  });

  test("Pushing Manifests: a streamed manifest over limits.manifestBytes is 413 too", async () => {
    const body = imageManifest(config, [layer], { annotations: { pad: "y".repeat(manifestLimit * 4) } });
    const response = await fetch(`${url}/v2/${repo}/manifests/too-large-streamed`, {
      method: "PUT",
      headers: { "Content-Type": types.ociManifest },
      ...streamed(body),
    });
    assert.equal(response.status, 413);
    assert.ok((await errorCodes(response)).length > 0);
    assert.equal(await status("too-large-streamed"), 404);
  });

  test("Pushing Manifests with Subject: a subject that does not exist is accepted, with OCI-Subject", async () => {
    const subject = descriptorOf(types.ociManifest, `{"never":"${randomHex()}"}`);
    const body = imageManifest(config, [layer], { subject, artifactType: "application/vnd.example.sbom" });
    const response = await putManifest(url, repo, digestOf(body), body);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("oci-subject"), subject.digest);
    assert.equal(await status(subject.digest), 404);
    assert.deepEqual((await pull(digestOf(body))).bytes, body);
  });

  test("Pushing Manifests with Subject: without a subject there is no OCI-Subject header", async () => {
    const body = imageManifest(config, [layer], { annotations: { subject: "none" } });
    const response = await putManifest(url, repo, "no-subject", body);
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("oci-subject"), null);
  });

  test("Pushing Manifests: a reference that is neither a tag nor a digest is 400", async () => {
    const body = imageManifest(config, [layer]);
    for (const reference of [".invalid", "-dash", "a".repeat(129)]) {
      const response = await putManifest(url, repo, reference, body);
      assert.equal(response.status, 400, reference);
      assert.ok((await errorCodes(response)).length > 0);
    }
    const longest = "a".repeat(128);
    const response = await putManifest(url, repo, longest, body);
    assert.equal(response.status, 201);
  });

  test("Pushing Manifests: PUT to an existing tag moves it to the new manifest", async () => {
    const one = await push(
      "moving",
      imageManifest(config, [layer], { annotations: { v: "1" } }),
      types.ociManifest,
    );
    const twoBody = imageManifest(config, [layer], { annotations: { v: "2" } });
    const two = await push("moving", twoBody, types.ociManifest);
    assert.notEqual(one, two);
    const pulled = await pull("moving");
    assert.equal(pulled.digest, two);
    assert.deepEqual(pulled.bytes, twoBody);
    // The old manifest is still there by digest.
    assert.equal((await pull(one)).digest, one);
  });

  test("Pushing Manifests: re-pushing the same manifest is idempotent (201 again)", async () => {
    const body = imageManifest(config, [layer], { annotations: { again: "yes" } });
    const first = await push("again", body, types.ociManifest);
    const second = await push("again", body, types.ociManifest);
    assert.equal(first, second);
  });

  test("Pushing Manifests: concurrent PUTs of one tag with different manifests never 500 and end consistent", async () => {
    const bodies = Array.from({ length: 12 }, (_, i) =>
      imageManifest(config, [layer], { annotations: { race: String(i) } }),
    );
    const responses = await Promise.all(bodies.map((body) => putManifest(url, repo, "race", body)));
    for (const response of responses) {
      assert.equal(response.status, 201, await response.text());
    }
    const pulled = await pull("race");
    const winner = bodies.find((body) => digestOf(body) === pulled.digest);
    assert.ok(winner, "the tag points at one of the pushed manifests");
    assert.deepEqual(pulled.bytes, winner);
    for (const body of bodies) assert.equal(await status(digestOf(body)), 200);
  });

  test("Pushing Manifests: a manifest pushed into a new repository creates it", async () => {
    const image = await pushImage(url, "push/brand-new", "first");
    assert.deepEqual((await pull("first", "push/brand-new")).bytes, image.manifest);
  });
});
