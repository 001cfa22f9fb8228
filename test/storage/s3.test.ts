import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";
import { blobStoreContract } from "./blob-store-contract.js";

let bucket: TestBucket | undefined;
const stores: S3BlobStore[] = [];

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
