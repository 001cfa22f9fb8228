import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseDigest } from "../../src/oci/digest.js";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import { digestOf } from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { getManifest } from "../helpers/registry-http.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";
import {
  type DistributionUpstream,
  needsDistribution,
  pushBlobTwoStep,
  pushUpstreamImage,
  type Relay,
  startDistribution,
  startRelay,
} from "./upstreams.js";

const mebibyte = 1024 * 1024;

/** The pull-through cache on the scale-out backends: PostgreSQL metadata and an S3 bucket (multipart). */
describe("pull-through cache on PostgreSQL and S3", {
  skip: postgresSkip || s3Skip || needsDistribution.skip,
}, () => {
  const schema = newSchemaName();
  let bucket: TestBucket;
  let upstream: DistributionUpstream;
  let relay: Relay;
  let proxy: TestRegistry;

  before(async () => {
    bucket = testBucket();
    (await S3BlobStore.open({ ...bucket, prefix: "", createBucket: true })).destroy();
    upstream = await startDistribution();
    relay = await startRelay(upstream.host, { holdAfterBytes: 3 * mebibyte });
    proxy = await startTestRegistry({
      log: { level: "fatal" },
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema } },
      storage: {
        driver: "s3",
        s3: { endpoint: bucket.endpoint, bucket: bucket.bucket, forcePathStyle: bucket.forcePathStyle },
      },
      proxy: {
        upstreams: [
          { prefix: "dist", url: upstream.url },
          { prefix: "held", url: `http://${relay.host}` },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.close();
    await relay?.close();
    await upstream?.close();
    await dropSchema(schema);
    if (bucket) await deleteTestBucket(bucket);
  });

  test("an image misses once, then every pull is a hit", async () => {
    const image = await pushUpstreamImage(upstream.url, "team/app", "v1");
    for (let round = 0; round < 2; round++) {
      const manifest = await getManifest(proxy.url, "dist/team/app", "v1");
      assert.equal(manifest.status, 200);
      assert.equal(manifest.digest, image.digest);
      for (const descriptor of [image.config, image.layer]) {
        const response = await fetch(`${proxy.url}/v2/dist/team/app/blobs/${descriptor.digest}`);
        assert.equal(digestOf(Buffer.from(await response.arrayBuffer())), descriptor.digest);
      }
    }
    const counts = proxy.server.registry.proxy?.metrics.of("dist");
    assert.equal(counts?.misses, 3);
    assert.equal(counts?.hits, 3);
  });

  test("a multi-part blob streams while the upstream is held, a cut leaves nothing, a retry completes", async () => {
    const bytes = randomBytes(12 * mebibyte);
    const digest = await pushBlobTwoStep(upstream.url, "team/big", bytes);
    const url = `${proxy.url}/v2/held/team/big/blobs/${digest}`;
    const { metadata, blobStore } = proxy.server.registry.ctx;

    const cutShort = await fetch(url);
    assert.ok(cutShort.body);
    const reader = cutShort.body.getReader();
    assert.equal((await reader.read()).done, false, "bytes arrive before the upstream finished");
    relay.cut();
    await assert.rejects(async () => {
      for (let next = await reader.read(); !next.done; next = await reader.read()) {}
    });
    for (let i = 0; i < 200 && (await metadata.countUploadSessions()) > 0; i++) await sleep(50);
    assert.equal(await metadata.countUploadSessions(), 0);
    assert.equal(await blobStore.statBlob(parseDigest(digest)), undefined);

    relay.release();
    const complete = await fetch(url);
    assert.equal(digestOf(Buffer.from(await complete.arrayBuffer())), digest);
    assert.deepEqual(await metadata.getRepositoryBlob("held/team/big", digest), { size: bytes.length });
  });
});
