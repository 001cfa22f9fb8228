import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorCodes, pushImage, putManifest, randomHex, types } from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const policies = {
  rules: [
    {
      name: "releases",
      repositories: ["team/*"],
      immutableTags: ["v*", "latest"],
    },
  ],
};

async function deniedMessage(response: Response): Promise<string> {
  assert.equal(response.status, 403);
  const text = await response.text();
  const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
  assert.equal(body.errors[0]?.code, "DENIED", text);
  return body.errors[0]?.message ?? "";
}

/** distribution-spec "Pushing Manifests" with a tag, where the tag is immutable by policy. */
function immutableTagSuite(name: string, extra: () => Record<string, unknown>, skip: string | false) {
  describe(`immutable tags over HTTP (${name})`, { skip }, () => {
    let registry: TestRegistry;
    let url: string;
    before(async () => {
      registry = await startTestRegistry({ policies, ...extra() });
      url = registry.url;
    });
    after(async () => {
      await registry?.close();
    });

    test("moving an immutable tag is DENIED naming the rule; the same digest again and new tags are fine", async () => {
      const repo = `team/app-${randomHex(3)}`;
      const first = await pushImage(url, repo, "v1.0");
      const second = await pushImage(url, repo, "digest");
      const moved = await putManifest(url, repo, "v1.0", second.manifest);
      const message = await deniedMessage(moved);
      assert.match(message, /tag "v1\.0" of repository "team\/app-\w+" is immutable/);
      assert.match(message, /rule "releases", immutableTags "v\*"/);
      assert.match(message, new RegExp(`already points at ${first.digest}`));
      const head = await fetch(`${url}/v2/${repo}/manifests/v1.0`, { method: "HEAD" });
      assert.equal(head.headers.get("docker-content-digest"), first.digest, "the tag did not move");

      assert.equal((await putManifest(url, repo, "v1.0", first.manifest)).status, 201, "same digest again");
      assert.equal((await putManifest(url, repo, "v1.1", second.manifest)).status, 201, "a new tag");
      assert.equal((await putManifest(url, repo, "dev", first.manifest)).status, 201);
      assert.equal((await putManifest(url, repo, "dev", second.manifest)).status, 201, "mutable tags move");
      // Outside the rule's repositories nothing is immutable.
      const elsewhere = `other/app-${randomHex(3)}`;
      await pushImage(url, elsewhere, "v1.0");
      await pushImage(url, elsewhere, "v1.0");
    });

    test("an immutable tag cannot be deleted, nor a manifest it points at; others can", async () => {
      const repo = `team/del-${randomHex(3)}`;
      const image = await pushImage(url, repo, "latest");
      assert.equal((await putManifest(url, repo, "scratch", image.manifest)).status, 201);
      const byTag = await fetch(`${url}/v2/${repo}/manifests/latest`, { method: "DELETE" });
      assert.match(
        await deniedMessage(byTag),
        /tag "latest" of repository .* is immutable .* cannot be deleted/,
      );
      const byDigest = await fetch(`${url}/v2/${repo}/manifests/${image.digest}`, { method: "DELETE" });
      assert.match(await deniedMessage(byDigest), /is tagged "latest", an immutable tag/);
      assert.equal((await fetch(`${url}/v2/${repo}/manifests/latest`, { method: "HEAD" })).status, 200);
      const mutable = await fetch(`${url}/v2/${repo}/manifests/scratch`, { method: "DELETE" });
      assert.equal(mutable.status, 202);

      const untagged = await pushImage(url, repo, "dev");
      const deleted = await fetch(`${url}/v2/${repo}/manifests/${untagged.digest}`, { method: "DELETE" });
      assert.equal(deleted.status, 202, "a manifest with only mutable tags can be deleted");
    });

    test("concurrent first pushes of one immutable tag with different digests: exactly one succeeds", async () => {
      const repo = `team/race-${randomHex(3)}`;
      const images = await Promise.all(Array.from({ length: 6 }, () => pushImage(url, repo, "digest")));
      for (let round = 0; round < 3; round++) {
        const tag = `v${round}`;
        const responses = await Promise.all(
          images.map((image) => putManifest(url, repo, tag, image.manifest)),
        );
        const statuses = responses.map((r) => r.status);
        assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses ${statuses}`);
        assert.equal(statuses.filter((s) => s === 403).length, images.length - 1, `statuses ${statuses}`);
        for (const response of responses)
          if (response.status === 403) assert.deepEqual(await errorCodes(response), ["DENIED"]);
          else await response.arrayBuffer();
        const winner = images[statuses.indexOf(201)];
        const head = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: "HEAD" });
        assert.equal(head.headers.get("docker-content-digest"), winner?.digest);
      }
    });

    test("a push of an index to an immutable tag is checked the same way", async () => {
      const repo = `team/index-${randomHex(3)}`;
      const a = await pushImage(url, repo, "digest");
      const b = await pushImage(url, repo, "digest");
      const index = (image: typeof a) =>
        Buffer.from(
          JSON.stringify({ schemaVersion: 2, mediaType: types.ociIndex, manifests: [image.descriptor] }),
        );
      assert.equal((await putManifest(url, repo, "v2", index(a), types.ociIndex)).status, 201);
      const refused = await putManifest(url, repo, "v2", index(b), types.ociIndex);
      assert.match(await deniedMessage(refused), /is immutable/);
      // A manifest body that is not even valid JSON is still answered as invalid, not as a policy refusal.
      const invalid = await putManifest(url, repo, "v2", "{", types.ociManifest);
      assert.equal(invalid.status, 400);
      await invalid.arrayBuffer();
    });
  });
}

immutableTagSuite("sqlite", () => ({}), false);

let schema: string | undefined;
immutableTagSuite(
  "postgres",
  () => {
    schema = newSchemaName();
    return { metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema } } };
  },
  postgresSkip,
);
after(async () => {
  if (schema) await dropSchema(schema);
});
