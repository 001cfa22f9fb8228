import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { metadataStoreContract } from "./metadata-store-contract.js";

let dir: string | undefined;

metadataStoreContract("sqlite", {
  cachesListings: true,
  async open() {
    dir = await mkdtemp(join(tmpdir(), "berth-metadata-"));
    return new SqliteMetadataStore(join(dir, "metadata.sqlite"), { synchronous: "normal" });
  },
  async cleanup() {
    if (dir) await rm(dir, { recursive: true, force: true });
  },
});
