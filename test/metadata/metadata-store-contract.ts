import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { MetadataStore, NewManifest } from "../../src/metadata/metadata-store.js";
import { parseDigest } from "../../src/oci/digest.js";
import type { ManifestReference } from "../../src/oci/manifest.js";
import { digestOf } from "../helpers/oci.js";

export interface MetadataStoreFixture {
  /** Opens a store on fresh, empty metadata. Called once per suite. */
  open(): Promise<MetadataStore>;
  /** Opens a second store on the same metadata (another instance), when the engine allows it. */
  openAnother?(): Promise<MetadataStore>;
  /** Removes what `open` created, after the stores are closed. */
  cleanup(): Promise<void>;
  /** Whether changeToken may be cached across calls (SQLite) or must be undefined (shared engines). */
  cachesListings: boolean;
}

function reference(kind: ManifestReference["kind"], content: string, size: number): ManifestReference {
  return { kind, digest: parseDigest(digestOf(content)), size };
}

function manifest(
  content: string,
  references: ManifestReference[],
  extra: Partial<NewManifest> = {},
): NewManifest {
  return {
    digest: digestOf(content),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: content.length,
    artifactType: undefined,
    subject: undefined,
    annotations: undefined,
    references,
    now: Date.now(),
    ...extra,
  };
}

