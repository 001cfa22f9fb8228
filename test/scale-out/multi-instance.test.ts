import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import {
  descriptorOf,
  digestOf,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  types,
} from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const scaleOutExample = fileURLToPath(new URL("../../../examples/scale-out.yaml", import.meta.url));
const mebibyte = 1024 * 1024;

interface Instance {
  child: ChildProcessWithoutNullStreams;
  url: string;
}

/** `berth serve` as a real process with the given BERTH_* settings; resolves once it listens. */
function serve(settings: Record<string, string>): Promise<Instance> {
  // Only the settings given here: a BERTH_* variable of the parent's shell would change the instances.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("BERTH_")));
  const child = spawn(process.execPath, [cli, "serve", "--config", scaleOutExample], {
    env: { ...env, BERTH_LOG_FORMAT: "json", BERTH_LOG_LEVEL: "info", ...settings },
  });
  return new Promise((resolve, reject) => {
    let output = "";
    const onData = (data: Buffer) => {
      output += data.toString();
      const match = /"address":"([^"]+)"/.exec(output);
      if (match?.[1]) {
        child.stdout.off("data", onData);
        resolve({ child, url: `http://${match[1]}` });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", (data: Buffer) => {
      output += data.toString();
    });
    child.on("exit", (code) => reject(new Error(`berth exited with ${code} before listening:\n${output}`)));
  });
}

async function stop(instance: Instance | undefined): Promise<void> {
  if (!instance || instance.child.exitCode !== null) return;
  const exited = new Promise((resolve) => instance.child.on("exit", resolve));
  instance.child.kill("SIGTERM");
  await exited;
}

/** The path and query of a Location header, to send the next request to any instance. */
function locationPath(response: Response): string {
  const location = response.headers.get("location");
  assert.ok(location, "Location header");
  const parsed = new URL(location, "http://placeholder");
  return `${parsed.pathname}${parsed.search}`;
}

function withDigest(path: string, digest: string): string {
  return `${path}${path.includes("?") ? "&" : "?"}digest=${digest}`;
}

