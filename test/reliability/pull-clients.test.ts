import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { digestOf, pushBlob } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const mebibyte = 1024 * 1024;

/**
 * Blob bodies are sent from two reused buffers per response (src/http/blob-body.ts): these check that
 * concurrent responses never hand a client another response's bytes, that clients which vanish mid-body
 * neither hang the server nor spoil later pulls, and that every byte range reads back exactly
 * ("Pulling blobs", RFC 9110 range requests).
 */
describe("pulls: concurrent, ranged and abandoned blob responses", () => {
  let registry: TestRegistry;
  const repository = "pulls/blobs";
  const blobs = Array.from({ length: 4 }, (_, i) => randomBytes(6 * mebibyte + 1000 * i + 7));
  const digests = blobs.map((bytes) => digestOf(bytes));

  before(async () => {
    registry = await startTestRegistry();
    for (const bytes of blobs) await pushBlob(registry.url, repository, bytes);
  });
  after(async () => {
    await registry?.close();
  });

  const get = (digest: string, init: RequestInit = {}) =>
    fetch(`${registry.url}/v2/${repository}/blobs/${digest}`, init);

  test("24 concurrent pulls of 4 blobs each get exactly their blob's bytes", async () => {
    const results = await Promise.all(
      Array.from({ length: 24 }, async (_, i) => {
        const index = i % blobs.length;
        const response = await get(digests[index] as string);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get("content-length"), String(blobs[index]?.length));
        return { index, body: Buffer.from(await response.arrayBuffer()) };
      }),
    );
    for (const { index, body } of results) assert.equal(digestOf(body), digests[index]);
  });

  test("clients that disconnect mid-body leave the server serving complete blobs", async () => {
    const abandoned = Array.from({ length: 12 }, async (_, i) => {
      const controller = new AbortController();
      const response = await get(digests[i % blobs.length] as string, { signal: controller.signal });
      const reader = response.body?.getReader();
      assert.ok(reader);
      let received = 0;
      while (received < (i % 3) * mebibyte + 1) {
        const { value, done } = await reader.read();
        if (done) break;
        received += value.length;
      }
      controller.abort();
      await reader.cancel().catch(() => undefined);
    });
    await Promise.all(abandoned);
    for (const [index, digest] of digests.entries()) {
      const response = await get(digest);
      assert.equal(response.status, 200);
      assert.ok(Buffer.from(await response.arrayBuffer()).equals(blobs[index] as Buffer));
    }
  });

  test("ranges across buffer boundaries read back exactly", async () => {
    const bytes = blobs[3] as Buffer;
    const chunk = 512 * 1024;
    const ranges: [number, number][] = [
      [0, 0],
      [chunk - 1, chunk],
      [chunk - 3, 3 * chunk + 5],
      [bytes.length - 1, bytes.length - 1],
      [1, bytes.length - 2],
    ];
    for (const [start, end] of ranges) {
      const response = await get(digests[3] as string, { headers: { Range: `bytes=${start}-${end}` } });
      assert.equal(response.status, 206);
      assert.equal(response.headers.get("content-range"), `bytes ${start}-${end}/${bytes.length}`);
      const body = Buffer.from(await response.arrayBuffer());
      assert.ok(body.equals(bytes.subarray(start, end + 1)), `bytes ${start}-${end}`);
    }
  });
});