/** The behaviour every MetadataStore must share; run against each engine. */
export function metadataStoreContract(
  name: string,
  fixture: MetadataStoreFixture,
  skip: string | false = false,
) {
  describe(`MetadataStore contract: ${name}`, { skip }, () => {
    let store: MetadataStore;
    before(async () => {
      store = await fixture.open();
    });
    after(async () => {
      await store?.close();
      await fixture.cleanup();
    });

    test("blobs: record, link, unlink, sizes and holders", async () => {
      const digest = digestOf(`blob-${randomUUID()}`);
      assert.equal(await store.linkBlob("a/one", digest), false, "unknown blob cannot be linked");
      await store.recordBlob("a/one", digest, 42);
      assert.deepEqual(await store.getRepositoryBlob("a/one", digest), { size: 42 });
      assert.equal(await store.getRepositoryBlob("a/two", digest), undefined);
      assert.equal(await store.linkBlob("a/two", digest), true);
      assert.equal(await store.linkBlob("a/two", digest), true, "linking twice is harmless");
      assert.deepEqual(await store.repositoriesWithBlob(digest, 10), ["a/one", "a/two"]);
      assert.deepEqual(await store.repositoriesWithBlob(digest, 1), ["a/one"]);
      assert.equal(await store.unlinkBlob("a/one", digest), true);
      assert.equal(await store.unlinkBlob("a/one", digest), false);
      assert.equal(await store.unlinkBlob("nowhere", digest), false);
      assert.equal(await store.getRepositoryBlob("a/one", digest), undefined);
      const big = digestOf(`big-${randomUUID()}`);
      await store.recordBlob("a/one", big, 12 * 1024 ** 3);
      assert.deepEqual(
        await store.getRepositoryBlob("a/one", big),
        { size: 12 * 1024 ** 3 },
        "sizes past 2^32",
      );
    });

    test("upload sessions: conditional insert under a burst, compare-and-set advance, idle listing", async () => {
      const repository = `uploads/${randomUUID().slice(0, 8)}`;
      const base = await store.countUploadSessions();
      const limit = base + 5;
      const ids = Array.from({ length: 20 }, () => randomUUID());
      const created = await Promise.all(
        ids.map((id) =>
          store.createUploadSession({ id, repository, hashAlgorithm: "sha256", now: 1000 }, limit),
        ),
      );
      assert.equal(created.filter(Boolean).length, 5, "a burst never overshoots the limit");
      assert.equal(await store.countUploadSessions(), limit);
      const mine = ids.filter((_, i) => created[i]);
      const first = mine[0] as string;
      const session = await store.getUploadSession(first);
      assert.deepEqual(session, {
        id: first,
        repository,
        receivedBytes: 0,
        hashAlgorithm: "sha256",
        startedAt: 1000,
        updatedAt: 1000,
      });
      const racing = await Promise.all([
        store.advanceUploadSession(first, 0, 10, 2000, true),
        store.advanceUploadSession(first, 0, 20, 2000, true),
        store.advanceUploadSession(first, 0, 30, 2000, false),
      ]);
      assert.equal(racing.filter(Boolean).length, 1, "exactly one writer advances from the same offset");
      const advanced = await store.getUploadSession(first);
      assert.ok(advanced && [10, 20, 30].includes(advanced.receivedBytes));
      assert.equal(advanced?.updatedAt, 2000);
      assert.equal(await store.advanceUploadSession(first, 0, 5, 3000, true), false);
      const large = 6 * 1024 ** 3;
      assert.equal(
        await store.advanceUploadSession(first, advanced?.receivedBytes ?? 0, large, 3000, true),
        true,
      );
      assert.equal((await store.getUploadSession(first))?.receivedBytes, large);

      const idle = await store.listIdleUploadSessions(1500, 100);
      assert.deepEqual(
        idle.map((s) => s.id).sort(),
        mine.filter((id) => id !== first).sort(),
        "sessions not touched since before the cutoff",
      );
      for (const id of mine) await store.deleteUploadSession(id);
      assert.equal(await store.getUploadSession(first), undefined);
      assert.equal(await store.countUploadSessions(), base);

      // recordBlob closes the session in the same transaction.
      const id = randomUUID();
      assert.equal(
        await store.createUploadSession({ id, repository, hashAlgorithm: "sha512", now: 5 }, 1000),
        true,
      );
      assert.equal((await store.getUploadSession(id))?.hashAlgorithm, "sha512");
      await store.recordBlob(repository, digestOf(id), 1, id);
      assert.equal(await store.getUploadSession(id), undefined);
    });

    test("manifests: references checked, nothing written when missing, tags and deletes", async () => {
      const repository = `m/${randomUUID().slice(0, 8)}`;
      const config = `config-${randomUUID()}`;
      const layer = `layer-${randomUUID()}`;
      const image = manifest(`image-${randomUUID()}`, [
        reference("config", config, config.length),
        reference("layer", layer, layer.length),
      ]);

      const missing = await store.putManifest(repository, image, "latest");
      assert.deepEqual(
        missing.map((m) => m.kind),
        ["config", "layer"],
      );
      assert.equal(await store.repositoryExists(repository), false, "a refused manifest writes nothing");
      assert.deepEqual(await store.missingReferences(repository, image.references), missing);

      await store.recordBlob(repository, digestOf(config), config.length);
      await store.recordBlob(repository, digestOf(layer), layer.length + 1);
      const wrongSize = await store.putManifest(repository, image, "latest");
      assert.deepEqual(wrongSize, [{ digest: digestOf(layer), kind: "layer", actualSize: layer.length + 1 }]);

      const other = `m/${randomUUID().slice(0, 8)}`;
      await store.recordBlob(other, digestOf(layer), layer.length);
      assert.equal(
        (await store.putManifest(repository, image, "latest")).length,
        1,
        "isolation by repository",
      );

      const layer2 = `layer2-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer2), layer2.length);
      const image2 = manifest(
        `image2-${randomUUID()}`,
        [reference("config", config, config.length), reference("layer", layer2, layer2.length)],
        { annotations: { "org.example": "yes" } },
      );
      assert.deepEqual(await store.putManifest(repository, image2, "latest"), []);
      assert.deepEqual(await store.putManifest(repository, image2, "latest"), [], "idempotent");
      const tagged = await store.getTaggedManifest(repository, "latest");
      assert.equal(tagged?.digest, image2.digest);
      assert.deepEqual(tagged?.annotations, { "org.example": "yes" });
      assert.equal(tagged?.size, image2.size);
      assert.equal(tagged?.createdAt, image2.now);

      // An index referencing a manifest of the repository.
      const index = manifest(`index-${randomUUID()}`, [reference("manifest", `nope-${randomUUID()}`, 3)]);
      assert.equal((await store.putManifest(repository, index, undefined)).length, 1);
      const index2 = {
        ...manifest(`index2-${randomUUID()}`, []),
        references: [{ kind: "manifest" as const, digest: parseDigest(image2.digest), size: image2.size }],
      };
      assert.deepEqual(await store.putManifest(repository, index2, "multi"), []);
      assert.deepEqual(await store.getRepositoryBlob(repository, image2.digest), undefined);

      assert.equal(await store.deleteManifest(repository, image2.digest), true);
      assert.equal(
        await store.getTaggedManifest(repository, "latest"),
        undefined,
        "tags go with the manifest",
      );
      assert.equal(await store.getManifest(repository, image2.digest), undefined);
      assert.equal(await store.deleteManifest(repository, image2.digest), false);
      assert.equal(await store.deleteTag(repository, "multi"), true);
      assert.equal(await store.deleteTag(repository, "multi"), false);
      assert.equal(await store.deleteTag("unknown/repo", "multi"), false);
      assert.equal(await store.deleteManifest("unknown/repo", image2.digest), false);
    });

    test("concurrent manifest pushes referencing a blob being unlinked end consistent", async () => {
      const repository = `race/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length);
      const image = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      const [missing, unlinked] = await Promise.all([
        store.putManifest(repository, image, "t"),
        store.unlinkBlob(repository, digestOf(layer)),
      ]);
      assert.equal(unlinked, true);
      const recorded = await store.getManifest(repository, image.digest);
      assert.equal(recorded !== undefined, missing.length === 0);
    });

    test("tags: case-insensitive order, ties by exact name, paging with last", async () => {
      const repository = `t/${randomUUID().slice(0, 8)}`;
      const image = manifest(`image-${randomUUID()}`, []);
      const names = ["b", "A", "a", "B", "_x", "1.0", "a-b", "a_b", "Z9", "z"];
      for (const name of names) assert.deepEqual(await store.putManifest(repository, image, name), []);
      const expected = [...names].sort((x, y) => {
        const lx = x.toLowerCase();
        const ly = y.toLowerCase();
        if (lx !== ly) return lx < ly ? -1 : 1;
        return x < y ? -1 : x > y ? 1 : 0;
      });
      assert.deepEqual(await store.listTags(repository, 100, undefined), expected);
      const pages: string[] = [];
      let last: string | undefined;
      for (;;) {
        const page = (await store.listTags(repository, 3, last)) ?? [];
        pages.push(...page);
        if (page.length < 3) break;
        last = page[page.length - 1];
      }
      assert.deepEqual(pages, expected);
      assert.equal(await store.listTags(`t/unknown-${randomUUID().slice(0, 8)}`, 10, undefined), undefined);
    });

    test("repositories: byte order, paging", async () => {
      const base = `r${randomUUID().slice(0, 8)}`;
      const digest = digestOf(base);
      for (const suffix of ["b", "a/x", "a", "B", "a-b"])
        await store.recordBlob(`${base}/${suffix}`, digest, 1);
      const all = await store.listRepositories(10_000, undefined);
      const mine = all.filter((r) => r.startsWith(`${base}/`));
      assert.deepEqual(mine, [`${base}/B`, `${base}/a`, `${base}/a-b`, `${base}/a/x`, `${base}/b`]);
      assert.deepEqual(await store.listRepositories(2, `${base}/a`), [`${base}/a-b`, `${base}/a/x`]);
      assert.equal(await store.repositoryExists(`${base}/a`), true);
    });

    test("referrers: by subject, filtered by artifactType, ordered by digest, paged", async () => {
      const repository = `ref/${randomUUID().slice(0, 8)}`;
      const subject = digestOf(`subject-${randomUUID()}`);
      const referrers = Array.from({ length: 5 }, (_, i) =>
        manifest(`referrer-${i}-${randomUUID()}`, [], {
          subject,
          artifactType: i % 2 === 0 ? "application/x.sig" : "application/x.sbom",
        }),
      );
      for (const r of referrers) assert.deepEqual(await store.putManifest(repository, r, undefined), []);
      const digests = referrers.map((r) => r.digest).sort();
      const all = await store.listReferrers(repository, subject, { limit: 100 });
      assert.deepEqual(
        all.map((r) => r.digest),
        digests,
      );
      assert.equal(all[0]?.subject, subject);
      const signatures = await store.listReferrers(repository, subject, {
        artifactType: "application/x.sig",
        limit: 100,
      });
      assert.equal(signatures.length, 3);
      assert.ok(signatures.every((r) => r.artifactType === "application/x.sig"));
      const page = await store.listReferrers(repository, subject, { limit: 2, last: digests[1] });
      assert.deepEqual(
        page.map((r) => r.digest),
        digests.slice(2, 4),
      );
    });

    test("changeToken: cached listings only where the engine can tell", async () => {
      const token = await store.changeToken();
      if (!fixture.cachesListings) {
        assert.equal(token, undefined);
        return;
      }
      assert.equal(typeof token, "string");
      await store.recordBlob("token/repo", digestOf(randomUUID()), 1);
      assert.notEqual(await store.changeToken(), token);
    });

    // gc: garbage collection, scrub and fsck.
    test("gc: a pin and a tombstone of one digest exclude each other", async () => {
      const now = Date.now();
      const pinned = digestOf(`pinned-${randomUUID()}`);
      assert.equal(await store.pinBlob(pinned, now), true);
      assert.deepEqual(
        await store.gcTombstoneBlobs([pinned], now - 1000, now),
        [],
        "pinned within the grace period",
      );
      const loose = digestOf(`loose-${randomUUID()}`);
      await store.recordBlob("gc/pins", loose, 5);
      assert.equal(await store.unlinkBlob("gc/pins", loose), true);
      // Unreferenced but too young for this grace period, then old enough for a shorter one.
      assert.deepEqual(await store.gcTombstoneBlobs([loose], now - 60_000, now), []);
      const later = Date.now() + 10;
      assert.deepEqual(await store.gcTombstoneBlobs([loose], later, later), [{ digest: loose, size: 5 }]);
      assert.equal(await store.pinBlob(loose, later), false, "a push meets the tombstone and waits");
      assert.equal(await store.linkBlob("gc/pins", loose), false, "a mount finds the row gone");
      assert.deepEqual(await store.gcListTombstones(later + 1, 10), [loose]);
      assert.deepEqual(
        await store.gcListTombstones(later, 10),
        [],
        "a running pass's own tombstone is not stale",
      );
      await store.gcClearTombstones([loose]);
      assert.equal(await store.pinBlob(loose, later), true, "cleared: the push publishes afresh");
      assert.deepEqual(await store.gcRecordedBlobs([loose, pinned]), new Set());
      // Bytes no row names (a crash between publish and record) are tombstoned once their pin is old.
      assert.deepEqual(await store.gcTombstoneBlobs([pinned], now + 1, now + 1), [{ digest: pinned }]);
      await store.gcClearTombstones([pinned]);
      assert.equal((await store.gcPrunePins(later + 1)) >= 1, true);
    });

    test("gc: manifests by rule, re-checked in the deleting transaction; links; usage; dangling", async () => {
      const repository = `gc/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length);
      const child = manifest(`child-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      assert.deepEqual(await store.putManifest(repository, child, undefined), []);
      const childDigest = parseDigest(child.digest);
      const index = manifest(
        `index-${randomUUID()}`,
        [{ kind: "manifest", digest: childDigest, size: child.size }],
        {
          mediaType: "application/vnd.oci.image.index.v1+json",
        },
      );
      assert.deepEqual(await store.putManifest(repository, index, "multi"), []);
      const referrer = manifest(`ref-${randomUUID()}`, [], { subject: index.digest });
      assert.deepEqual(await store.putManifest(repository, referrer, undefined), []);
      const rules = { before: Date.now() + 1000, untagged: true, orphanReferrers: true };

      const snapshot = await store.gcRepositorySnapshot(repository);
      assert.equal(snapshot?.manifests.length, 3);
      assert.deepEqual(snapshot?.taggedDigests, [index.digest]);
      assert.equal(await store.gcRepositorySnapshot(`gc/unknown-${randomUUID()}`), undefined);
      // Tagged index, its child, the referrer of a present subject: nothing may go.
      assert.deepEqual(
        await store.gcDeleteManifests(repository, [child.digest, index.digest, referrer.digest], rules),
        [],
      );
      assert.deepEqual(
        await store.gcUnlinkBlobs(repository, [digestOf(layer)], rules.before),
        [],
        "referenced",
      );
      assert.deepEqual(await store.contentUsage(digestOf(layer)), [{ repository, tags: ["multi"] }]);

      // Untagged: the child is listed first, yet goes only after the index that frees it; the referrer is orphaned.
      assert.equal(await store.deleteTag(repository, "multi"), true);
      const deleted = await store.gcDeleteManifests(
        repository,
        [child.digest, referrer.digest, index.digest],
        rules,
      );
      assert.deepEqual(
        deleted.map((d) => [d.digest, d.reason]).sort(),
        [
          [child.digest, "untagged"],
          [index.digest, "untagged"],
          [referrer.digest, "orphan-referrer"],
        ].sort(),
      );
      assert.equal(await store.getManifest(repository, child.digest), undefined);
      assert.deepEqual(
        await store.gcUnlinkBlobs(repository, [digestOf(layer)], Date.now() - 60_000),
        [],
        "too young",
      );
      assert.deepEqual(await store.gcUnlinkBlobs(repository, [digestOf(layer)], rules.before), [
        { digest: digestOf(layer), size: layer.length },
      ]);
      const unreferenced = await store.gcUnreferencedBlobs(rules.before, "", 100_000);
      for (const digest of [digestOf(layer), child.digest, index.digest])
        assert.ok(
          unreferenced.some((b) => b.digest === digest),
          digest,
        );

      // Records for scrub, and nothing dangling in a consistent store.
      const records = await store.listBlobRecords("", 100_000);
      assert.ok(records.some((b) => b.digest === digestOf(layer)));
      const manifests = await store.listManifestRecords(undefined, 100_000);
      assert.ok(
        manifests.every(
          (m, i) =>
            i === 0 ||
            `${manifests[i - 1]?.repository}\0${manifests[i - 1]?.digest}` < `${m.repository}\0${m.digest}`,
        ),
      );
      // Other tests leave links deleted under their manifests (a client may DELETE a referenced blob).
      assert.deepEqual(
        (await store.danglingPointers(1000)).filter((d) => d.repository === repository),
        [],
      );
      assert.equal(await store.unlinkBlob(repository, digestOf(layer)), false, "already unlinked");
      const dangling = manifest(`dangling-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      await store.recordBlob(repository, digestOf(layer), layer.length);
      assert.deepEqual(await store.putManifest(repository, dangling, "d"), []);
      await store.unlinkBlob(repository, digestOf(layer));
      assert.deepEqual(
        (await store.danglingPointers(1000)).filter((d) => d.repository === repository),
        [{ kind: "reference-missing", repository, digest: digestOf(layer), from: dangling.digest }],
      );
    });

    test("another instance sees every write at once", {
      skip: fixture.openAnother ? false : "single-process engine",
    }, async () => {
      const other = await (fixture.openAnother as () => Promise<MetadataStore>)();
      try {
        const repository = `shared/${randomUUID().slice(0, 8)}`;
        const image = manifest(`image-${randomUUID()}`, []);
        await store.putManifest(repository, image, "v1");
        assert.equal((await other.getTaggedManifest(repository, "v1"))?.digest, image.digest);
        const id = randomUUID();
        await other.createUploadSession({ id, repository, hashAlgorithm: "sha256", now: Date.now() }, 1000);
        assert.equal(await store.advanceUploadSession(id, 0, 7, Date.now(), true), true);
        assert.equal((await other.getUploadSession(id))?.receivedBytes, 7);
        await other.ping();
      } finally {
        await other.close();
      }
    });
  });
}
