import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FilesystemBlobStore } from "../../src/storage/filesystem/filesystem-blob-store.js";
import { blobStoreContract } from "./blob-store-contract.js";

let dir: string | undefined;

blobStoreContract("filesystem", {
  async open() {
    dir = await mkdtemp(join(tmpdir(), "berth-blobs-"));
    return FilesystemBlobStore.open(dir);
  },
  onePassCommit: true,
  async cleanup() {
    if (dir) await rm(dir, { recursive: true, force: true });
  },
});