describe("scale-out: two berth processes sharing PostgreSQL and one S3 bucket", {
  skip: postgresSkip || s3Skip,
}, () => {
  const schema = newSchemaName();
  let dataDir: string;
  let a: Instance | undefined;
  let b: Instance | undefined;
  /** A third instance on the same store with storage.s3.redirect on. */
  let c: Instance | undefined;
  let bucket: TestBucket | undefined;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "berth-scale-out-"));
    const shared = testBucket();
    bucket = shared;
    (await S3BlobStore.open({ ...shared, prefix: "", createBucket: true })).destroy();
    const settings = (name: string) => ({
      BERTH_LISTEN: "127.0.0.1:0",
      BERTH_DATA_DIR: join(dataDir, name),
      BERTH_STORAGE_S3_ENDPOINT: shared.endpoint,
      BERTH_STORAGE_S3_BUCKET: shared.bucket,
      BERTH_METADATA_POSTGRES_URL: requirePostgresUrl(),
      BERTH_METADATA_POSTGRES_SCHEMA: schema,
    });
    // Started together: both migrate the fresh schema at once.
    [a, b] = await Promise.all([serve(settings("a")), serve(settings("b"))]);
    c = await serve({ ...settings("c"), BERTH_STORAGE_S3_REDIRECT: "true" });
  });

  after(async () => {
    await Promise.all([stop(a), stop(b), stop(c)]);
    await dropSchema(schema);
    if (bucket) await deleteTestBucket(bucket);
    await rm(dataDir, { recursive: true, force: true });
  });

  test("a chunked upload started on A continues on B and finishes on A", async () => {
    const A = a as Instance;
    const B = b as Instance;
    const repo = "shared/chunked";
    const bytes = randomBytes(8 * mebibyte + 17);
    const digest = digestOf(bytes);
    const chunks = [
      bytes.subarray(0, 3 * mebibyte),
      bytes.subarray(3 * mebibyte, 7 * mebibyte),
      bytes.subarray(7 * mebibyte),
    ];

    const started = await fetch(`${A.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(started.status, 202);
    let path = locationPath(started);
    let offset = 0;
    for (const [index, instance] of [A, B].entries()) {
      const chunk = chunks[index] as Buffer;
      const response = await fetch(`${instance.url}${path}`, {
        method: "PATCH",
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `${offset}-${offset + chunk.length - 1}`,
        },
        body: Buffer.from(chunk),
      });
      assert.equal(response.status, 202, await response.text());
      offset += chunk.length;
      assert.equal(response.headers.get("range"), `0-${offset - 1}`);
      path = locationPath(response);
    }
    const status = await fetch(`${A.url}${path}`);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), `0-${offset - 1}`, "A sees what B received");

    const last = chunks[2] as Buffer;
    const finished = await fetch(`${A.url}${withDigest(path, digest)}`, {
      method: "PUT",
      headers: {
        "Content-Type": "application/octet-stream",
        "Content-Range": `${offset}-${offset + last.length - 1}`,
      },
      body: Buffer.from(last),
    });
    assert.equal(finished.status, 201, await finished.text());

    const fetched = await fetch(`${B.url}/v2/${repo}/blobs/${digest}`);
    assert.equal(fetched.status, 200);
    const body = Buffer.from(await fetched.arrayBuffer());
    assert.equal(createHash("sha256").update(body).digest("hex"), digest.slice("sha256:".length));
    const ranged = await fetch(`${A.url}/v2/${repo}/blobs/${digest}`, { headers: { Range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20)));
  });

  test("a tag pushed on A is served by B at once, and moved or deleted on B is seen by A", async () => {
    const A = a as Instance;
    const B = b as Instance;
    const repo = "shared/tags";
    const first = await pushImage(A.url, repo, "v1");
    const served = await fetch(`${B.url}/v2/${repo}/manifests/v1`);
    assert.equal(served.status, 200);
    assert.equal(served.headers.get("docker-content-digest"), first.digest);
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(first.manifest));
    const layer = await fetch(`${B.url}/v2/${repo}/blobs/${first.layer.digest}`);
    assert.equal(layer.status, 200);
    await layer.arrayBuffer();

    // Listings are not cached across instances: each sees the other's writes at once.
    const tagsBefore = await fetch(`${A.url}/v2/${repo}/tags/list`);
    assert.deepEqual(((await tagsBefore.json()) as { tags: string[] }).tags, ["v1"]);
    const second = await pushImage(B.url, repo, "v1");
    await pushImage(B.url, repo, "v2");
    const moved = await fetch(`${A.url}/v2/${repo}/manifests/v1`, { method: "HEAD" });
    assert.equal(moved.headers.get("docker-content-digest"), second.digest);
    const tagsAfter = await fetch(`${A.url}/v2/${repo}/tags/list`);
    assert.deepEqual(((await tagsAfter.json()) as { tags: string[] }).tags, ["v1", "v2"]);

    const deleted = await fetch(`${B.url}/v2/${repo}/manifests/v2`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    assert.equal((await fetch(`${A.url}/v2/${repo}/manifests/v2`, { method: "HEAD" })).status, 404);
  });

  test("concurrent pushes of the same blob to both instances all succeed and store it intact", async () => {
    const instances = [a as Instance, b as Instance];
    const repo = "shared/same-blob";
    // Larger than one 5 MiB part, so every push is a multipart upload racing the others to publish.
    const bytes = randomBytes(11 * mebibyte + 3);
    const digest = digestOf(bytes);
    const pushes = Array.from({ length: 8 }, async (_, index) => {
      const instance = instances[index % 2] as Instance;
      if (index % 4 < 2) {
        // Monolithic: POST then PUT with the whole body.
        const started = await fetch(`${instance.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
        assert.equal(started.status, 202);
        return fetch(`${instance.url}${withDigest(locationPath(started), digest)}`, {
          method: "PUT",
          headers: { "Content-Type": "application/octet-stream" },
          body: bytes,
        });
      }
      // Chunked, with the second chunk and the close sent to the other instance.
      const other = instances[(index + 1) % 2] as Instance;
      const split = 6 * mebibyte;
      const started = await fetch(`${instance.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
      const first = await fetch(`${instance.url}${locationPath(started)}`, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${split - 1}` },
        body: bytes.subarray(0, split),
      });
      assert.equal(first.status, 202, await first.text());
      return fetch(`${other.url}${withDigest(locationPath(first), digest)}`, {
        method: "PUT",
        headers: {
          "Content-Type": "application/octet-stream",
          "Content-Range": `${split}-${bytes.length - 1}`,
        },
        body: bytes.subarray(split),
      });
    });
    for (const response of await Promise.all(pushes)) {
      assert.equal(response.status, 201, await response.text());
      assert.equal(response.headers.get("docker-content-digest"), digest);
    }
    for (const instance of instances) {
      const fetched = await fetch(`${instance.url}/v2/${repo}/blobs/${digest}`);
      assert.equal(fetched.status, 200);
      assert.ok(Buffer.from(await fetched.arrayBuffer()).equals(bytes), "the blob reads back byte for byte");
    }
  });

  test("concurrent pushes of one tag to both instances: all acknowledged, one winner both agree on", async () => {
    const instances = [a as Instance, b as Instance];
    const repo = "shared/same-tag";
    // Blobs first (each image its own), then 16 manifest PUTs of one tag, half to each instance, at once.
    const images = await Promise.all(
      Array.from({ length: 16 }, async (_, index) => {
        const instance = instances[index % 2] as Instance;
        const configBytes = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", index }));
        const layerBytes = randomBytes(1024);
        await pushBlob(instance.url, repo, configBytes);
        await pushBlob(instance.url, repo, layerBytes);
        const manifest = imageManifest(descriptorOf(types.ociConfig, configBytes), [
          descriptorOf(types.ociLayer, layerBytes),
        ]);
        return { manifest, digest: digestOf(manifest), instance };
      }),
    );
    // Every image twice: identical bytes to the same tag from both instances at once must also succeed.
    const responses = await Promise.all(
      images.flatMap((image, index) => [
        putManifest(image.instance.url, repo, "latest", image.manifest),
        putManifest((instances[(index + 1) % 2] as Instance).url, repo, "latest", image.manifest),
      ]),
    );
    for (const response of responses) assert.equal(response.status, 201, await response.text());

    const winners = await Promise.all(
      instances.map(async (instance) => {
        const head = await fetch(`${instance.url}/v2/${repo}/manifests/latest`, { method: "HEAD" });
        assert.equal(head.status, 200);
        return head.headers.get("docker-content-digest");
      }),
    );
    assert.equal(winners[0], winners[1], "both instances resolve the tag to the same manifest");
    assert.ok(
      images.some((image) => image.digest === winners[0]),
      "the tag names one of the pushed manifests",
    );
    for (const image of images) {
      for (const instance of instances) {
        const byDigest = await fetch(`${instance.url}/v2/${repo}/manifests/${image.digest}`);
        assert.equal(byDigest.status, 200);
        assert.ok(Buffer.from(await byDigest.arrayBuffer()).equals(image.manifest));
      }
    }
    const tags = await fetch(`${instances[1]?.url}/v2/${repo}/tags/list`);
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ["latest"]);
  });

  test("with storage.s3.redirect a blob GET answers 307 to a presigned URL; without it, 200", async () => {
    const A = a as Instance;
    const C = c as Instance;
    const repo = "shared/redirect";
    const image = await pushImage(A.url, repo, "v1");
    // A chunked (multipart, linked) blob larger than a part, so the URL must name the data object.
    const bytes = randomBytes(6 * mebibyte + 5);
    const digest = digestOf(bytes);
    const started = await fetch(`${A.url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    const pushed = await fetch(`${A.url}${withDigest(locationPath(started), digest)}`, {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream" },
      body: bytes,
    });
    assert.equal(pushed.status, 201, await pushed.text());

    for (const [blob, expected] of [
      [digest, bytes],
      [image.layer.digest, undefined],
    ] as const) {
      const redirected = await fetch(`${C.url}/v2/${repo}/blobs/${blob}`, { redirect: "manual" });
      assert.equal(redirected.status, 307);
      assert.equal(redirected.headers.get("docker-content-digest"), blob);
      assert.equal((await redirected.arrayBuffer()).byteLength, 0);
      const location = redirected.headers.get("location") ?? "";
      assert.match(location, /X-Amz-Signature=/, "a presigned URL");
      const direct = Buffer.from(await (await fetch(location)).arrayBuffer());
      assert.equal(digestOf(direct), blob, "the presigned URL returns exactly the blob");
      if (expected) assert.ok(direct.equals(expected));
      const ranged = await fetch(location, { headers: { Range: "bytes=10-19" } });
      assert.equal(ranged.status, 206);
      assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(direct.subarray(10, 20)));
      // HEAD is still answered by berth.
      const head = await fetch(`${C.url}/v2/${repo}/blobs/${blob}`, { method: "HEAD", redirect: "manual" });
      assert.equal(head.status, 200);
      assert.equal(head.headers.get("content-length"), String(direct.length));
      // Without redirect the same blob is streamed through berth.
      const streamedBlob = await fetch(`${A.url}/v2/${repo}/blobs/${blob}`, { redirect: "manual" });
      assert.equal(streamedBlob.status, 200);
      assert.ok(Buffer.from(await streamedBlob.arrayBuffer()).equals(direct));
    }
    // A client following the redirect with a Range header gets the range from the store.
    const followed = await fetch(`${C.url}/v2/${repo}/blobs/${digest}`, { headers: { Range: "bytes=5-9" } });
    assert.equal(followed.status, 206);
    assert.ok(Buffer.from(await followed.arrayBuffer()).equals(bytes.subarray(5, 10)));
  });
});
