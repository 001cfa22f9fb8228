import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { parseDigest } from "../../src/oci/digest.js";
import { BlobNotFoundError, type BlobStore } from "../../src/storage/blob-store.js";

export interface BlobStoreFixture {
  open(): Promise<BlobStore>;
  /** A second store on the same storage (another instance), when the backend is shared. */
  openAnother?(): Promise<BlobStore>;
  /** The store implements writeAndCommitUpload. */
  onePassCommit?: boolean;
  cleanup(): Promise<void>;
}

const mebibyte = 1024 * 1024;

async function collect(stream: Readable | Promise<Readable>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** `bytes` as an async iterable of chunks of the given sizes (the rest in one last chunk). */
async function* chunked(bytes: Buffer, sizes: number[] = []): AsyncGenerator<Buffer> {
  let at = 0;
  for (const size of sizes) {
    yield bytes.subarray(at, at + size);
    at += size;
  }
  if (at < bytes.length) yield bytes.subarray(at);
}

function digestOf(bytes: Buffer) {
  return parseDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
}

/** The behaviour every BlobStore must share; run against each backend. */
export function blobStoreContract(name: string, fixture: BlobStoreFixture, skip: string | false = false) {
  describe(`BlobStore contract: ${name}`, { skip }, () => {
    let store: BlobStore;
    before(async () => {
      store = await fixture.open();
    });
    after(async () => {
      await fixture.cleanup();
    });

    test("chunked upload across part boundaries: read back, commit, ranges", async () => {
      const id = randomUUID();
      const bytes = randomBytes(11 * mebibyte + 123);
      await store.createUpload(id);
      let offset = 0;
      // Chunks smaller than, equal to and larger than a 5 MiB part, starting mid-part.
      for (const size of [1, 3 * mebibyte, 2 * mebibyte - 1, 5 * mebibyte, 7, bytes.length]) {
        const piece = bytes.subarray(offset, offset + size);
        if (piece.length === 0) break;
        assert.equal(await store.writeUpload(id, offset, chunked(piece, [7, 100_000]), true), piece.length);
        offset += piece.length;
        assert.ok((await collect(store.readUpload(id, offset))).equals(bytes.subarray(0, offset)));
      }
      assert.equal(offset, bytes.length);
      assert.ok((await collect(store.readUpload(id, 1000))).equals(bytes.subarray(0, 1000)), "a prefix");
      const digest = digestOf(bytes);
      assert.equal(await store.statBlob(digest), undefined);
      await store.commitUpload(id, bytes.length, digest);
      assert.equal(await store.statBlob(digest), bytes.length);
      assert.ok((await collect(store.readBlob(digest))).equals(bytes));
      assert.ok((await store.readBlobBytes(digest)).equals(bytes));
      const range = { start: 5 * mebibyte - 10, end: 5 * mebibyte + 10 };
      assert.ok(
        (await collect(store.readBlob(digest, range))).equals(bytes.subarray(range.start, range.end + 1)),
      );
      await store.deleteBlob(digest);
      assert.equal(await store.statBlob(digest), undefined);
      await assert.rejects(store.readBlob(digest), BlobNotFoundError);
    });

    test("a write from an earlier offset replaces bytes a failed write left past it", async () => {
      const id = randomUUID();
      const first = randomBytes(6 * mebibyte);
      const second = randomBytes(mebibyte);
      await store.createUpload(id);
      await store.writeUpload(id, 0, chunked(first));
      // Only 4 MiB were acknowledged; the client resends from there.
      await store.writeUpload(id, 4 * mebibyte, chunked(second));
      const expected = Buffer.concat([first.subarray(0, 4 * mebibyte), second]);
      assert.ok((await collect(store.readUpload(id, expected.length))).equals(expected));
      const digest = digestOf(expected);
      await store.commitUpload(id, expected.length, digest);
      assert.ok((await store.readBlobBytes(digest)).equals(expected));
      await store.deleteBlob(digest);
    });

    test("commit publishes only the acknowledged size", async () => {
      const id = randomUUID();
      const bytes = randomBytes(mebibyte + 5);
      await store.createUpload(id);
      await store.writeUpload(id, 0, chunked(bytes));
      const digest = digestOf(bytes.subarray(0, mebibyte));
      await store.commitUpload(id, mebibyte, digest);
      assert.equal(await store.statBlob(digest), mebibyte);
      assert.ok((await store.readBlobBytes(digest)).equals(bytes.subarray(0, mebibyte)));
      await store.deleteBlob(digest);
    });

    test("empty uploads and blobs", async () => {
      const id = randomUUID();
      await store.createUpload(id);
      assert.equal((await collect(store.readUpload(id, 0))).length, 0);
      assert.equal(await store.writeUpload(id, 0, chunked(Buffer.alloc(0))), 0);
      const digest = digestOf(Buffer.alloc(0));
      await store.commitUpload(id, 0, digest);
      assert.equal(await store.statBlob(digest), 0);
      assert.equal((await collect(store.readBlob(digest))).length, 0);
      assert.equal((await store.readBlobBytes(digest)).length, 0);
    });

    test("writeAndCommitUpload: one pass for a closing request's bytes; a refused admit publishes nothing", {
      skip: fixture.onePassCommit ? false : "this store publishes with writeUpload and commitUpload only",
    }, async () => {
      const writeAndCommit = store.writeAndCommitUpload?.bind(store);
      assert.ok(writeAndCommit, "the fixture says the store has writeAndCommitUpload");
      // A single-request push: no scratch object before, created at offset 0.
      const whole = randomBytes(mebibyte + 17);
      const wholeDigest = digestOf(whole);
      const admitted: number[] = [];
      const written = await writeAndCommit(
        randomUUID(),
        0,
        chunked(whole, [5, 100_000]),
        wholeDigest,
        async (n) => {
          admitted.push(n);
          assert.equal(await store.statBlob(wholeDigest), undefined, "nothing is published before admit");
        },
      );
      assert.equal(written, whole.length);
      assert.deepEqual(admitted, [whole.length]);
      assert.ok((await store.readBlobBytes(wholeDigest)).equals(whole));

      // The closing chunk of a session, over bytes a failed write left past the acknowledged offset.
      const id = randomUUID();
      const bytes = randomBytes(3 * mebibyte);
      await store.createUpload(id);
      await store.writeUpload(id, 0, chunked(randomBytes(3 * mebibyte)));
      await store.writeUpload(id, 0, chunked(bytes.subarray(0, mebibyte)));
      const digest = digestOf(bytes.subarray(0, 2 * mebibyte));
      const refused = new Error("digest mismatch");
      await assert.rejects(
        writeAndCommit(id, mebibyte, chunked(bytes.subarray(mebibyte, 2 * mebibyte)), digest, async () => {
          throw refused;
        }),
        (error) => error === refused,
      );
      assert.equal(await store.statBlob(digest), undefined, "a refused admit publishes nothing");
      assert.equal(
        await writeAndCommit(
          id,
          mebibyte,
          chunked(bytes.subarray(mebibyte, 2 * mebibyte)),
          digest,
          async () => {},
        ),
        mebibyte,
      );
      assert.equal(await store.statBlob(digest), 2 * mebibyte, "only the acknowledged bytes are published");
      assert.ok((await store.readBlobBytes(digest)).equals(bytes.subarray(0, 2 * mebibyte)));
      const gone = randomUUID();
      await assert.rejects(
        writeAndCommit(gone, 10, chunked(randomBytes(10)), digestOf(randomBytes(4)), async () => {}),
        BlobNotFoundError,
      );
      await store.deleteBlob(wholeDigest);
      await store.deleteBlob(digest);
    });

    test("putBlob, idempotent; missing blobs", async () => {
      const bytes = Buffer.from(`{"manifest":"${randomUUID()}"}`);
      const digest = digestOf(bytes);
      await store.putBlob(digest, bytes);
      await store.putBlob(digest, bytes);
      assert.ok((await store.readBlobBytes(digest)).equals(bytes));
      assert.ok((await collect(store.readBlob(digest, { start: 2, end: 5 }))).equals(bytes.subarray(2, 6)));
      assert.equal(await store.statBlob(digest), bytes.length);
      await store.deleteBlob(digest);
      await store.deleteBlob(digest);
      const missing = digestOf(randomBytes(8));
      await assert.rejects(store.readBlob(missing), BlobNotFoundError);
      await assert.rejects(store.readBlobBytes(missing), BlobNotFoundError);
      assert.equal(await store.statBlob(missing), undefined);
    });

    test("deleted and unknown uploads reject with BlobNotFoundError", async () => {
      const id = randomUUID();
      await store.createUpload(id);
      await store.writeUpload(id, 0, chunked(randomBytes(100)));
      await store.deleteUpload(id);
      await store.deleteUpload(id);
      // (a write at offset 0 may create the scratch object again: stores may create it lazily)
      await assert.rejects(store.writeUpload(id, 100, chunked(randomBytes(10))), BlobNotFoundError);
      await assert.rejects(collect(store.readUpload(id, 100)), BlobNotFoundError);
      await assert.rejects(store.commitUpload(id, 100, digestOf(randomBytes(4))), BlobNotFoundError);
      await store.ping();
    });

    // gc: listings for garbage collection, scrub and fsck.
    test("gc: lists published blobs and uploads in progress", async () => {
      const bytes = randomBytes(1000);
      const digest = digestOf(bytes);
      const manifestBytes = Buffer.from(`{"gc":"${randomUUID()}"}`);
      await store.putBlob(digestOf(manifestBytes), manifestBytes);
      const published = randomUUID();
      await store.createUpload(published);
      await store.writeUpload(published, 0, chunked(bytes));
      await store.commitUpload(published, bytes.length, digest);
      const pending = randomUUID();
      await store.createUpload(pending);
      await store.writeUpload(pending, 0, chunked(Buffer.from("partial")));
      const started = Date.now() - 60_000;

      const blobs = new Map<string, { size: number | undefined; modifiedAt: number }>();
      for await (const blob of store.listBlobs()) blobs.set(blob.digest.value, blob);
      for (const [value, size] of [
        [digest.value, bytes.length],
        [digestOf(manifestBytes).value, manifestBytes.length],
      ] as const) {
        const listed = blobs.get(value);
        assert.ok(listed, `${value} listed`);
        assert.ok(listed.size === undefined || listed.size === size);
        assert.ok(listed.modifiedAt > started);
      }
      const uploads = new Map<string, number>();
      for await (const upload of store.listUploads()) uploads.set(upload.id, upload.modifiedAt);
      assert.ok((uploads.get(pending) ?? 0) > started, "upload in progress listed");
      assert.equal(uploads.has(published), false, "a committed upload is no longer an upload");
      await store.deleteUpload(pending);
      await store.deleteBlob(digest);
      for await (const blob of store.listBlobs()) assert.notEqual(blob.digest.value, digest.value);
      for await (const upload of store.listUploads()) assert.notEqual(upload.id, pending);
      // Nothing of a completed publish is a leftover.
      assert.deepEqual((await store.collectLeftovers?.(Date.now() + 1000, true)) ?? [], []);
    });

    test("another instance continues an upload and serves the blob", {
      skip: fixture.openAnother ? false : "storage is not shared between instances",
    }, async () => {
      const other = await (fixture.openAnother as () => Promise<BlobStore>)();
      const id = randomUUID();
      const bytes = randomBytes(7 * mebibyte);
      await store.createUpload(id);
      await store.writeUpload(id, 0, chunked(bytes.subarray(0, 3 * mebibyte)));
      await other.writeUpload(id, 3 * mebibyte, chunked(bytes.subarray(3 * mebibyte, 6 * mebibyte)));
      assert.ok((await collect(other.readUpload(id, 6 * mebibyte))).equals(bytes.subarray(0, 6 * mebibyte)));
      await store.writeUpload(id, 6 * mebibyte, chunked(bytes.subarray(6 * mebibyte)));
      const digest = digestOf(bytes);
      await other.commitUpload(id, bytes.length, digest);
      assert.ok((await collect(store.readBlob(digest))).equals(bytes));
      await other.deleteBlob(digest);
    });
  });
}
