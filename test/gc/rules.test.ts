import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { readdir, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { parseDigest } from "../../src/oci/digest.js";
import {
  descriptorOf,
  digestOf,
  imageIndex,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  types,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { collectorFor } from "./collector.js";

/** Online garbage collection, rule by rule, on SQLite and the filesystem store. */
describe("gc rules", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ gc: { enabled: false } });
  });
  after(async () => {
    await registry?.close();
  });

  const status = async (path: string, method = "GET") =>
    (await fetch(`${registry.url}${path}`, { method })).status;
  const blobFile = (digest: string) =>
    join(registry.dataDir, "blobs", "sha256", digest.slice("sha256:".length));
  const fileExists = (path: string) =>
    stat(path).then(
      () => true,
      () => false,
    );

  /** Pushes an image by digest (untagged) and returns its descriptors. */
  async function untagged(repo: string, extra: Record<string, unknown> = {}) {
    return pushImage(registry.url, repo, "digest", extra);
  }

  test("untagged manifests stay unless the policy says so; then they go with their blobs and bytes", async () => {
    const repo = "rules/untagged";
    const kept = await pushImage(registry.url, repo, "v1");
    const loose = await untagged(repo);
    const off = collectorFor(registry.server, { deleteUntagged: false });
    await off.run();
    assert.equal(await status(`/v2/${repo}/manifests/${loose.digest}`), 200, "kept: policy off");

    const on = collectorFor(registry.server, { deleteUntagged: true });
    const summary = await on.run();
    assert.equal(await status(`/v2/${repo}/manifests/${loose.digest}`), 404);
    assert.equal(await status(`/v2/${repo}/blobs/${loose.layer.digest}`, "HEAD"), 404);
    assert.equal(await fileExists(blobFile(loose.layer.digest)), false, "layer bytes deleted");
    assert.equal(await fileExists(blobFile(loose.digest)), false, "manifest bytes deleted");
    // The tagged image still pulls completely.
    assert.equal(await status(`/v2/${repo}/manifests/v1`), 200);
    assert.equal(await status(`/v2/${repo}/blobs/${kept.layer.digest}`), 200);
    assert.equal(await status(`/v2/${repo}/blobs/${kept.config.digest}`), 200);
    // Every removal is an event with what the webhook feature will need.
    const manifestEvent = on.events.find((e) => e.action === "manifest.deleted" && e.digest === loose.digest);
    assert.deepEqual(manifestEvent, {
      action: "manifest.deleted",
      repository: repo,
      digest: loose.digest,
      mediaType: types.ociManifest,
      size: loose.manifest.length,
      reason: "untagged",
      dryRun: false,
    });
    assert.ok(
      on.events.some(
        (e) => e.action === "blob.unlinked" && e.digest === loose.layer.digest && e.repository === repo,
      ),
    );
    assert.ok(
      on.events.some((e) => e.action === "blob.deleted" && e.digest === loose.layer.digest && e.size === 64),
    );
    assert.ok(summary.manifests >= 1 && summary.blobs >= 3);
  });

  test("an index keeps its children; an untagged index goes with them", async () => {
    const repo = "rules/index";
    const a = await untagged(repo);
    const b = await untagged(repo);
    const index = imageIndex([a.descriptor, b.descriptor]);
    assert.equal((await putManifest(registry.url, repo, "multi", index, types.ociIndex)).status, 201);
    const gc = collectorFor(registry.server, { deleteUntagged: true });
    await gc.run();
    for (const child of [a, b]) assert.equal(await status(`/v2/${repo}/manifests/${child.digest}`), 200);

    // The same children under an untagged index: all go, the index first, then the children it freed.
    const c = await untagged(repo);
    const looseIndex = imageIndex([c.descriptor]);
    const looseDigest = digestOf(looseIndex);
    assert.equal(
      (await putManifest(registry.url, repo, looseDigest, looseIndex, types.ociIndex)).status,
      201,
    );
    await gc.run();
    assert.equal(await status(`/v2/${repo}/manifests/${looseDigest}`), 404);
    assert.equal(await status(`/v2/${repo}/manifests/${c.digest}`), 404);
    const order = gc.events.filter((e) => e.action === "manifest.deleted").map((e) => e.digest);
    assert.ok(order.indexOf(looseDigest) < order.indexOf(c.digest), "index before child");
    assert.equal(await status(`/v2/${repo}/manifests/multi`), 200, "tagged index untouched");
    for (const child of [a, b]) assert.equal(await status(`/v2/${repo}/blobs/${child.layer.digest}`), 200);
  });

  test("referrers stay with their subject and go once it is gone (configurable)", async () => {
    const repo = "rules/referrers";
    const subject = await pushImage(registry.url, repo, "signed");
    const empty = Buffer.from("{}");
    await pushBlob(registry.url, repo, empty);
    const signatureBytes = randomBytes(32);
    await pushBlob(registry.url, repo, signatureBytes);
    const referrer = imageManifest(
      descriptorOf(types.ociEmpty, empty),
      [descriptorOf("application/octet-stream", signatureBytes)],
      {
        artifactType: "application/vnd.example.signature",
        subject: subject.descriptor,
      },
    );
    const referrerDigest = digestOf(referrer);
    assert.equal((await putManifest(registry.url, repo, referrerDigest, referrer)).status, 201);

    await collectorFor(registry.server, { deleteUntagged: true }).run();
    assert.equal(
      await status(`/v2/${repo}/manifests/${referrerDigest}`),
      200,
      "subject present: kept even untagged",
    );

    assert.equal(await status(`/v2/${repo}/manifests/${subject.digest}`, "DELETE"), 202);
    const keep = collectorFor(registry.server, { deleteUntagged: false, deleteOrphanReferrers: false });
    await keep.run();
    assert.equal(
      await status(`/v2/${repo}/manifests/${referrerDigest}`),
      200,
      "orphan kept when configured so",
    );

    const gc = collectorFor(registry.server, { deleteUntagged: false, deleteOrphanReferrers: true });
    await gc.run();
    assert.equal(await status(`/v2/${repo}/manifests/${referrerDigest}`), 404);
    const event = gc.events.find((e) => e.digest === referrerDigest);
    assert.equal(event?.reason, "orphan-referrer");
    assert.equal(await status(`/v2/${repo}/blobs/${digestOf(signatureBytes)}`, "HEAD"), 404);
  });

  test("a blob no manifest references is unlinked; its bytes go once no repository links it", async () => {
    const bytes = randomBytes(100);
    const digest = await pushBlob(registry.url, "rules/blob-a", bytes);
    const image = await pushImage(registry.url, "rules/blob-b", "v1");
    // The same bytes, referenced by an image in another repository.
    await pushBlob(registry.url, "rules/blob-b", bytes);
    const manifest = imageManifest(image.config, [image.layer, descriptorOf(types.ociLayer, bytes)]);
    assert.equal((await putManifest(registry.url, "rules/blob-b", "v2", manifest)).status, 201);
    const gc = collectorFor(registry.server);
    await gc.run();
    assert.equal(await status(`/v2/rules/blob-a/blobs/${digest}`, "HEAD"), 404, "unlinked in a");
    assert.equal(await status(`/v2/rules/blob-b/blobs/${digest}`), 200, "still served in b");
    assert.equal(await fileExists(blobFile(digest)), true);
    assert.equal(await status(`/v2/rules/blob-b/manifests/${digestOf(manifest)}`, "DELETE"), 202);
    await gc.run();
    assert.equal(await fileExists(blobFile(digest)), false, "bytes deleted with the last reference");
    assert.ok(gc.events.some((e) => e.action === "blob.deleted" && e.digest === digest && e.size === 100));
  });

  test("nothing younger than the grace period goes", async () => {
    const repo = "rules/grace";
    const loose = await untagged(repo);
    const lone = await pushBlob(registry.url, repo, randomBytes(10));
    const gc = collectorFor(registry.server, { graceMs: 60_000, deleteUntagged: true });
    await gc.run();
    assert.equal(gc.events.filter((e) => e.repository === repo).length, 0);
    assert.equal(await status(`/v2/${repo}/manifests/${loose.digest}`), 200);
    assert.equal(await status(`/v2/${repo}/blobs/${lone}`), 200);
  });

  test("bytes no blob row names, upload scratch without a session, idle sessions", async () => {
    const orphan = randomBytes(20);
    const orphanDigest = digestOf(orphan);
    await writeFile(blobFile(orphanDigest), orphan);
    const scratch = join(registry.dataDir, "uploads", randomUUID());
    await writeFile(scratch, "partial");
    const old = new Date(Date.now() - 3600_000);
    await utimes(blobFile(orphanDigest), old, old);
    await utimes(scratch, old, old);
    const idle = await fetch(`${registry.url}/v2/rules/idle/blobs/uploads/`, { method: "POST" });
    assert.equal(idle.status, 202);
    const location = idle.headers.get("location") ?? "";
    const fresh = join(registry.dataDir, "uploads", randomUUID());
    await writeFile(fresh, "just started");

    const gc = collectorFor(registry.server, { graceMs: 60_000, uploadIdleMs: 0 });
    await gc.run();
    assert.equal(await fileExists(blobFile(orphanDigest)), false);
    assert.equal(await fileExists(scratch), false);
    assert.equal(await fileExists(fresh), true, "scratch younger than the grace period stays");
    assert.equal((await fetch(`${registry.url}${location}`)).status, 404, "idle session gone");
    assert.ok(
      gc.events.some(
        (e) => e.action === "blob.deleted" && e.digest === orphanDigest && e.reason === "not-recorded",
      ),
    );
    assert.ok(
      gc.events.some(
        (e) => e.action === "upload.deleted" && e.reason === "idle" && e.repository === "rules/idle",
      ),
    );
    assert.ok(gc.events.some((e) => e.action === "upload.deleted" && e.reason === "no-session"));
  });

  test("a push that meets GC deleting the same digest waits, then publishes the bytes afresh", async () => {
    const { metadata, blobStore } = registry.server.registry.ctx;
    const bytes = randomBytes(77);
    const digest = await pushBlob(registry.url, "rules/tombstone", bytes);
    assert.equal(await status(`/v2/rules/tombstone/blobs/${digest}`, "DELETE"), 202);
    await new Promise((resolve) => setTimeout(resolve, 5));
    // GC's first step, as a pass takes it: the digest tombstoned, its row gone, the bytes still there.
    const now = Date.now();
    assert.deepEqual(await metadata.gcTombstoneBlobs([digest], now, now), [{ digest, size: 77 }]);
    let answered = false;
    const push = fetch(`${registry.url}/v2/rules/tombstone/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      body: Buffer.from(bytes),
    }).then((response) => {
      answered = true;
      return response;
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(answered, false, "the push waits while the tombstone stands");
    // GC's next steps: delete the bytes, clear the tombstone.
    await blobStore.deleteBlob(parseDigest(digest));
    await metadata.gcClearTombstones([digest]);
    assert.equal((await push).status, 201);
    assert.equal(await fileExists(blobFile(digest)), true, "published afresh after GC deleted the old bytes");
    const pulled = await fetch(`${registry.url}/v2/rules/tombstone/blobs/${digest}`);
    assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), bytes);
  });

  test("a dry run reports what would go and how many bytes, and removes nothing", async () => {
    const repo = "rules/dry";
    const loose = await untagged(repo);
    const before = (await readdir(join(registry.dataDir, "blobs", "sha256"))).length;
    const dry = collectorFor(registry.server, { deleteUntagged: true, dryRun: true });
    const summary = await dry.run();
    assert.equal(summary.dryRun, true);
    assert.ok(dry.events.every((e) => e.dryRun));
    assert.ok(dry.events.some((e) => e.action === "manifest.deleted" && e.digest === loose.digest));
    const wouldDelete = dry.events.filter((e) => e.action === "blob.deleted").map((e) => e.digest);
    for (const digest of [loose.digest, loose.layer.digest, loose.config.digest])
      assert.ok(wouldDelete.includes(digest), digest);
    assert.ok(summary.blobBytes >= 64 + loose.manifest.length + loose.config.size);
    assert.equal(await status(`/v2/${repo}/manifests/${loose.digest}`), 200);
    assert.equal((await readdir(join(registry.dataDir, "blobs", "sha256"))).length, before);
  });
});

describe("gc on a schedule", () => {
  test("berth serve collects on its interval and reports each removal to subscribers", async () => {
    // The grace period outlasts the push: a pass between its blobs and its manifest must not unlink them.
    const registry = await startTestRegistry({
      gc: { intervalSeconds: 1, graceSeconds: 3, deleteUntagged: true },
    });
    try {
      const heard: string[] = [];
      registry.server.gc.events.onRemoved((event) => {
        if (event.action === "manifest.deleted" && event.digest) heard.push(event.digest);
      });
      const loose = await pushImage(registry.url, "scheduled/app", "digest");
      const deadline = Date.now() + 30_000;
      while (!heard.includes(loose.digest) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      assert.ok(heard.includes(loose.digest), "a scheduled pass removed the untagged manifest");
      assert.equal((await fetch(`${registry.url}/v2/scheduled/app/manifests/${loose.digest}`)).status, 404);
    } finally {
      await registry.close();
    }
  });
});
