import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { fsck } from "../../src/gc/fsck.js";
import { planRepository } from "../../src/gc/plan.js";
import {
  descriptorOf,
  digestOf,
  imageIndex,
  imageManifest,
  putManifest,
  randomHex,
  types,
} from "../helpers/oci.js";
import type { TestRegistry } from "../helpers/registry.js";
import { collectorFor } from "./collector.js";

export interface RaceOptions {
  clients: number;
  durationMs: number;
  graceMs: number;
}

interface Acknowledged {
  repository: string;
  tag: string;
}

/**
 * DESIGN.md invariant 6 under load: `clients` clients push images (fresh layers and layers from a shared
 * pool that keeps falling out of use, so GC keeps deleting bytes that are pushed again), move shared tags,
 * push untagged manifests and indexes, tag and untag, while GC runs pass after pass with a short grace
 * period and readers pull. Then every tag a client was told succeeded pulls completely, and after one more
 * grace period and pass nothing unreferenced remains.
 */
export async function raceGcWithPushes(registry: TestRegistry, options: RaceOptions) {
  const url = registry.url;
  const gc = collectorFor(registry.server, { graceMs: options.graceMs, deleteUntagged: true });
  const pool = Array.from({ length: 48 }, () => randomBytes(512));
  const acknowledged = new Map<string, Acknowledged>();
  const deletedTags = new Set<string>();
  const stats = {
    manifests: 0,
    refused: 0,
    unavailable: 0,
    gcPasses: 0,
    removed: 0,
    pulls: 0,
    pinWaits: 0,
    gcMs: 0,
  };
  // A spy, not a stand-in: counts how often a push met a tombstone and had to wait for GC's delete.
  const { metadata: store } = registry.server.registry.ctx;
  const pinBlob = store.pinBlob.bind(store);
  store.pinBlob = async (digest, now) => {
    const pinned = await pinBlob(digest, now);
    if (!pinned) stats.pinWaits++;
    return pinned;
  };
  let running = true;

  const pushBlob = async (repository: string, bytes: Buffer): Promise<boolean> => {
    const response = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${digestOf(bytes)}`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: Buffer.from(bytes),
    });
    await response.arrayBuffer();
    if (response.status === 503) {
      stats.unavailable++;
      return false;
    }
    assert.equal(response.status, 201, `blob push to ${repository}`);
    return true;
  };

  /** A manifest PUT; true when acknowledged, false when refused because GC took a blob in between. */
  const pushManifest = async (repository: string, reference: string, body: Buffer, type: string) => {
    const response = await putManifest(url, repository, reference, body, type);
    const text = await response.text();
    if (response.status === 201) return true;
    assert.ok([400, 404].includes(response.status), `manifest push: ${response.status} ${text}`);
    assert.match(text, /MANIFEST_BLOB_UNKNOWN/);
    stats.refused++;
    return false;
  };

  const client = async (index: number) => {
    const repository = `race/r${index % 4}`;
    let round = 0;
    while (running) {
      round++;
      const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", id: randomHex() }));
      const shared = pool[Math.floor(Math.random() * pool.length)] as Buffer;
      const fresh = randomBytes(256);
      if (
        !(await pushBlob(repository, config)) ||
        !(await pushBlob(repository, shared)) ||
        !(await pushBlob(repository, fresh))
      )
        continue;
      const manifest = imageManifest(descriptorOf(types.ociConfig, config), [
        descriptorOf(types.ociLayer, shared),
        descriptorOf(types.ociLayer, fresh),
      ]);
      const kind = round % 5;
      if (kind === 0) {
        // Untagged: garbage once the grace period has passed.
        if (await pushManifest(repository, digestOf(manifest), manifest, types.ociManifest))
          stats.manifests++;
      } else if (kind === 1) {
        // A child by digest, then a tagged index over it.
        if (!(await pushManifest(repository, digestOf(manifest), manifest, types.ociManifest))) continue;
        const index = imageIndex([descriptorOf(types.ociManifest, manifest)]);
        const tag = `index-${Math.floor(Math.random() * 3)}`;
        if (await pushManifest(repository, tag, index, types.ociIndex)) {
          acknowledged.set(`${repository}:${tag}`, { repository, tag });
          stats.manifests += 2;
        }
      } else if (kind === 2) {
        // A client's own tag, deleted a little later by the same client.
        const tag = `own-${index}-${round}`;
        if (!(await pushManifest(repository, tag, manifest, types.ociManifest))) continue;
        acknowledged.set(`${repository}:${tag}`, { repository, tag });
        stats.manifests++;
        if (round % 2 === 0) {
          const deleted = await fetch(`${url}/v2/${repository}/manifests/${tag}`, { method: "DELETE" });
          assert.equal(deleted.status, 202);
          deletedTags.add(`${repository}:${tag}`);
        }
      } else {
        // Shared tags that clients keep moving: the manifests they leave become untagged garbage.
        const tag = `shared-${Math.floor(Math.random() * 4)}`;
        if (await pushManifest(repository, tag, manifest, types.ociManifest)) {
          acknowledged.set(`${repository}:${tag}`, { repository, tag });
          stats.manifests++;
        }
      }
    }
  };

  const reader = async () => {
    while (running) {
      const tags = [...acknowledged.entries()].filter(
        ([key]) => key.includes(":shared-") || key.includes(":index-"),
      );
      const entry = tags[Math.floor(Math.random() * tags.length)];
      if (!entry) {
        await sleep(10);
        continue;
      }
      // Shared and index tags are never deleted, only moved: they always resolve.
      const response = await fetch(`${url}/v2/${entry[1].repository}/manifests/${entry[1].tag}`, {
        headers: { Accept: `${types.ociManifest}, ${types.ociIndex}` },
      });
      await response.arrayBuffer();
      assert.equal(response.status, 200, `pull ${entry[0]} during the run`);
      stats.pulls++;
    }
  };

  const collect = async () => {
    while (running) {
      const summary = await gc.collector.run();
      stats.gcPasses++;
      stats.removed += summary.manifests + summary.links + summary.blobs;
      stats.gcMs = Math.max(stats.gcMs, summary.durationMs);
      await sleep(10);
    }
  };

  // The first failure stops everyone, so it is reported rather than buried under a timeout.
  const stopOnFailure = (work: Promise<void>) =>
    work.catch((error: unknown) => {
      running = false;
      throw error;
    });
  const workers = [
    ...Array.from({ length: options.clients }, (_, i) => client(i)),
    reader(),
    reader(),
    collect(),
  ].map(stopOnFailure);
  const deadline = setTimeout(() => {
    running = false;
  }, options.durationMs);
  const settled = await Promise.allSettled(workers);
  clearTimeout(deadline);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;

  assert.ok(stats.gcPasses >= 3, `GC ran only ${stats.gcPasses} passes: ${JSON.stringify(stats)}`);
  assert.ok(stats.removed > 0, "GC removed nothing: the race was not exercised");
  assert.ok(
    stats.manifests > options.clients,
    `only ${stats.manifests} manifests pushed: ${JSON.stringify(stats)}`,
  );

  // Every acknowledged tag not deleted by its client pulls completely.
  let pulled = 0;
  for (const [key, { repository, tag }] of acknowledged) {
    if (deletedTags.has(key)) continue;
    await pullCompletely(url, repository, tag);
    pulled++;
  }
  assert.ok(pulled > 0);

  // One more grace period and pass: nothing unreferenced remains, and metadata and store agree.
  await sleep(options.graceMs + 20);
  await gc.run();
  const { metadata, blobStore } = registry.server.registry.ctx;
  const report = await fsck(metadata, blobStore);
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.unreferenced, {
    notRecorded: [],
    unreferencedBlobs: [],
    unreferencedLinks: [],
    orphanUploads: [],
  });
  const now = Date.now();
  for (const repository of await metadata.listRepositories(100, undefined)) {
    const snapshot = await metadata.gcRepositorySnapshot(repository);
    assert.ok(snapshot);
    const plan = planRepository(snapshot, { before: now, untagged: true, orphanReferrers: true });
    assert.deepEqual(plan.manifests, [], `untagged manifests left in ${repository}`);
  }
  return { ...stats, pulled };
}

/** GETs the manifest by tag and every blob and child manifest it names, checking each digest. */
async function pullCompletely(url: string, repository: string, reference: string): Promise<void> {
  const response = await fetch(`${url}/v2/${repository}/manifests/${reference}`, {
    headers: { Accept: `${types.ociManifest}, ${types.ociIndex}` },
  });
  const bytes = Buffer.from(await response.arrayBuffer());
  assert.equal(response.status, 200, `pull ${repository}:${reference}`);
  const manifest = JSON.parse(bytes.toString()) as {
    mediaType: string;
    config?: { digest: string };
    layers?: { digest: string }[];
    manifests?: { digest: string }[];
  };
  if (manifest.manifests) {
    for (const child of manifest.manifests) await pullCompletely(url, repository, child.digest);
    return;
  }
  for (const blob of [manifest.config, ...(manifest.layers ?? [])]) {
    if (!blob) continue;
    const got = await fetch(`${url}/v2/${repository}/blobs/${blob.digest}`);
    const body = Buffer.from(await got.arrayBuffer());
    assert.equal(got.status, 200, `blob ${blob.digest} of ${repository}:${reference}`);
    assert.equal(digestOf(body), blob.digest);
  }
}
