import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { access, readdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BerthConfigInput } from "../../src/config/config.js";
import { parseDigest } from "../../src/oci/digest.js";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import {
  descriptorOf,
  digestOf,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  randomHex,
  streamed,
  types,
} from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";

const policies = {
  rules: [
    { name: "small", repositories: ["bytes/*"], quota: { bytes: 1000 } },
    { name: "few-tags", repositories: ["tags/*"], quota: { tags: 2 } },
  ],
};

async function deniedMessage(response: Response): Promise<string> {
  const text = await response.text();
  assert.equal(response.status, 403, text);
  const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]?.code, "DENIED", text);
  return body.errors[0]?.message ?? "";
}

interface Backend {
  name: string;
  skip: string | false;
  /** Config overrides selecting the backend; called in before(). */
  setup(): Promise<BerthConfigInput>;
  cleanup(): Promise<void>;
}

const filesystem: Backend = {
  name: "filesystem + sqlite",
  skip: false,
  setup: async () => ({}),
  cleanup: async () => undefined,
};

let schema: string | undefined;
let bucket: TestBucket | undefined;
const scaleOut: Backend = {
  name: "S3 + PostgreSQL",
  skip: postgresSkip || s3Skip,
  async setup() {
    schema = newSchemaName();
    bucket = testBucket();
    (await S3BlobStore.open({ ...bucket, prefix: "", createBucket: true })).destroy();
    return {
      storage: {
        driver: "s3",
        s3: { endpoint: bucket.endpoint, bucket: bucket.bucket, forcePathStyle: bucket.forcePathStyle },
      },
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema } },
    };
  },
  async cleanup() {
    if (schema) await dropSchema(schema);
    if (bucket) await deleteTestBucket(bucket);
  },
};

for (const backend of [filesystem, scaleOut]) quotaSuite(backend);

