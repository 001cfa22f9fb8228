import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseDigest } from "../../src/oci/digest.js";
import type { ProxyCounts } from "../../src/proxy/proxy-metrics.js";
import { digestOf } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import {
  type DistributionUpstream,
  digestOfBody,
  needsDistribution,
  pushBlobFile,
  pushBlobTwoStep,
  type Relay,
  startDistribution,
  startRelay,
} from "./upstreams.js";

const mebibyte = 1024 * 1024;

/**
 * Blob misses stream to the client while berth stores them, verified before anything is published,
 * and concurrent misses share one upstream fetch. A relay between berth and a real Distribution holds
 * or corrupts the upstream's traffic so each property can be observed, not inferred from timing.
 */
describe("pull-through blob streaming", needsDistribution, () => {
  let upstream: DistributionUpstream;
  let scratch: string;
  let proxy: TestRegistry;
  const relays: Record<string, Relay> = {};

  before(async () => {
    upstream = await startDistribution();
    scratch = await mkdtemp(join(tmpdir(), "berth-proxy-stream-"));
    relays.early = await startRelay(upstream.host, { holdAfterBytes: mebibyte });
    relays.cut = await startRelay(upstream.host, { holdAfterBytes: mebibyte });
    relays.leaver = await startRelay(upstream.host, { holdAfterBytes: mebibyte });
    relays.corrupt = await startRelay(upstream.host, { flipByteAt: 100_000 });
    relays.big = await startRelay(upstream.host, { holdAfterBytes: 32 * mebibyte });
    proxy = await startTestRegistry({
      log: { level: "fatal" },
      proxy: {
        upstreams: Object.entries(relays).map(([prefix, relay]) => ({ prefix, url: `http://${relay.host}` })),
      },
    });
  });
  after(async () => {
    await proxy?.close();
    for (const relay of Object.values(relays)) await relay.close();
    await upstream?.close();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const counts = (prefix: string): ProxyCounts => {
    const metrics = proxy.server.registry.proxy?.metrics;
    assert.ok(metrics);
    return metrics.of(prefix);
  };
  const stored = async (repo: string, digest: string) => ({
    linked: (await proxy.server.registry.ctx.metadata.getRepositoryBlob(repo, digest)) !== undefined,
    inStore: (await proxy.server.registry.ctx.blobStore.statBlob(parseDigest(digest))) !== undefined,
  });
  const waitFor = async (what: string, condition: () => Promise<boolean> | boolean) => {
    for (let i = 0; i < 600; i++) {
      if (await condition()) return;
      await sleep(50);
    }
    assert.fail(`timed out waiting until ${what}`);
  };

  test("the first bytes reach the client while the upstream transfer is still held back", async () => {
    const bytes = randomBytes(8 * mebibyte);
    const digest = await pushBlobTwoStep(upstream.url, "team/early", bytes);
    const response = await fetch(`${proxy.url}/v2/early/team/early/blobs/${digest}`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-length"), String(bytes.length));
    assert.ok(response.body);
    const reader = response.body.getReader();
    // Were the blob buffered whole before sending, this read would wait for the held relay forever.
    const first = await Promise.race([
      reader.read(),
      sleep(60_000).then(() => assert.fail("no byte arrived while the upstream transfer was held")),
    ]);
    assert.ok(!first.done && first.value.length > 0, "a first chunk arrived");
    assert.ok(relays.early?.forwarded !== undefined && relays.early.forwarded <= mebibyte);
    assert.ok(!(await stored("early/team/early", digest)).linked, "nothing is published before the end");

    relays.early?.release();
    const chunks = [Buffer.from(first.value)];
    for (let next = await reader.read(); !next.done; next = await reader.read())
      chunks.push(Buffer.from(next.value));
    assert.equal(digestOf(Buffer.concat(chunks)), digest);
    assert.deepEqual(await stored("early/team/early", digest), { linked: true, inStore: true });
    assert.equal(counts("early").upstreamBytes, bytes.length);
  });

  test("an upstream that dies mid-blob fails the response and publishes nothing", async () => {
    const bytes = randomBytes(4 * mebibyte);
    const digest = await pushBlobTwoStep(upstream.url, "team/cut", bytes);
    const response = await fetch(`${proxy.url}/v2/cut/team/cut/blobs/${digest}`);
    assert.equal(response.status, 200);
    const reading = response.arrayBuffer();
    await waitFor("the relay held the transfer", () => (relays.cut?.forwarded ?? 0) >= mebibyte);
    relays.cut?.cut();
    await assert.rejects(reading, "the client sees a truncated body, never a complete wrong one");
    await waitFor(
      "the scratch upload was discarded",
      async () => (await proxy.server.registry.ctx.metadata.countUploadSessions()) === 0,
    );
    assert.deepEqual(await stored("cut/team/cut", digest), { linked: false, inStore: false });

    relays.cut?.release();
    const retry = await fetch(`${proxy.url}/v2/cut/team/cut/blobs/${digest}`);
    assert.equal(retry.status, 200);
    assert.equal(digestOf(Buffer.from(await retry.arrayBuffer())), digest);
    assert.deepEqual(await stored("cut/team/cut", digest), { linked: true, inStore: true });
  });

  test("a corrupted upstream body never completes the response and is not stored", async () => {
    const bytes = randomBytes(mebibyte);
    const digest = await pushBlobTwoStep(upstream.url, "team/corrupt", bytes);
    const response = await fetch(`${proxy.url}/v2/corrupt/team/corrupt/blobs/${digest}`);
    assert.equal(response.status, 200);
    await assert.rejects(response.arrayBuffer());
    assert.deepEqual(await stored("corrupt/team/corrupt", digest), { linked: false, inStore: false });
    // The relay corrupts one byte only: the next pull fetches again and succeeds.
    const retry = await fetch(`${proxy.url}/v2/corrupt/team/corrupt/blobs/${digest}`);
    assert.equal(retry.status, 200);
    assert.equal(digestOf(Buffer.from(await retry.arrayBuffer())), digest);
    assert.equal(counts("corrupt").misses, 2);
  });

  test("a client that disconnects mid-blob does not stop the blob from being stored", async () => {
    const bytes = randomBytes(4 * mebibyte);
    const digest = await pushBlobTwoStep(upstream.url, "team/leaver", bytes);
    const abort = new AbortController();
    const response = await fetch(`${proxy.url}/v2/leaver/team/leaver/blobs/${digest}`, {
      signal: abort.signal,
    });
    assert.ok(response.body);
    const reader = response.body.getReader();
    await reader.read();
    abort.abort();
    await reader.read().catch(() => undefined);
    relays.leaver?.release();
    await waitFor("the blob was stored", async () => (await stored("leaver/team/leaver", digest)).linked);
    const requests = counts("leaver").upstreamRequests;
    const again = await fetch(`${proxy.url}/v2/leaver/team/leaver/blobs/${digest}`);
    assert.equal(digestOf(Buffer.from(await again.arrayBuffer())), digest);
    assert.equal(counts("leaver").upstreamRequests, requests, "served from the cache");
  });

  test("two concurrent pulls of one missing 256 MiB blob fetch it from the upstream once", async () => {
    const size = 256 * mebibyte;
    const file = join(scratch, "big.bin");
    const out = createWriteStream(file);
    for (let written = 0; written < size; written += mebibyte) {
      if (!out.write(randomBytes(mebibyte)))
        await new Promise<void>((resolve) => out.once("drain", () => resolve()));
    }
    await new Promise<void>((resolve, reject) =>
      out.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
    const digest = await pushBlobFile(upstream.url, "team/big", file);
    await rm(file);

    const url = `${proxy.url}/v2/big/team/big/blobs/${digest}`;
    const first = await fetch(url);
    assert.equal(first.status, 200);
    const second = fetch(url);
    // The relay holds the upstream transfer, so the second request provably arrives mid-fetch.
    await waitFor("the second pull joined the first", () => counts("big").coalesced === 1);
    relays.big?.release();
    const [a, b] = await Promise.all([
      digestOfBody(first),
      second.then((response) => digestOfBody(response)),
    ]);
    assert.deepEqual(a, { digest, size });
    assert.deepEqual(b, { digest, size });
    const after = counts("big");
    assert.equal(after.misses, 1);
    assert.equal(after.upstreamBytes, size);
    // Counted independently on the wire: one body's worth plus HTTP headers.
    assert.ok((relays.big?.forwarded ?? 0) < size + 64 * 1024, `relayed ${relays.big?.forwarded}`);
  });
});
