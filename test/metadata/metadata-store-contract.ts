import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import type { MetadataStore, NewManifest } from "../../src/metadata/metadata-store.js";
import { LimitViolationError } from "../../src/metadata/write-limits.js";
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

    // Area: proxy. A pull-through cache records upstream manifests before their content is fetched.
    test("manifests fetched on demand: recorded and tagged with their references absent", async () => {
      const repository = `proxy/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      const image = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)], {
        referencesFetchedOnDemand: true,
      });
      assert.deepEqual(await store.putManifest(repository, image, "v1"), []);
      assert.equal((await store.getTaggedManifest(repository, "v1"))?.digest, image.digest);
      assert.equal(await store.getRepositoryBlob(repository, digestOf(layer)), undefined);
      // The blob arrives later and is linked as any upload would be.
      await store.recordBlob(repository, digestOf(layer), layer.length);
      assert.deepEqual(await store.getRepositoryBlob(repository, digestOf(layer)), { size: layer.length });
      // Moving the tag to another upstream manifest is one upsert, as for a push.
      const image2 = manifest(`image2-${randomUUID()}`, [reference("layer", `x-${randomUUID()}`, 9)], {
        referencesFetchedOnDemand: true,
      });
      assert.deepEqual(await store.putManifest(repository, image2, "v1"), []);
      assert.equal((await store.getTaggedManifest(repository, "v1"))?.digest, image2.digest);
      assert.equal((await store.getManifest(repository, image.digest))?.digest, image.digest);
      // Without the flag the usual check still applies.
      const pushed = manifest(`pushed-${randomUUID()}`, [reference("layer", `y-${randomUUID()}`, 5)]);
      assert.equal((await store.putManifest(repository, pushed, "v2")).length, 1);
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

    test("searchRepositories: substring filter, byte order, paging, tag counts and last push", async () => {
      const base = `search${randomUUID().slice(0, 8)}`;
      const digest = digestOf(base);
      for (const suffix of ["web-app", "api", "webhooks", "tools/web", "db"])
        await store.recordBlob(`${base}/${suffix}`, digest, 1);
      const image = manifest(`search-image-${randomUUID()}`, []);
      assert.deepEqual(await store.putManifest(`${base}/api`, { ...image, now: 1000 }, "v1"), []);
      assert.deepEqual(await store.putManifest(`${base}/api`, { ...image, now: 5000 }, "v2"), []);

      const web = await store.searchRepositories(`${base}/`, 100, undefined);
      assert.deepEqual(
        web.map((r) => r.name),
        ["api", "db", "tools/web", "web-app", "webhooks"].map((s) => `${base}/${s}`),
      );
      const matching = await store.searchRepositories("web", 10_000, undefined);
      const mine = matching.filter((r) => r.name.startsWith(`${base}/`)).map((r) => r.name);
      assert.deepEqual(mine, [`${base}/tools/web`, `${base}/web-app`, `${base}/webhooks`]);
      assert.ok(
        matching.every((r) => r.name.includes("web")),
        "only names containing the query",
      );
      const page = await store.searchRepositories(`${base}/web`, 1, `${base}/tools/web`);
      assert.deepEqual(
        page.map((r) => r.name),
        [`${base}/web-app`],
      );
      assert.deepEqual(await store.searchRepositories(`${base}/nothing`, 10, undefined), []);
      const api = web.find((r) => r.name === `${base}/api`);
      assert.equal(api?.tagCount, 2);
      assert.equal(api?.updatedAt, 5000, "the latest tag push");
      const db = web.find((r) => r.name === `${base}/db`);
      assert.equal(db?.tagCount, 0);
      assert.ok((db?.updatedAt ?? 0) > 0, "an untagged repository reports when it was created");
      // Characters that are wildcards in LIKE match only themselves.
      assert.deepEqual(await store.searchRepositories(`${base}/w_b`, 10, undefined), []);
      assert.deepEqual(await store.searchRepositories(`${base}/w%`, 10, undefined), []);
    });

    test("listTagDetails: tags in listTags order with manifest, size and push time", async () => {
      const repository = `details/${randomUUID().slice(0, 8)}`;
      const image = manifest(`details-image-${randomUUID()}`, [], { now: 2000 });
      const index = manifest(`details-index-${randomUUID()}`, [], {
        mediaType: "application/vnd.oci.image.index.v1+json",
        artifactType: "application/x.bundle",
        now: 3000,
      });
      assert.deepEqual(await store.putManifest(repository, image, "b"), []);
      assert.deepEqual(await store.putManifest(repository, image, "A"), []);
      assert.deepEqual(await store.putManifest(repository, index, "c"), []);
      const all = await store.listTagDetails(repository, 100, undefined);
      assert.deepEqual(all, [
        {
          name: "A",
          updatedAt: 2000,
          digest: image.digest,
          mediaType: image.mediaType,
          size: image.size,
          artifactType: undefined,
        },
        {
          name: "b",
          updatedAt: 2000,
          digest: image.digest,
          mediaType: image.mediaType,
          size: image.size,
          artifactType: undefined,
        },
        {
          name: "c",
          updatedAt: 3000,
          digest: index.digest,
          mediaType: "application/vnd.oci.image.index.v1+json",
          size: index.size,
          artifactType: "application/x.bundle",
        },
      ]);
      assert.deepEqual(
        (await store.listTagDetails(repository, 1, "A"))?.map((t) => t.name),
        ["b"],
      );
      assert.deepEqual(
        (await store.listTagDetails(repository, 10, undefined))?.map((t) => t.name),
        await store.listTags(repository, 10, undefined),
      );
      assert.equal(
        await store.listTagDetails(`details/none-${randomUUID().slice(0, 8)}`, 10, undefined),
        undefined,
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

    // --- policies: quotas, immutable tags, retention ---
    const violation = (kind: string) => (error: unknown) =>
      error instanceof LimitViolationError && error.violation.kind === kind;

    test("byte quota: a blob past it is neither recorded nor linked, its session stays open", async () => {
      const repository = `quota/${randomUUID().slice(0, 8)}`;
      const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()].map((x) => digestOf(x));
      await store.recordBlobWithin(repository, a as string, 100, undefined, { maxBytes: 150 });
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: 100, tags: 0 });
      const id = randomUUID();
      await store.createUploadSession({ id, repository, hashAlgorithm: "sha256", now: Date.now() }, 1000);
      await assert.rejects(
        store.recordBlobWithin(repository, b as string, 60, id, { maxBytes: 150 }),
        (error: unknown) =>
          error instanceof LimitViolationError &&
          error.violation.kind === "bytes" &&
          error.violation.usedBytes === 100 &&
          error.violation.addedBytes === 60,
      );
      assert.equal(await store.getRepositoryBlob(repository, b as string), undefined);
      assert.ok(await store.getUploadSession(id), "a refused commit leaves the session to its caller");
      assert.equal(await store.linkBlob(repository, b as string), false, "the refused blob was not recorded");
      await store.recordBlobWithin(repository, a as string, 100, id, { maxBytes: 100 });
      assert.equal(await store.getUploadSession(id), undefined, "a blob already linked adds nothing");
      await store.recordBlobWithin(repository, b as string, 50, undefined, { maxBytes: 150 });
      assert.equal((await store.repositoryUsage(repository)).bytes, 150, "exactly at the quota is allowed");

      // Mounts count the same way.
      const other = `quota/${randomUUID().slice(0, 8)}`;
      await store.recordBlob(other, c as string, 60);
      await assert.rejects(
        store.linkBlobWithin(repository, c as string, { maxBytes: 200 }),
        violation("bytes"),
      );
      assert.equal(await store.getRepositoryBlob(repository, c as string), undefined);
      assert.equal(await store.linkBlobWithin(repository, c as string, { maxBytes: 210 }), true);
      assert.equal(await store.linkBlobWithin(repository, digestOf(randomUUID()), { maxBytes: 1 }), false);
      assert.deepEqual(await store.repositoryUsage(`quota/unknown-${randomUUID().slice(0, 8)}`), {
        bytes: 0,
        tags: 0,
      });
    });

    test("byte quota holds under a burst of concurrent commits", async () => {
      const repository = `quota-burst/${randomUUID().slice(0, 8)}`;
      const results = await Promise.allSettled(
        Array.from({ length: 12 }, () =>
          store.recordBlobWithin(repository, digestOf(randomUUID()), 10, undefined, { maxBytes: 35 }),
        ),
      );
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 3);
      assert.ok(results.every((r) => r.status === "fulfilled" || violation("bytes")(r.reason)));
      assert.equal((await store.repositoryUsage(repository)).bytes, 30);
    });

    test("immutable tags and tag quota: refused pushes write nothing; concurrent first pushes", async () => {
      const repository = `immutable/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length);
      const first = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      const second = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      assert.deepEqual(await store.putManifestWithin(repository, first, "v1", { immutableTag: true }), []);
      await assert.rejects(
        store.putManifestWithin(repository, second, "v1", { immutableTag: true }),
        (error: unknown) =>
          error instanceof LimitViolationError &&
          error.violation.kind === "immutable-tag" &&
          error.violation.currentDigest === first.digest,
      );
      assert.equal((await store.getTaggedManifest(repository, "v1"))?.digest, first.digest);
      assert.equal(await store.getManifest(repository, second.digest), undefined, "nothing written");
      assert.deepEqual(
        await store.putManifestWithin(repository, first, "v1", { immutableTag: true }),
        [],
        "the same digest again is fine",
      );
      assert.deepEqual(
        (await store.putManifestWithin(repository, second, "v2", { immutableTag: true, maxTags: 2 })).length,
        0,
      );
      await assert.rejects(
        store.putManifestWithin(repository, first, "v3", { maxTags: 2 }),
        violation("tags"),
      );
      assert.deepEqual(await store.listTags(repository, 10, undefined), ["v1", "v2"]);
      assert.deepEqual(await store.putManifestWithin(repository, second, "v1", { maxTags: 2 }), [], "moves");
      const usage = await store.repositoryUsage(repository);
      assert.deepEqual(usage, { bytes: layer.length + first.size + second.size, tags: 2 });
      const third = manifest(`image-${randomUUID()}`, []);
      await assert.rejects(
        store.putManifestWithin(repository, third, undefined, { maxBytes: usage.bytes + third.size - 1 }),
        violation("bytes"),
      );
      assert.equal(await store.getManifest(repository, third.digest), undefined);
      const missingLayer = manifest(`image-${randomUUID()}`, [reference("layer", `nope-${randomUUID()}`, 3)]);
      assert.equal(
        (await store.putManifestWithin(repository, missingLayer, "v9", { maxTags: 99 })).length,
        1,
      );

      // Two first pushes of one immutable tag at once: exactly one wins, in a new repository too.
      for (const fresh of [true, false]) {
        const racing = fresh ? `immutable-race/${randomUUID().slice(0, 8)}` : repository;
        const images = Array.from({ length: 4 }, () => manifest(`image-${randomUUID()}`, []));
        const results = await Promise.allSettled(
          images.map((image) => store.putManifestWithin(racing, image, "release", { immutableTag: true })),
        );
        const winners = images.filter((_, i) => results[i]?.status === "fulfilled");
        assert.equal(winners.length, 1, `one winner (${fresh ? "new" : "existing"} repository)`);
        assert.ok(results.every((r) => r.status === "fulfilled" || violation("immutable-tag")(r.reason)));
        assert.equal((await store.getTaggedManifest(racing, "release"))?.digest, winners[0]?.digest);
      }

      // A burst of new tags never overshoots the tag quota.
      const burst = `tag-burst/${randomUUID().slice(0, 8)}`;
      const image = manifest(`image-${randomUUID()}`, []);
      const tagged = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => store.putManifestWithin(burst, image, `t${i}`, { maxTags: 3 })),
      );
      assert.equal(tagged.filter((r) => r.status === "fulfilled").length, 3);
      assert.equal((await store.listTags(burst, 100, undefined))?.length, 3);
    });

    test("manifest delete refused while a protected tag points at it", async () => {
      const repository = `protect/${randomUUID().slice(0, 8)}`;
      const image = manifest(`image-${randomUUID()}`, []);
      await store.putManifest(repository, image, "v1");
      await store.putManifest(repository, image, "dev");
      await assert.rejects(
        store.deleteManifestUnlessTagged(repository, image.digest, (tag) => tag.startsWith("v")),
        (error: unknown) =>
          error instanceof LimitViolationError &&
          error.violation.kind === "immutable-tag" &&
          error.violation.tag === "v1",
      );
      assert.equal(
        (await store.getTaggedManifest(repository, "dev"))?.digest,
        image.digest,
        "nothing deleted",
      );
      assert.equal(
        await store.deleteManifestUnlessTagged(repository, image.digest, (tag) => tag === "x"),
        true,
      );
      assert.equal(await store.getManifest(repository, image.digest), undefined);
      assert.deepEqual(await store.listTags(repository, 10, undefined), []);
      assert.equal(await store.deleteManifestUnlessTagged(repository, image.digest, () => false), false);
      assert.equal(
        await store.deleteManifestUnlessTagged("protect/unknown", image.digest, () => false),
        false,
      );
    });

    test("repository usage follows every write: links, unlinks, manifests, tags, deletes", async () => {
      const repository = `usage/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      const spare = `spare-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length);
      await store.recordBlob(repository, digestOf(spare), spare.length);
      await store.recordBlob(repository, digestOf(spare), spare.length);
      let expected = layer.length + spare.length;
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: expected, tags: 0 });
      const image = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      await store.putManifest(repository, image, "a");
      await store.putManifest(repository, image, "b");
      await store.putManifest(repository, image, "a");
      expected += image.size;
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: expected, tags: 2 });
      // The manifest uploaded as a blob too (some clients do) still counts once, however it goes.
      await store.recordBlob(repository, image.digest, image.size);
      assert.equal((await store.repositoryUsage(repository)).bytes, expected);
      assert.equal(await store.unlinkBlob(repository, digestOf(spare)), true);
      expected -= spare.length;
      assert.equal(await store.deleteTag(repository, "b"), true);
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: expected, tags: 1 });
      assert.equal(await store.deleteManifest(repository, image.digest), true);
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: expected, tags: 0 }, "still linked");
      assert.equal(await store.unlinkBlob(repository, image.digest), true);
      expected -= image.size;
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: expected, tags: 0 });
      const other = manifest(`image-${randomUUID()}`, []);
      await store.putManifest(repository, other, "c");
      await store.deleteManifestUnlessTagged(repository, other.digest, () => false);
      assert.equal(await store.unlinkBlob(repository, digestOf(layer)), true);
      assert.deepEqual(await store.repositoryUsage(repository), { bytes: 0, tags: 0 });
    });

    test("tag records and compare-and-delete for retention", async () => {
      const repository = `retain/${randomUUID().slice(0, 8)}`;
      const one = manifest(`image-${randomUUID()}`, [], { now: 1000 });
      const two = manifest(`image-${randomUUID()}`, [], { now: 2000 });
      await store.putManifest(repository, one, "a");
      await store.putManifest(repository, two, "b");
      const records = (await store.listTagRecords(repository))?.sort((x, y) => (x.name < y.name ? -1 : 1));
      assert.deepEqual(records, [
        { name: "a", digest: one.digest, updatedAt: 1000 },
        { name: "b", digest: two.digest, updatedAt: 2000 },
      ]);
      assert.equal(await store.listTagRecords(`retain/unknown-${randomUUID().slice(0, 8)}`), undefined);
      assert.equal(
        await store.deleteTagIfUnchanged(repository, "a", two.digest, 1000),
        false,
        "other digest",
      );
      assert.equal(await store.deleteTagIfUnchanged(repository, "a", one.digest, 999), false, "pushed again");
      assert.equal(await store.deleteTagIfUnchanged(repository, "a", one.digest, 1000), true);
      assert.equal(await store.deleteTagIfUnchanged(repository, "a", one.digest, 1000), false);
      assert.deepEqual(await store.listTags(repository, 10, undefined), ["b"]);
      assert.ok(await store.getManifest(repository, one.digest), "the manifest stays");
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

    // observe: the notification outbox.
    function outboxEvent(endpoint: string, label: string, createdAt = Date.now()) {
      return { endpoint, payload: JSON.stringify({ label }), createdAt };
    }
    const labels = (events: { payload: string }[]) =>
      events.map((e) => (JSON.parse(e.payload) as { label: string }).label);

    test("outbox: garbage collection writes the events of its removals in the removing transaction", async () => {
      const endpoint = `ep-${randomUUID()}`;
      const repository = `gc-events/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length);
      const image = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      assert.deepEqual(await store.putManifest(repository, image, "v1"), []);
      const rules = { before: Date.now() + 1000, untagged: true, orphanReferrers: true };
      const manifestEvents = (deleted: { digest: string }[]) =>
        deleted.map((m) => outboxEvent(endpoint, `manifest ${m.digest}`));
      const linkEvents = (unlinked: { digest: string }[]) =>
        unlinked.map((b) => outboxEvent(endpoint, `link ${b.digest}`));

      // Nothing removed (tagged, still referenced): no events either.
      assert.deepEqual(await store.gcDeleteManifests(repository, [image.digest], rules, manifestEvents), []);
      assert.deepEqual(
        await store.gcUnlinkBlobs(repository, [digestOf(layer)], rules.before, linkEvents),
        [],
      );
      assert.deepEqual(await store.claimEvents(endpoint, 10, Date.now(), 1000), []);

      assert.equal(await store.deleteTag(repository, "v1"), true);
      assert.equal(
        (await store.gcDeleteManifests(repository, [image.digest], rules, manifestEvents)).length,
        1,
      );
      assert.equal(
        (await store.gcUnlinkBlobs(repository, [digestOf(layer)], rules.before, linkEvents)).length,
        1,
      );
      assert.deepEqual(labels(await store.claimEvents(endpoint, 10, Date.now(), 1000)), [
        `manifest ${image.digest}`,
        `link ${digestOf(layer)}`,
      ]);
    });

    test("outbox: events are written with their change, and only when the change happens", async () => {
      const endpoint = `ep-${randomUUID()}`;
      const now = Date.now();
      const repository = `outbox/${randomUUID().slice(0, 8)}`;
      const layer = `layer-${randomUUID()}`;
      await store.recordBlob(repository, digestOf(layer), layer.length, undefined, [
        outboxEvent(endpoint, "blob"),
      ]);
      const orphan = manifest(`orphan-${randomUUID()}`, [reference("layer", `absent-${randomUUID()}`, 3)]);
      assert.equal(
        (await store.putManifest(repository, orphan, "x", [outboxEvent(endpoint, "refused")])).length,
        1,
      );
      const image = manifest(`image-${randomUUID()}`, [reference("layer", layer, layer.length)]);
      assert.deepEqual(
        await store.putManifest(repository, image, "v1", [outboxEvent(endpoint, "manifest")]),
        [],
      );
      assert.equal(await store.deleteTag(repository, "absent", [outboxEvent(endpoint, "no-tag")]), false);
      assert.equal(await store.deleteTag(repository, "v1", [outboxEvent(endpoint, "tag")]), true);
      assert.equal(
        await store.deleteManifest(repository, digestOf("absent"), [outboxEvent(endpoint, "no-manifest")]),
        false,
      );
      assert.equal(
        await store.deleteManifest(repository, image.digest, [outboxEvent(endpoint, "deleted")]),
        true,
      );
      assert.equal(
        await store.unlinkBlob(repository, digestOf("absent"), [outboxEvent(endpoint, "no-blob")]),
        false,
      );
      assert.equal(
        await store.unlinkBlob(repository, digestOf(layer), [outboxEvent(endpoint, "unlinked")]),
        true,
      );
      await store.appendEvents([outboxEvent(endpoint, "pull")]);
      const claimed = await store.claimEvents(endpoint, 100, now + 1000, 60_000);
      assert.deepEqual(labels(claimed), ["blob", "manifest", "tag", "deleted", "unlinked", "pull"]);
      assert.ok(claimed.every((e) => e.endpoint === endpoint && e.attempts === 0));
      assert.deepEqual(await store.claimEvents(`other-${endpoint}`, 100, now + 1000, 60_000), []);
    });

    test("outbox: a claim leases events; ack removes them, retry delays them and counts the attempt", async () => {
      const endpoint = `ep-${randomUUID()}`;
      const now = Date.now();
      await store.appendEvents(["a", "b", "c"].map((label) => outboxEvent(endpoint, label, now)));
      const first = await store.claimEvents(endpoint, 2, now, 10_000);
      assert.deepEqual(labels(first), ["a", "b"]);
      assert.deepEqual(
        labels(await store.claimEvents(endpoint, 10, now, 10_000)),
        ["c"],
        "leased ones are skipped",
      );
      assert.deepEqual(await store.claimEvents(endpoint, 10, now + 5_000, 10_000), []);
      // A worker that died: its lease runs out and the events are due again.
      const again = await store.claimEvents(endpoint, 10, now + 10_001, 10_000);
      assert.deepEqual(labels(again), ["a", "b", "c"]);
      await store.ackEvents([again[0]?.id as number]);
      await store.retryEvents([again[1]?.id as number, again[2]?.id as number], now + 60_000);
      assert.deepEqual(await store.claimEvents(endpoint, 10, now + 59_999, 10_000), []);
      const retried = await store.claimEvents(endpoint, 10, now + 60_000, 10_000);
      assert.deepEqual(labels(retried), ["b", "c"]);
      assert.deepEqual(
        retried.map((e) => e.attempts),
        [1, 1],
      );
      await store.ackEvents(retried.map((e) => e.id));
      assert.deepEqual(await store.claimEvents(endpoint, 10, now + 1_000_000, 10_000), []);
    });

    test("outbox: trimming keeps the newest events of one endpoint", async () => {
      const endpoint = `ep-${randomUUID()}`;
      const other = `ep-${randomUUID()}`;
      const now = Date.now();
      await store.appendEvents(Array.from({ length: 10 }, (_, i) => outboxEvent(endpoint, `e${i}`, now)));
      await store.appendEvents([outboxEvent(other, "kept", now)]);
      assert.equal(await store.trimEvents(endpoint, 4), 6);
      assert.equal(await store.trimEvents(endpoint, 4), 0);
      assert.deepEqual(labels(await store.claimEvents(endpoint, 100, now, 1000)), ["e6", "e7", "e8", "e9"]);
      assert.deepEqual(labels(await store.claimEvents(other, 100, now, 1000)), ["kept"]);
    });

    test("outbox: instances claiming at once never get the same event", {
      skip: fixture.openAnother ? false : "single-process engine",
    }, async () => {
      const other = await (fixture.openAnother as () => Promise<MetadataStore>)();
      try {
        const endpoint = `ep-${randomUUID()}`;
        const now = Date.now();
        await store.appendEvents(Array.from({ length: 200 }, (_, i) => outboxEvent(endpoint, `e${i}`, now)));
        const claims = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            (i % 2 ? store : other).claimEvents(endpoint, 15, now, 60_000),
          ),
        );
        const ids = claims.flat().map((e) => e.id);
        assert.equal(new Set(ids).size, ids.length, "an event was claimed twice");
        assert.equal(ids.length, 200);
      } finally {
        await other.close();
      }
    });
  });
}
