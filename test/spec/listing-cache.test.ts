import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SqliteMetadataStore } from "../../src/metadata/sqlite/sqlite-metadata-store.js";
import { pushImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

async function tags(registry: TestRegistry, repository: string): Promise<string[]> {
  const response = await fetch(`${registry.url}/v2/${repository}/tags/list`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { tags: string[] }).tags;
}

// Listings are cached in memory; these check the cache never serves a stale page.
describe("Listing Tags: cached pages follow every change", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => {
    await registry.close();
  });

  test("a tag pushed or deleted through the API shows at once", async () => {
    await pushImage(registry.url, "cache/api", "one");
    assert.deepEqual(await tags(registry, "cache/api"), ["one"]);
    await pushImage(registry.url, "cache/api", "two");
    assert.deepEqual(await tags(registry, "cache/api"), ["one", "two"]);
    const removed = await fetch(`${registry.url}/v2/cache/api/manifests/one`, { method: "DELETE" });
    assert.equal(removed.status, 202);
    assert.deepEqual(await tags(registry, "cache/api"), ["two"]);
  });

  test("a change written by another process on the same database shows at once", async () => {
    await pushImage(registry.url, "cache/other", "keep");
    await pushImage(registry.url, "cache/other", "drop");
    assert.deepEqual(await tags(registry, "cache/other"), ["drop", "keep"]);
    // A second connection stands in for a maintenance command run beside the server.
    const other = new SqliteMetadataStore(join(registry.dataDir, "metadata.sqlite"), { synchronous: "full" });
    try {
      assert.equal(await other.deleteTag("cache/other", "drop"), true);
    } finally {
      await other.close();
    }
    assert.deepEqual(await tags(registry, "cache/other"), ["keep"]);
  });
});