function quotaSuite(backend: Backend) {
  describe(`quotas over HTTP (${backend.name}): a push past a quota is DENIED and stores nothing`, {
    skip: backend.skip,
  }, () => {
    let registry: TestRegistry;
    let url: string;
    before(async () => {
      registry = await startTestRegistry({ policies, ...(await backend.setup()) });
      url = registry.url;
    });
    after(async () => {
      await registry?.close();
      await backend.cleanup();
    });

    const filesystemStore = () => registry.server.registry.ctx.config.storage.driver === "filesystem";
    const blobFile = (digest: string) => join(registry.dataDir, "blobs", ...digest.split(":"));
    const exists = async (digest: string) => {
      const stored = await registry.server.registry.ctx.blobStore.statBlob(parseDigest(digest));
      if (filesystemStore())
        assert.equal(
          stored !== undefined,
          await access(blobFile(digest)).then(
            () => true,
            () => false,
          ),
        );
      return stored !== undefined;
    };
    const uploadsLeft = async () => (filesystemStore() ? readdir(join(registry.dataDir, "uploads")) : []);
    const assertNothingStored = async (repo: string, digest: string) => {
      const head = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
      assert.equal(head.status, 404, "not linked");
      assert.equal(await exists(digest), false, "no blob in the blob store");
      assert.deepEqual(await uploadsLeft(), [], "no upload left behind");
    };

    test("monolithic blob push (POST ?digest=) past the byte quota", async () => {
      const repo = `bytes/mono-${randomHex(3)}`;
      const first = randomBytes(600);
      await pushBlob(url, repo, first);
      const second = randomBytes(500);
      const digest = digestOf(second);
      const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
        method: "POST",
        body: second,
      });
      const message = await deniedMessage(response);
      assert.match(message, /^quota exceeded for repository "bytes\/mono-\w+" \(rule "small"\)/);
      assert.match(message, /past its quota of 1000 B \(600 B used\)/);
      await assertNothingStored(repo, digest);
      await pushBlob(url, repo, first); // already linked: adds nothing, so it is fine
      await pushBlob(url, repo, randomBytes(400)); // exactly at the quota
    });

    test("POST then PUT with the whole blob, past the byte quota", async () => {
      const repo = `bytes/put-${randomHex(3)}`;
      const blob = randomBytes(1001);
      const digest = digestOf(blob);
      const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      assert.equal(post.status, 202);
      const location = new URL(post.headers.get("location") ?? "", url);
      const put = await fetch(`${location}?digest=${digest}`, { method: "PUT", body: blob });
      assert.match(await deniedMessage(put), /quota exceeded/);
      await assertNothingStored(repo, digest);
      assert.equal((await fetch(location)).status, 404, "the session is closed");
    });

    test("chunked upload (PATCH, PATCH, PUT) past the byte quota", async () => {
      const repo = `bytes/chunked-${randomHex(3)}`;
      await pushBlob(url, repo, randomBytes(300));
      const blob = randomBytes(800);
      const digest = digestOf(blob);
      const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      let location = new URL(post.headers.get("location") ?? "", url);
      for (const [start, end] of [
        [0, 400],
        [400, 800],
      ] as const) {
        const patch = await fetch(location, {
          method: "PATCH",
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${start}-${end - 1}` },
          body: blob.subarray(start, end),
        });
        assert.equal(patch.status, 202);
        location = new URL(patch.headers.get("location") ?? "", url);
      }
      const put = await fetch(`${location}?digest=${digest}`, { method: "PUT" });
      const message = await deniedMessage(put);
      assert.match(
        message,
        /storing 800 B more would bring it to 1.07 KiB, past its quota of 1000 B \(300 B used\)/,
      );
      await assertNothingStored(repo, digest);
      const status = await fetch(location);
      assert.equal(status.status, 404, "the refused session is discarded");
    });

    test("an upload larger than the whole quota is refused at the chunk that passes it, not stored", async () => {
      const repo = `bytes/big-${randomHex(3)}`;
      const blob = randomBytes(1200);
      const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      const location = new URL(post.headers.get("location") ?? "", url);
      const patch = await fetch(location, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream" },
        ...streamed(blob),
      });
      assert.match(
        await deniedMessage(patch),
        /the blob is larger than the repository's whole quota of 1000 B/,
      );
      assert.equal((await fetch(location)).status, 404, "the session is discarded");
      await assertNothingStored(repo, digestOf(blob));

      const streamedPost = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digestOf(blob)}`, {
        method: "POST",
        ...streamed(blob),
      });
      assert.match(await deniedMessage(streamedPost), /whole quota/);
      await assertNothingStored(repo, digestOf(blob));
    });

    test("a cross-repository mount past the byte quota is DENIED", async () => {
      const repo = `bytes/mount-${randomHex(3)}`;
      await pushBlob(url, repo, randomBytes(900));
      const blob = randomBytes(200);
      const digest = await pushBlob(url, `free/${randomHex(3)}`, blob);
      const source = `free/${randomHex(3)}`;
      await pushBlob(url, source, blob);
      const mount = await fetch(`${url}/v2/${repo}/blobs/uploads/?mount=${digest}&from=${source}`, {
        method: "POST",
      });
      assert.match(await deniedMessage(mount), /quota exceeded/);
      assert.equal((await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" })).status, 404);
    });

    test("a manifest that would take the repository past its byte quota", async () => {
      const repo = `bytes/manifest-${randomHex(3)}`;
      const config = Buffer.from(
        JSON.stringify({ architecture: "amd64", os: "linux", pad: "x".repeat(300) }),
      );
      const layer = randomBytes(1000 - config.length - 100);
      await pushBlob(url, repo, config);
      await pushBlob(url, repo, layer);
      const manifest = imageManifest(descriptorOf(types.ociConfig, config), [
        descriptorOf(types.ociLayer, layer),
      ]);
      assert.ok(manifest.length > 100, "the manifest alone breaks the quota");
      const digest = digestOf(manifest);
      const response = await putManifest(url, repo, "v1", manifest);
      assert.match(await deniedMessage(response), /quota exceeded .* storing \d+ B more/);
      for (const reference of ["v1", digest]) {
        const head = await fetch(`${url}/v2/${repo}/manifests/${reference}`, { method: "HEAD" });
        assert.equal(head.status, 404);
      }
      assert.equal(await exists(digest), false, "the manifest's bytes were not stored");
    });

    test("a new tag past the tag quota; existing tags and digest pushes are fine", async () => {
      const repo = `tags/app-${randomHex(3)}`;
      const first = await pushImage(url, repo, "one");
      await pushImage(url, repo, "two");
      const third = await pushImage(url, repo, "digest");
      const extra = Buffer.from(
        JSON.stringify({ ...JSON.parse(third.manifest.toString()), annotations: { n: randomHex() } }),
      );
      const response = await putManifest(url, repo, "three", extra);
      const message = await deniedMessage(response);
      assert.match(
        message,
        /quota exceeded for repository "tags\/app-\w+" \(rule "few-tags"\): it already has 2 tags and its quota is 2/,
      );
      assert.equal((await fetch(`${url}/v2/${repo}/manifests/three`, { method: "HEAD" })).status, 404);
      assert.equal(
        (await fetch(`${url}/v2/${repo}/manifests/${digestOf(extra)}`, { method: "HEAD" })).status,
        404,
      );
      assert.equal(await exists(digestOf(extra)), false, "the refused manifest's bytes were not stored");
      const tags = (await (await fetch(`${url}/v2/${repo}/tags/list`)).json()) as { tags: string[] };
      assert.deepEqual(tags.tags, ["one", "two"]);
      assert.equal(
        (await putManifest(url, repo, "one", third.manifest)).status,
        201,
        "an existing tag may move",
      );
      assert.equal(
        (await putManifest(url, repo, digestOf(extra), extra)).status,
        201,
        "a push by digest adds no tag",
      );
      assert.equal(
        (await fetch(`${url}/v2/${repo}/manifests/${first.digest}`, { method: "DELETE" })).status,
        202,
      );
      assert.equal((await putManifest(url, repo, "one", first.manifest)).status, 201);
    });

    test("concurrent new tags never overshoot the tag quota", async () => {
      const repo = `tags/race-${randomHex(3)}`;
      const image = await pushImage(url, repo, "digest");
      const responses = await Promise.all(
        Array.from({ length: 6 }, (_, i) => putManifest(url, repo, `t${i}`, image.manifest)),
      );
      for (const r of responses) await r.arrayBuffer();
      assert.equal(responses.filter((r) => r.status === 201).length, 2);
      assert.equal(responses.filter((r) => r.status === 403).length, 4);
    });
  });
}
