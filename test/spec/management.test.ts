import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { digestOf, errorCodes, pushBlob, pushImage, putManifest } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

async function statusOf(url: string, method = "GET"): Promise<number> {
  const response = await fetch(url, { method });
  await response.arrayBuffer();
  return response.status;
}

async function tagsOf(url: string, repo: string): Promise<string[]> {
  const response = await fetch(`${url}/v2/${repo}/tags/list`);
  assert.equal(response.status, 200);
  return ((await response.json()) as { tags: string[] }).tags;
}

describe("Content Management: deletes enabled", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "manage/enabled";

  before(async () => {
    registry = await startTestRegistry();
    url = registry.url;
  });
  after(async () => {
    await registry.close();
  });

  test("Deleting tags: DELETE of a tag is 202 and removes only the tag", async () => {
    const image = await pushImage(url, repo, "doomed");
    assert.equal((await putManifest(url, repo, "kept", image.manifest)).status, 201);
    const response = await fetch(`${url}/v2/${repo}/manifests/doomed`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/doomed`), 404);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/${image.digest}`), 200);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/kept`), 200);
    assert.deepEqual(await tagsOf(url, repo), ["kept"]);
    // A second delete of the same tag finds nothing.
    const again = await fetch(`${url}/v2/${repo}/manifests/doomed`, { method: "DELETE" });
    assert.equal(again.status, 404);
    assert.deepEqual(await errorCodes(again), ["MANIFEST_UNKNOWN"]);
  });

  test("Deleting Manifests: DELETE by digest is 202, and every tag pointing at it goes too", async () => {
    const image = await pushImage(url, repo, "one");
    assert.equal((await putManifest(url, repo, "two", image.manifest)).status, 201);
    const response = await fetch(`${url}/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/${image.digest}`), 404);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/one`), 404);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/two`, "HEAD"), 404);
    const tags = await tagsOf(url, repo);
    assert.ok(!tags.includes("one") && !tags.includes("two"));
    // Its blobs stay: deleting a manifest does not delete what it references.
    assert.equal(await statusOf(`${url}/v2/${repo}/blobs/${image.layer.digest}`), 200);
    // The same manifest can be pushed again.
    assert.equal((await putManifest(url, repo, "one", image.manifest)).status, 201);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/one`), 200);
  });

  test("Deleting Manifests: a subject with referrers and an index child may be deleted (no 409)", async () => {
    const child = await pushImage(url, repo, "digest");
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [child.descriptor],
      }),
    );
    const put = await putManifest(url, repo, "index", index, "application/vnd.oci.image.index.v1+json");
    assert.equal(put.status, 201);
    const response = await fetch(`${url}/v2/${repo}/manifests/${child.digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/${child.digest}`), 404);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/index`), 200);
  });

  test("Deleting Manifests: an unknown manifest is 404 MANIFEST_UNKNOWN", async () => {
    await pushImage(url, repo, "present");
    const response = await fetch(`${url}/v2/${repo}/manifests/${digestOf("nothing")}`, { method: "DELETE" });
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
    const tag = await fetch(`${url}/v2/${repo}/manifests/absent`, { method: "DELETE" });
    assert.equal(tag.status, 404);
    assert.deepEqual(await errorCodes(tag), ["MANIFEST_UNKNOWN"]);
  });

  test("Deleting Manifests: a repository that does not exist is 404", async () => {
    const response = await fetch(`${url}/v2/manage/nowhere/manifests/${digestOf("x")}`, { method: "DELETE" });
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["NAME_UNKNOWN"]);
  });

  test("Deleting Manifests: a malformed digest is 400 DIGEST_INVALID, an invalid tag 404", async () => {
    const bad = await fetch(`${url}/v2/${repo}/manifests/sha256:nope`, { method: "DELETE" });
    assert.equal(bad.status, 400);
    assert.deepEqual(await errorCodes(bad), ["DIGEST_INVALID"]);
    const invalidTag = await fetch(`${url}/v2/${repo}/manifests/.bad`, { method: "DELETE" });
    assert.equal(invalidTag.status, 404);
    await invalidTag.arrayBuffer();
  });

  test("Deleting Blobs: DELETE is 202, then the blob is 404, and it can be pushed again", async () => {
    const blob = randomBytes(32);
    const digest = await pushBlob(url, repo, blob);
    const response = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal((await response.arrayBuffer()).byteLength, 0);
    const get = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
    assert.equal(get.status, 404);
    assert.deepEqual(await errorCodes(get), ["BLOB_UNKNOWN"]);
    assert.equal(await statusOf(`${url}/v2/${repo}/blobs/${digest}`, "HEAD"), 404);
    await pushBlob(url, repo, blob);
    const again = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
    assert.equal(again.status, 200);
    assert.deepEqual(Buffer.from(await again.arrayBuffer()), blob);
  });

  test("Deleting Blobs: deleting in one repository leaves other repositories' copies", async () => {
    const blob = randomBytes(32);
    const digest = await pushBlob(url, repo, blob);
    await pushBlob(url, "manage/other", blob);
    const response = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal(await statusOf(`${url}/v2/${repo}/blobs/${digest}`), 404);
    const other = await fetch(`${url}/v2/manage/other/blobs/${digest}`);
    assert.equal(other.status, 200);
    assert.deepEqual(Buffer.from(await other.arrayBuffer()), blob);
  });

  test("Deleting Blobs: a blob referenced by a manifest can be deleted (202, not 409)", async () => {
    const image = await pushImage(url, repo, "uses-config");
    const response = await fetch(`${url}/v2/${repo}/blobs/${image.config.digest}`, { method: "DELETE" });
    assert.equal(response.status, 202);
    assert.equal(await statusOf(`${url}/v2/${repo}/blobs/${image.config.digest}`), 404);
  });

  test("Deleting Blobs: an unknown blob is 404 BLOB_UNKNOWN", async () => {
    const response = await fetch(`${url}/v2/${repo}/blobs/${digestOf(randomBytes(8))}`, { method: "DELETE" });
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["BLOB_UNKNOWN"]);
    const nowhere = await fetch(`${url}/v2/manage/nowhere/blobs/${digestOf("x")}`, { method: "DELETE" });
    assert.equal(nowhere.status, 404);
    assert.deepEqual(await errorCodes(nowhere), ["BLOB_UNKNOWN"]);
  });
});

describe("Content Management: deletes disabled", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "manage/disabled";

  before(async () => {
    registry = await startTestRegistry({ deletes: { enabled: false } });
    url = registry.url;
  });
  after(async () => {
    await registry.close();
  });

  test("Content Management: tag, manifest and blob DELETE are 405 UNSUPPORTED and nothing changes", async () => {
    const image = await pushImage(url, repo, "stays");
    const targets = [
      `${url}/v2/${repo}/manifests/stays`,
      `${url}/v2/${repo}/manifests/${image.digest}`,
      `${url}/v2/${repo}/blobs/${image.layer.digest}`,
      `${url}/v2/${repo}/blobs/${digestOf("unknown")}`,
    ];
    for (const target of targets) {
      const response = await fetch(target, { method: "DELETE" });
      assert.equal(response.status, 405, target);
      assert.deepEqual(await errorCodes(response), ["UNSUPPORTED"], target);
    }
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/stays`), 200);
    assert.equal(await statusOf(`${url}/v2/${repo}/manifests/${image.digest}`), 200);
    assert.equal(await statusOf(`${url}/v2/${repo}/blobs/${image.layer.digest}`), 200);
    assert.deepEqual(await tagsOf(url, repo), ["stays"]);
  });

  test("Content Management: cancelling an upload session still works with deletes disabled", async () => {
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    const location = new URL(post.headers.get("location") ?? "", url).toString();
    const cancel = await fetch(location, { method: "DELETE" });
    assert.equal(cancel.status, 204);
    assert.equal(await statusOf(location), 404);
  });
});
