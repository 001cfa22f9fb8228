import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type Descriptor,
  descriptorOf,
  digestOf,
  errorCodes,
  imageIndex,
  imageManifest,
  type PushedImage,
  pushBlob,
  pushImage,
  putManifest,
  types,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const pageSize = 4;

/** The spec's "lexical (case-insensitive)" order, ties broken by the exact bytes. */
function lexical(a: string, b: string): number {
  const [la, lb] = [a.toLowerCase(), b.toLowerCase()];
  if (la !== lb) return la < lb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The target of `Link: <...>; rel="next"`, resolved against the registry, or undefined. */
function nextLink(response: Response, base: string): string | undefined {
  const link = response.headers.get("link");
  if (link === null) return undefined;
  const match = /^<([^>]+)>;\s*rel="next"$/.exec(link);
  assert.ok(match?.[1], `malformed Link header: ${link}`);
  return new URL(match[1], base).toString();
}

interface TagList {
  name: string;
  tags: string[];
}

describe("Content Discovery: listing tags", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "discovery/tags";
  const tags = [
    "b",
    "A",
    "a",
    "B",
    "c10",
    "c9",
    "C1",
    "_x",
    "0",
    "Z",
    "test0",
    "TEST0",
    "tagtest0",
    "x-1",
    "x.1",
  ];
  const sorted = [...tags].sort(lexical);

  async function list(query = "", repository = repo): Promise<{ response: Response; body: TagList }> {
    const response = await fetch(`${url}/v2/${repository}/tags/list${query}`);
    assert.equal(response.status, 200, `tags/list${query}`);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    return { response, body: (await response.json()) as TagList };
  }

  before(async () => {
    registry = await startTestRegistry({ limits: { pageSize: 1000 } });
    url = registry.url;
    const image = await pushImage(url, repo, tags[0] ?? "");
    for (const tag of tags.slice(1)) {
      const response = await putManifest(url, repo, tag, image.manifest);
      assert.equal(response.status, 201);
    }
  });
  after(async () => {
    await registry.close();
  });

  test("Listing Tags: all tags in lexical order, case-insensitive with a byte tie-break", async () => {
    const { response, body } = await list();
    assert.deepEqual(body, { name: repo, tags: sorted });
    assert.equal(response.headers.get("link"), null);
  });

  test("Listing Tags: n returns exactly n tags from the start, with a Link to the rest", async () => {
    const { response, body } = await list("?n=5");
    assert.deepEqual(body.tags, sorted.slice(0, 5));
    const next = nextLink(response, url);
    assert.ok(next);
    assert.equal(new URL(next).pathname, `/v2/${repo}/tags/list`);
    assert.equal(new URL(next).searchParams.get("n"), "5");
    assert.equal(new URL(next).searchParams.get("last"), sorted[4]);
  });

  test("Listing Tags: last is exclusive, and n counts from there", async () => {
    const last = sorted[5] ?? "";
    const { body } = await list(`?n=3&last=${last}`);
    assert.deepEqual(body.tags, sorted.slice(6, 9));
    assert.ok(!body.tags.includes(last));
    const withoutN = await list(`?last=${last}`);
    assert.deepEqual(withoutN.body.tags, sorted.slice(6));
  });

  test("Listing Tags: last need not be an existing tag", async () => {
    const { body } = await list("?last=bz");
    assert.deepEqual(
      body.tags,
      sorted.filter((tag) => lexical(tag, "bz") > 0),
    );
  });

  test("Listing Tags: following Link rel=next walks every tag exactly once", async () => {
    const seen: string[] = [];
    let next: string | undefined = `${url}/v2/${repo}/tags/list?n=4`;
    let pages = 0;
    while (next !== undefined) {
      const response: Response = await fetch(next);
      assert.equal(response.status, 200);
      const body = (await response.json()) as TagList;
      assert.ok(body.tags.length <= 4);
      seen.push(...body.tags);
      next = nextLink(response, url);
      pages++;
      assert.ok(pages < 10, "pagination does not end");
    }
    assert.deepEqual(seen, sorted);
    assert.equal(pages, Math.ceil(sorted.length / 4));
  });

  test("Listing Tags: n larger than the number of tags returns them all without Link", async () => {
    const { response, body } = await list("?n=100");
    assert.deepEqual(body.tags, sorted);
    assert.equal(response.headers.get("link"), null);
  });

  test("Listing Tags: n=0 returns an empty list and no Link header", async () => {
    const { response, body } = await list("?n=0");
    assert.deepEqual(body, { name: repo, tags: [] });
    assert.equal(response.headers.get("link"), null);
  });

  test("Listing Tags: an n that is not a non-negative integer is 400", async () => {
    for (const n of ["-1", "abc", "1.5", "1e3"]) {
      const response = await fetch(`${url}/v2/${repo}/tags/list?n=${n}`);
      assert.equal(response.status, 400, n);
      assert.ok((await errorCodes(response)).length > 0);
    }
  });

  test("Listing Tags: a last that is not a tag is 400", async () => {
    const response = await fetch(`${url}/v2/${repo}/tags/list?last=.bad`);
    assert.equal(response.status, 400);
    assert.ok((await errorCodes(response)).length > 0);
  });

  test("Listing Tags: an unknown repository is 404 NAME_UNKNOWN", async () => {
    const response = await fetch(`${url}/v2/discovery/nothing/tags/list`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["NAME_UNKNOWN"]);
    const withN = await fetch(`${url}/v2/discovery/nothing/tags/list?n=0`);
    assert.equal(withN.status, 404);
    assert.deepEqual(await errorCodes(withN), ["NAME_UNKNOWN"]);
  });

  test("Listing Tags: a repository whose tags were all deleted is 200 with an empty list", async () => {
    const other = "discovery/emptied";
    const image = await pushImage(url, other, "only");
    const deleted = await fetch(`${url}/v2/${other}/manifests/${image.digest}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    const { response, body } = await list("", other);
    assert.deepEqual(body, { name: other, tags: [] });
    assert.equal(response.headers.get("link"), null);
  });

  test("Listing Tags: a repository with blobs but no tags is 200 with an empty list", async () => {
    await pushBlob(url, "discovery/blobs-only", "just a blob");
    const { body } = await list("", "discovery/blobs-only");
    assert.deepEqual(body, { name: "discovery/blobs-only", tags: [] });
  });
});

describe("Content Discovery: page size limit and catalog", () => {
  let registry: TestRegistry;
  let url: string;
  const repos = ["cat/c", "cat/a", "cat/b/nested", "cat/a-b", "cat/a.b", "cat/a_b", "cat/z"];

  before(async () => {
    registry = await startTestRegistry({ limits: { pageSize } });
    url = registry.url;
    for (const repo of repos) await pushBlob(url, repo, repo);
    const image = await pushImage(url, "cat/tags", "t0");
    for (let i = 1; i < 10; i++) {
      const response = await putManifest(url, "cat/tags", `t${i}`, image.manifest);
      assert.equal(response.status, 201);
    }
  });
  after(async () => {
    await registry.close();
  });

  test("Listing Tags: without n, at most limits.pageSize tags with a Link to the rest", async () => {
    const response = await fetch(`${url}/v2/cat/tags/tags/list`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as TagList;
    assert.deepEqual(body.tags, ["t0", "t1", "t2", "t3"]);
    const next = nextLink(response, url);
    assert.ok(next);
    assert.equal(new URL(next).searchParams.get("last"), "t3");
  });

  test("Listing Tags: an n above limits.pageSize is clamped, and Link says there is more", async () => {
    const response = await fetch(`${url}/v2/cat/tags/tags/list?n=100`);
    assert.equal(response.status, 200);
    const body = (await response.json()) as TagList;
    assert.equal(body.tags.length, pageSize);
    assert.ok(nextLink(response, url));
  });

  test("Catalog: all repositories in order", async () => {
    const all = [...repos, "cat/tags"].sort();
    const seen: string[] = [];
    let next: string | undefined = `${url}/v2/_catalog`;
    while (next !== undefined) {
      const response: Response = await fetch(next);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
      const body = (await response.json()) as { repositories: string[] };
      assert.ok(body.repositories.length <= pageSize);
      seen.push(...body.repositories);
      next = nextLink(response, url);
    }
    assert.deepEqual(seen, all);
  });

  test("Catalog: n and last page through the repositories with Link", async () => {
    const all = [...repos, "cat/tags"].sort();
    const first = await fetch(`${url}/v2/_catalog?n=2`);
    assert.equal(first.status, 200);
    assert.deepEqual(((await first.json()) as { repositories: string[] }).repositories, all.slice(0, 2));
    const next = nextLink(first, url);
    assert.ok(next);
    assert.equal(new URL(next).searchParams.get("n"), "2");
    assert.equal(new URL(next).searchParams.get("last"), all[1]);
    const second = await fetch(next);
    assert.deepEqual(((await second.json()) as { repositories: string[] }).repositories, all.slice(2, 4));
    const last = await fetch(`${url}/v2/_catalog?last=${all[all.length - 2]}`);
    const lastBody = (await last.json()) as { repositories: string[] };
    assert.deepEqual(lastBody.repositories, all.slice(-1));
    assert.equal(last.headers.get("link"), null);
  });

  test("Catalog: n=0 is an empty list without Link; a bad n is 400", async () => {
    const empty = await fetch(`${url}/v2/_catalog?n=0`);
    assert.equal(empty.status, 200);
    assert.deepEqual(await empty.json(), { repositories: [] });
    assert.equal(empty.headers.get("link"), null);
    const bad = await fetch(`${url}/v2/_catalog?n=x`);
    assert.equal(bad.status, 400);
    assert.ok((await errorCodes(bad)).length > 0);
  });
});

describe("Content Discovery: listing referrers", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "discovery/referrers";
  let subject: PushedImage;
  const expected = new Map<string, Record<string, unknown>>();
  let emptyConfig: Descriptor;

  async function referrers(digest: string, query = "", repository = repo) {
    const response = await fetch(`${url}/v2/${repository}/referrers/${digest}${query}`);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    // "The Content-Type header MUST be set to application/vnd.oci.image.index.v1+json."
    assert.equal(response.headers.get("content-type"), types.ociIndex);
    const body = JSON.parse(text) as {
      schemaVersion: number;
      mediaType: string;
      manifests: Record<string, unknown>[];
    };
    assert.equal(body.schemaVersion, 2);
    assert.equal(body.mediaType, types.ociIndex);
    assert.ok(Array.isArray(body.manifests));
    return { response, body };
  }

  /** Pushes a referrer by digest, checks OCI-Subject, and records the descriptor the API must list. */
  async function pushReferrer(
    body: Buffer,
    mediaType: string,
    listed: Record<string, unknown>,
    repository = repo,
  ) {
    const digest = digestOf(body);
    const response = await putManifest(url, repository, digest, body, mediaType);
    assert.equal(response.status, 201, await response.text());
    assert.equal(response.headers.get("oci-subject"), subject.digest);
    const entry = { mediaType, digest, size: body.length, ...listed };
    if (repository === repo) expected.set(digest, entry);
    return entry;
  }

  before(async () => {
    registry = await startTestRegistry({ limits: { pageSize } });
    url = registry.url;
    subject = await pushImage(url, repo, "subject");
    await pushBlob(url, repo, "{}");
    emptyConfig = descriptorOf(types.ociEmpty, "{}");
    const sbomBytes = Buffer.from('{"sbom":true}');
    await pushBlob(url, repo, sbomBytes);
    const configBytes = Buffer.from("NHL Peanut Butter on my NHL bagel");
    await pushBlob(url, repo, configBytes);

    // An artifact with its own artifactType.
    await pushReferrer(
      imageManifest(emptyConfig, [descriptorOf("application/vnd.example.sbom", sbomBytes)], {
        artifactType: "application/vnd.example.sbom",
        subject: subject.descriptor,
        annotations: {
          "org.example.kind": "sbom",
          "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        },
      }),
      types.ociManifest,
      {
        artifactType: "application/vnd.example.sbom",
        annotations: {
          "org.example.kind": "sbom",
          "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        },
      },
    );
    // No artifactType: the config's mediaType stands in.
    await pushReferrer(
      imageManifest(descriptorOf("application/vnd.nhl.peanut.butter.bagel", configBytes), [emptyConfig], {
        subject: subject.descriptor,
        annotations: { "org.opencontainers.conformance.test": "test config a" },
      }),
      types.ociManifest,
      {
        artifactType: "application/vnd.nhl.peanut.butter.bagel",
        annotations: { "org.opencontainers.conformance.test": "test config a" },
      },
    );
    // No annotations at all.
    await pushReferrer(
      imageManifest(emptyConfig, [], {
        artifactType: "application/vnd.example.signature",
        subject: subject.descriptor,
      }),
      types.ociManifest,
      { artifactType: "application/vnd.example.signature" },
    );
    // An index without artifactType: the descriptor omits it.
    await pushReferrer(
      imageIndex([subject.descriptor], {
        subject: subject.descriptor,
        annotations: { "org.example.index": "plain" },
      }),
      types.ociIndex,
      { annotations: { "org.example.index": "plain" } },
    );
    // An index with an artifactType keeps it.
    await pushReferrer(
      imageIndex([], {
        artifactType: "application/vnd.food.stand",
        subject: subject.descriptor,
        annotations: { "org.opencontainers.conformance.test": "test index" },
      }),
      types.ociIndex,
      {
        artifactType: "application/vnd.food.stand",
        annotations: { "org.opencontainers.conformance.test": "test index" },
      },
    );
  });
  after(async () => {
    await registry.close();
  });

  test("Listing Referrers: an unknown digest is 200 with an empty image index", async () => {
    const { body, response } = await referrers(digestOf("hello world"));
    assert.deepEqual(body, { schemaVersion: 2, mediaType: types.ociIndex, manifests: [] });
    assert.equal(response.headers.get("link"), null);
  });

  test("Listing Referrers: an unknown repository is 200 with an empty image index, never 404", async () => {
    const { body } = await referrers(subject.digest, "", "discovery/no-such-repo");
    assert.deepEqual(body.manifests, []);
  });

  test("Listing Referrers: lists every referrer with mediaType, size, artifactType and annotations", async () => {
    // pageSize is 4 and there are 5 referrers: allReferrers follows Link for the rest.
    const all = await allReferrers(subject.digest);
    const byDigest = new Map(all.map((entry) => [entry.digest as string, entry]));
    assert.equal(byDigest.size, all.length, "no referrer listed twice");
    assert.deepEqual(byDigest, expected);
  });

  test("Listing Referrers: an index referrer without artifactType omits the field", async () => {
    const all = await allReferrers(subject.digest);
    const index = all.find(
      (entry) =>
        entry.mediaType === types.ociIndex &&
        entry.annotations !== undefined &&
        "org.example.index" in (entry.annotations as object),
    );
    assert.ok(index);
    assert.ok(!("artifactType" in index));
  });

  test("Listing Referrers: annotations are copied verbatim and nothing is added", async () => {
    const all = await allReferrers(subject.digest);
    const config = all.find((entry) => entry.artifactType === "application/vnd.nhl.peanut.butter.bagel");
    assert.ok(config);
    assert.deepEqual(Object.keys(config.annotations as object), ["org.opencontainers.conformance.test"]);
    const bare = all.find((entry) => entry.artifactType === "application/vnd.example.signature");
    assert.ok(bare);
    assert.ok(!("annotations" in bare));
  });

  test("Listing Referrers: an artifactType filter is applied and announced with OCI-Filters-Applied", async () => {
    for (const artifactType of [
      "application/vnd.nhl.peanut.butter.bagel",
      "application/vnd.example.sbom",
      "application/vnd.food.stand",
    ]) {
      const { body, response } = await referrers(subject.digest, `?artifactType=${artifactType}`);
      assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
      const want = [...expected.values()].filter((entry) => entry.artifactType === artifactType);
      assert.equal(want.length, 1);
      assert.deepEqual(body.manifests, want);
    }
  });

  test("Listing Referrers: a filter that matches nothing is an empty list, still with OCI-Filters-Applied", async () => {
    const { body, response } = await referrers(subject.digest, "?artifactType=application/vnd.none");
    assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
    assert.deepEqual(body.manifests, []);
  });

  test("Listing Referrers: without a filter there is no OCI-Filters-Applied header", async () => {
    const { response } = await referrers(subject.digest);
    assert.equal(response.headers.get("oci-filters-applied"), null);
  });

  test("Listing Referrers: an invalid digest is 400 DIGEST_INVALID", async () => {
    for (const bad of ["sha256:abc", "latest", `sha256:${"A".repeat(64)}`]) {
      const response = await fetch(`${url}/v2/${repo}/referrers/${bad}`);
      assert.equal(response.status, 400, bad);
      assert.deepEqual(await errorCodes(response), ["DIGEST_INVALID"], bad);
    }
  });

  test("Listing Referrers: referrers in another repository are not listed", async () => {
    const other = "discovery/referrers-other";
    await pushBlob(url, other, "{}");
    const body = imageManifest(emptyConfig, [], {
      artifactType: "application/vnd.example.elsewhere",
      subject: subject.descriptor,
    });
    await pushReferrer(body, types.ociManifest, {}, other);
    const here = await allReferrers(subject.digest);
    assert.ok(!here.some((entry) => entry.digest === digestOf(body)));
    const there = await referrers(subject.digest, "", other);
    assert.deepEqual(
      there.body.manifests.map((entry) => entry.digest),
      [digestOf(body)],
    );
  });

  test("Listing Referrers: more referrers than limits.pageSize are paged with Link, each once", async () => {
    const target = await pushImage(url, repo, "paged");
    const pushed = new Set<string>();
    for (let i = 0; i < pageSize * 2 + 1; i++) {
      const body = imageManifest(emptyConfig, [], {
        artifactType: i % 2 === 0 ? "application/vnd.example.even" : "application/vnd.example.odd",
        subject: target.descriptor,
        annotations: { i: String(i) },
      });
      const response = await putManifest(url, repo, digestOf(body), body);
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("oci-subject"), target.digest);
      pushed.add(digestOf(body));
    }
    const first = await referrers(target.digest);
    assert.equal(first.body.manifests.length, pageSize);
    assert.ok(nextLink(first.response, url), "a full page has a Link");
    const all = await allReferrers(target.digest);
    assert.equal(all.length, pushed.size);
    assert.deepEqual(new Set(all.map((entry) => entry.digest)), pushed);

    const even = await allReferrers(target.digest, "?artifactType=application/vnd.example.even");
    assert.equal(even.length, pageSize + 1);
    assert.ok(even.every((entry) => entry.artifactType === "application/vnd.example.even"));
  });

  test("Listing Referrers: a deleted referrer is no longer listed", async () => {
    const target = await pushImage(url, repo, "deleted-referrer");
    const body = imageManifest(emptyConfig, [], {
      artifactType: "application/vnd.example.gone",
      subject: target.descriptor,
    });
    const response = await putManifest(url, repo, digestOf(body), body);
    assert.equal(response.status, 201);
    assert.equal((await allReferrers(target.digest)).length, 1);
    const deleted = await fetch(`${url}/v2/${repo}/manifests/${digestOf(body)}`, { method: "DELETE" });
    assert.equal(deleted.status, 202);
    assert.deepEqual(await allReferrers(target.digest), []);
  });

  /** Every page of the referrers list, following Link; checks the filter header on each page. */
  async function allReferrers(digest: string, query = ""): Promise<Record<string, unknown>[]> {
    const all: Record<string, unknown>[] = [];
    let next: string | undefined = `${url}/v2/${repo}/referrers/${digest}${query}`;
    let pages = 0;
    while (next !== undefined) {
      const response: Response = await fetch(next);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), types.ociIndex);
      if (query.includes("artifactType"))
        assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
      const body = (await response.json()) as { manifests: Record<string, unknown>[] };
      assert.ok(body.manifests.length <= pageSize);
      all.push(...body.manifests);
      next = nextLink(response, url);
      assert.ok(++pages < 20, "pagination does not end");
    }
    return all;
  }
});
