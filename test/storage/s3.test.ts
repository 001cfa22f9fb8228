import assert from "node:assert/strict";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { after, describe, test } from "node:test";
import { parseDigest } from "../../src/oci/digest.js";
import { PartLayout } from "../../src/storage/s3/part-layout.js";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";
import { blobStoreContract } from "./blob-store-contract.js";

let bucket: TestBucket | undefined;
const stores: S3BlobStore[] = [];
const mebibyte = 1024 * 1024;

async function open(): Promise<S3BlobStore> {
  bucket ??= testBucket();
  const store = await S3BlobStore.open({ ...bucket, prefix: "registry/", createBucket: true });
  stores.push(store);
  return store;
}

blobStoreContract(
  "s3",
  {
    open,
    openAnother: open,
    async cleanup() {
      for (const store of stores) store.destroy();
      if (bucket) await deleteTestBucket(bucket);
    },
  },
  s3Skip,
);

describe("s3: part layout tiers", { skip: s3Skip }, () => {
  // Two parts per tier instead of 1,000, so a 36 MiB blob crosses three tiers (5, 5, 10, 10, 15 MiB...).
  const layout = new PartLayout(5 * mebibyte, 2, 10);
  let tierBucket: TestBucket | undefined;
  const opened: S3BlobStore[] = [];

  after(async () => {
    for (const store of opened) store.destroy();
    if (tierBucket) await deleteTestBucket(tierBucket);
  });

  test("a chunked upload across tier boundaries, continued by another instance, commits intact", async () => {
    tierBucket = testBucket();
    const openStore = async () => {
      const store = await S3BlobStore.open({
        ...(tierBucket as TestBucket),
        prefix: "",
        createBucket: true,
        partLayout: layout,
      });
      opened.push(store);
      return store;
    };
    const first = await openStore();
    const second = await openStore();
    const bytes = randomBytes(36 * mebibyte + 11);
    const digest = parseDigest(`sha256:${createHash("sha256").update(bytes).digest("hex")}`);
    const uploadId = randomUUID();
    await first.createUpload(uploadId);
    // Chunk ends fall inside parts of every tier, and the second store never saw the first's writes.
    const cuts = [0, 3 * mebibyte, 12 * mebibyte + 5, 27 * mebibyte + 1, bytes.length];
    for (let index = 0; index + 1 < cuts.length; index++) {
      const store = index % 2 === 0 ? first : second;
      const chunk = bytes.subarray(cuts[index], cuts[index + 1]);
      assert.equal(
        await store.writeUpload(uploadId, cuts[index] as number, Readable.from([chunk])),
        chunk.length,
      );
    }
    const readBack = await second.readUpload(uploadId, bytes.length);
    const hash = createHash("sha256");
    for await (const chunk of readBack) hash.update(chunk as Buffer);
    assert.equal(hash.digest("hex"), digest.encoded, "the upload reads back in order across tiers");
    await second.commitUpload(uploadId, bytes.length, digest);
    assert.equal(await first.statBlob(digest), bytes.length);
    const stored = await first.readBlobBytes(digest);
    assert.ok(stored.equals(bytes));
  });
});
