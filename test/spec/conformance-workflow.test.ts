import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { digestOf, streamed, types } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/**
 * A replay of the OCI distribution-spec conformance suite v1.1.1 (pull, push, content discovery,
 * content management, in that order, against one repository), per /work/notes/conformance.md: the
 * same fixtures, the same requests (bodies streamed with chunked transfer encoding, as Go's net/http
 * sends them), the same checks, plus the "[later]" checks of newer suite versions.
 */

const namespace = "conformance/ns";
const crossmountNamespace = `conformance-${randomUUID()}`;
const annotationKey = "org.opencontainers.conformance.test";
const typeA = "application/vnd.nhl.peanut.butter.bagel";
const typeB = "application/vnd.nba.strawberry.jam.croissant";
const validCodes = [
  "BLOB_UNKNOWN",
  "BLOB_UPLOAD_INVALID",
  "BLOB_UPLOAD_UNKNOWN",
  "DIGEST_INVALID",
  "MANIFEST_BLOB_UNKNOWN",
  "MANIFEST_INVALID",
  "MANIFEST_UNKNOWN",
  "MANIFEST_UNVERIFIED",
  "NAME_INVALID",
  "NAME_UNKNOWN",
  "SIZE_INVALID",
  "TAG_INVALID",
  "UNAUTHORIZED",
  "DENIED",
  "UNSUPPORTED",
];

/** Go's json.MarshalIndent(v, "", "\t"). */
const tabJson = (value: unknown) => Buffer.from(JSON.stringify(value, null, "\t"));

interface Blob {
  bytes: Buffer;
  digest: string;
}
const blob = (bytes: Buffer): Blob => ({ bytes, digest: digestOf(bytes) });

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [field: string]: unknown;
}

/** Every descriptor the suite emits carries newUnspecifiedField (null when unset). */
function descriptor(mediaType: string, content: Blob, extra: Record<string, unknown> = {}): Descriptor {
  return {
    mediaType,
    digest: content.digest,
    size: content.bytes.length,
    ...extra,
    newUnspecifiedField: null,
  };
}

// Fixtures (setup.go).
const configs = Array.from({ length: 16 }, () =>
  blob(
    tabJson({
      author: randomBytes(8).toString("hex"),
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [] },
    }),
  ),
);
const layer = blob(gzipSync(Buffer.from("conformance layer contents\n")));
const manifests = configs.map((config) =>
  blob(
    tabJson({
      schemaVersion: 2,
      mediaType: types.ociManifest,
      config: {
        mediaType: types.ociConfig,
        digest: config.digest,
        size: config.bytes.length,
        data: config.bytes.toString("base64"),
        newUnspecifiedField: "aGVsbG8gd29ybGQ=",
      },
      layers: [descriptor(types.ociLayer, layer)],
    }),
  ),
);
const config1 = configs[1] as Blob;
const emptyLayerManifest = blob(
  tabJson({
    schemaVersion: 2,
    config: {
      mediaType: types.ociConfig,
      digest: config1.digest,
      size: config1.bytes.length,
      data: config1.bytes.toString("base64"),
      newUnspecifiedField: "aGVsbG8gd29ybGQ=",
    },
    layers: [],
  }),
);
const testBlobA = blob(randomBytes(42));
const testBlobB = blob(randomBytes(42));
const chunk1 = testBlobB.bytes.subarray(0, 22);
const chunk2 = testBlobB.bytes.subarray(22);
const dummyDigest = digestOf("hello world");
const nonexistentManifest = ".INVALID_MANIFEST_NAME";
const emptyJson = blob(Buffer.from("{}"));
const refBlobA = blob(Buffer.from("NHL Peanut Butter on my NHL bagel"));
const refBlobB = blob(Buffer.from("NBA Strawberry Jam on my NBA croissant"));

const m = (i: number) => manifests[i] as Blob;
const subjectOf = (manifest: Blob) => descriptor(types.ociManifest, manifest);

function artifact(fields: {
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject: Blob;
  annotation?: string;
}): Blob {
  return blob(
    tabJson({
      schemaVersion: 2,
      mediaType: types.ociManifest,
      ...(fields.artifactType ? { artifactType: fields.artifactType } : {}),
      config: fields.config,
      layers: fields.layers,
      subject: subjectOf(fields.subject),
      ...(fields.annotation ? { annotations: { [annotationKey]: fields.annotation } } : {}),
    }),
  );
}

const refsManifestAConfigArtifact = artifact({
  config: descriptor(typeA, refBlobA),
  layers: [descriptor(types.ociEmpty, emptyJson)],
  subject: m(4),
  annotation: "test config a",
});
const refsManifestALayerArtifact = artifact({
  artifactType: typeA,
  config: descriptor(types.ociEmpty, emptyJson),
  layers: [descriptor(typeA, refBlobA)],
  subject: m(4),
  annotation: "test layer a",
});
const refsIndexArtifact = blob(
  tabJson({
    schemaVersion: 2,
    mediaType: types.ociIndex,
    artifactType: "application/vnd.food.stand",
    manifests: [
      descriptor(types.ociManifest, refsManifestAConfigArtifact),
      descriptor(types.ociManifest, refsManifestALayerArtifact),
    ],
    subject: subjectOf(m(4)),
    annotations: { [annotationKey]: "test index" },
  }),
);
const refsManifestBConfigArtifact = artifact({
  config: descriptor(typeB, refBlobB),
  layers: [descriptor(types.ociEmpty, emptyJson)],
  subject: m(4),
  annotation: "test config b",
});
const refsManifestBLayerArtifact = artifact({
  artifactType: typeB,
  config: descriptor(types.ociEmpty, emptyJson),
  layers: [descriptor(typeB, refBlobB)],
  subject: m(4),
  annotation: "test layer b",
});
const refsManifestCLayerArtifact = artifact({
  artifactType: typeB,
  config: descriptor(types.ociEmpty, emptyJson),
  layers: [descriptor(typeB, refBlobB)],
  subject: m(3),
});

describe("Conformance workflows (distribution-spec conformance suite v1.1.1 replay)", () => {
  let registry: TestRegistry;

  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => {
    await registry.close();
  });

  /** One request the way reggie sends it: bodies streamed, Location paths resolved against the root URL. */
  function send(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: Buffer,
  ): Promise<Response> {
    if (body === undefined) return fetch(`${registry.url}${path}`, { method, headers });
    // net/http cannot tell the length of reggie's body reader, so it drops a hand-set Content-Length
    // and sends the body chunked.
    const { "Content-Length": _dropped, ...sent } = headers;
    return fetch(`${registry.url}${path}`, { method, headers: sent, ...streamed(body) });
  }

  /** reggie's GetRelativeLocation: the path and query of Location, the host thrown away. */
  function relativeLocation(response: Response): string {
    const location = response.headers.get("location");
    assert.ok(location, `${response.status} without a Location`);
    const parsed = new URL(location, registry.url);
    return parsed.pathname + parsed.search;
  }

  function withDigest(location: string, digest: string): string {
    return `${location}${location.includes("?") ? "&" : "?"}digest=${digest}`;
  }

  async function drain(response: Response): Promise<Response> {
    await response.arrayBuffer();
    return response;
  }

  /** POST then PUT with the body, as every setup upload does; 2xx each. */
  async function upload(content: Blob, repo = namespace): Promise<void> {
    const post = await drain(await send("POST", `/v2/${repo}/blobs/uploads/`));
    assert.ok(post.status >= 200 && post.status < 300, `POST: ${post.status}`);
    const put = await drain(
      await send(
        "PUT",
        withDigest(relativeLocation(post), content.digest),
        { "Content-Type": "application/octet-stream" },
        content.bytes,
      ),
    );
    assert.ok(put.status >= 200 && put.status < 300, `PUT: ${put.status}`);
  }

  async function putManifest(
    reference: string,
    content: Blob,
    contentType: string = types.ociManifest,
  ): Promise<Response> {
    return drain(
      await send(
        "PUT",
        `/v2/${namespace}/manifests/${reference}`,
        { "Content-Type": contentType },
        content.bytes,
      ),
    );
  }

  async function status(method: string, path: string, headers: Record<string, string> = {}): Promise<number> {
    return (await drain(await send(method, path, headers))).status;
  }

  async function tagList(): Promise<{ status: number; tags: string[] }> {
    const response = await send("GET", `/v2/${namespace}/tags/list`);
    const body = (await response.json()) as { tags: string[] | null };
    return { status: response.status, tags: body.tags ?? [] };
  }

  const manifestAccept = { Accept: types.ociManifest };

  describe("1. Pull", () => {
    before(async () => {
      await upload(configs[0] as Blob);
      await upload(config1);
      await upload(layer);
      const tagged = await putManifest("tagtest0", m(0));
      assert.ok(tagged.status >= 200 && tagged.status < 300);
      const byDigest = await putManifest(m(1).digest, m(1));
      assert.ok(byDigest.status >= 200 && byDigest.status < 300);
    });

    test("Pull blobs: HEAD request to nonexistent blob should result in 404 response", async () => {
      assert.equal(await status("HEAD", `/v2/${namespace}/blobs/${dummyDigest}`), 404);
    });

    test("Pull blobs: HEAD request to existing blob should yield 200", async () => {
      const response = await drain(
        await send("HEAD", `/v2/${namespace}/blobs/${(configs[0] as Blob).digest}`),
      );
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("docker-content-digest"), (configs[0] as Blob).digest);
    });

    test("Pull blobs: GET nonexistent blob should result in 404 response", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/blobs/${dummyDigest}`), 404);
    });

    test("Pull blobs: GET request to existing blob URL should yield 200", async () => {
      const response = await send("GET", `/v2/${namespace}/blobs/${(configs[0] as Blob).digest}`);
      assert.equal(response.status, 200);
      assert.deepEqual(Buffer.from(await response.arrayBuffer()), (configs[0] as Blob).bytes);
    });

    test("Pull manifests: HEAD request to nonexistent manifest should return 404", async () => {
      assert.equal(await status("HEAD", `/v2/${namespace}/manifests/${nonexistentManifest}`), 404);
    });

    test("Pull manifests: HEAD request to manifest[0] path (digest), manifest[1] path (digest) and tag should yield 200", async () => {
      for (const [reference, digest] of [
        [m(0).digest, m(0).digest],
        [m(1).digest, m(1).digest],
        ["tagtest0", m(0).digest],
      ]) {
        const response = await drain(
          await send("HEAD", `/v2/${namespace}/manifests/${reference}`, manifestAccept),
        );
        assert.equal(response.status, 200, reference);
        assert.equal(response.headers.get("docker-content-digest"), digest, reference);
      }
    });

    test("Pull manifests: GET nonexistent manifest should return 404", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/manifests/${nonexistentManifest}`), 404);
    });

    test("Pull manifests: GET request to manifest[0] path (digest), manifest[1] path (digest) and tag should yield 200", async () => {
      for (const [reference, content] of [
        [m(0).digest, m(0)],
        [m(1).digest, m(1)],
        ["tagtest0", m(0)],
      ] as const) {
        const response = await send("GET", `/v2/${namespace}/manifests/${reference}`, manifestAccept);
        assert.equal(response.status, 200, reference);
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), content.bytes, reference);
      }
    });

    test("Error codes: 400 response body should contain OCI-conforming JSON message", async () => {
      const response = await send("GET", `/v2/${namespace}/manifests/sha256:totallywrong`, {
        "Content-Type": "application/octet-stream",
      });
      assert.ok(response.status === 400 || response.status === 404, String(response.status));
      if (response.status === 400) {
        const body = (await response.json()) as { errors: { code: string }[] };
        assert.ok(body.errors.length > 0);
        assert.ok(validCodes.includes(body.errors[0]?.code ?? ""), body.errors[0]?.code);
      } else {
        await response.arrayBuffer();
      }
    });

    after(async () => {
      // Teardown: manifests first, then blobs (deleteManifestBeforeBlobs).
      for (const content of [m(0), m(1)]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${content.digest}`), 202);
      }
      for (const content of [configs[0] as Blob, config1, layer]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${content.digest}`), 202);
      }
    });
  });

  describe("2. Push", () => {
    test("Blob Upload Streamed: PATCH request with blob in body should yield 202 response", async () => {
      const post = await drain(await send("POST", `/v2/${namespace}/blobs/uploads/`));
      assert.ok(post.headers.get("location"));
      const patch = await drain(
        await send(
          "PATCH",
          relativeLocation(post),
          { "Content-Type": "application/octet-stream" },
          testBlobA.bytes,
        ),
      );
      assert.equal(patch.status, 202);
      const put = await drain(
        await send("PUT", withDigest(relativeLocation(patch), testBlobA.digest), {
          "Content-Type": "application/octet-stream",
        }),
      );
      assert.equal(put.status, 201);
      assert.ok(put.headers.get("location"));
    });

    test("Blob Upload Monolithic: GET nonexistent blob should result in 404 response", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/blobs/${dummyDigest}`), 404);
    });

    test("Blob Upload Monolithic: POST request with digest and blob should yield a 201 or 202", async () => {
      const response = await drain(
        await send(
          "POST",
          `/v2/${namespace}/blobs/uploads/?digest=${config1.digest}`,
          { "Content-Type": "application/octet-stream", "Content-Length": String(config1.bytes.length) },
          config1.bytes,
        ),
      );
      // 201 is what berth answers; with it, the blob must be readable at once.
      assert.equal(response.status, 201);
      assert.equal(relativeLocation(response), `/v2/${namespace}/blobs/${config1.digest}`);
      assert.equal(await status("GET", `/v2/${namespace}/blobs/${config1.digest}`), 200);
    });

    test("Blob Upload Monolithic: POST then PUT of configs[1] and the layer should yield 201, then GET 200", async () => {
      for (const content of [config1, layer]) {
        const post = await drain(await send("POST", `/v2/${namespace}/blobs/uploads/`));
        assert.equal(post.status, 202);
        const put = await drain(
          await send(
            "PUT",
            withDigest(relativeLocation(post), content.digest),
            { "Content-Type": "application/octet-stream", "Content-Length": String(content.bytes.length) },
            content.bytes,
          ),
        );
        assert.equal(put.status, 201);
        assert.ok(put.headers.get("location"));
        assert.equal(await status("GET", `/v2/${namespace}/blobs/${content.digest}`), 200);
      }
    });

    test("Blob Upload Chunked: out-of-order blob upload should return 416", async () => {
      const post = await drain(
        await send("POST", `/v2/${namespace}/blobs/uploads/`, { "Content-Length": "0" }),
      );
      assert.ok(post.headers.get("location"));
      // No OCI-Chunk-Min-Length above 22, or the suite would rebuild testBlobB.
      assert.ok(Number(post.headers.get("oci-chunk-min-length") ?? 0) <= 22);
      const patch = await drain(
        await send(
          "PATCH",
          relativeLocation(post),
          { "Content-Type": "application/octet-stream", "Content-Range": "22-41" },
          chunk2,
        ),
      );
      assert.equal(patch.status, 416);
    });

    test("Blob Upload Chunked: PATCH, stale retry, GET status, PATCH, PUT (the chunked sequence)", async () => {
      const post = await drain(
        await send("POST", `/v2/${namespace}/blobs/uploads/`, { "Content-Length": "0" }),
      );
      const l0 = relativeLocation(post);
      const chunkHeaders = (range: string) => ({
        "Content-Type": "application/octet-stream",
        "Content-Range": range,
      });

      const first = await drain(await send("PATCH", l0, chunkHeaders("0-21"), chunk1));
      assert.equal(first.status, 202);
      assert.equal(first.headers.get("range"), "0-21");
      assert.ok(first.headers.get("location"));

      const retry = await drain(await send("PATCH", l0, chunkHeaders("0-21"), chunk1));
      assert.equal(retry.status, 416);

      const statusResponse = await drain(await send("GET", l0));
      assert.equal(statusResponse.status, 204);
      assert.ok(statusResponse.headers.get("location"));
      assert.equal(statusResponse.headers.get("range"), "0-21");

      const second = await drain(
        await send("PATCH", relativeLocation(statusResponse), chunkHeaders("22-41"), chunk2),
      );
      assert.equal(second.status, 202);
      assert.ok(second.headers.get("location"));
      assert.equal(second.headers.get("range"), "0-41"); // [later] (#580)

      const put = await drain(
        await send("PUT", withDigest(relativeLocation(second), testBlobB.digest), {
          "Content-Length": "0",
          "Content-Type": "application/octet-stream",
        }),
      );
      assert.equal(put.status, 201);
      assert.ok(put.headers.get("location"));
      const pulled = await send("GET", `/v2/${namespace}/blobs/${testBlobB.digest}`);
      assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), testBlobB.bytes);
    });

    test("Cross-Repository Blob Mount: mount of an unknown blob without from should yield 202", async () => {
      const response = await drain(
        await send("POST", `/v2/${crossmountNamespace}/blobs/uploads/?mount=${dummyDigest}`),
      );
      assert.equal(response.status, 202);
      assert.ok(response.headers.get("location"));
    });

    test("Cross-Repository Blob Mount: POST request to mount another repository's blob should return 201", async () => {
      const response = await drain(
        await send(
          "POST",
          `/v2/${crossmountNamespace}/blobs/uploads/?mount=${testBlobA.digest}&from=${namespace}`,
        ),
      );
      assert.equal(response.status, 201);
      const location = relativeLocation(response);
      assert.equal(location, `/v2/${crossmountNamespace}/blobs/${testBlobA.digest}`);
      assert.equal(await status("GET", location), 200);
    });

    test("Cross-Repository Blob Mount: automatic mount without from should return 201 (OCI_AUTOMATIC_CROSSMOUNT)", async () => {
      const response = await drain(
        await send("POST", `/v2/${crossmountNamespace}/blobs/uploads/?mount=${testBlobA.digest}`),
      );
      assert.equal(response.status, 201);
      assert.equal(relativeLocation(response), `/v2/${crossmountNamespace}/blobs/${testBlobA.digest}`);
    });

    test("Manifest Upload: GET nonexistent manifest should return 404", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/manifests/${nonexistentManifest}`), 404);
    });

    test("Manifest Upload: PUT should accept a manifest upload (test0..test3)", async () => {
      for (const tag of ["test0", "test1", "test2", "test3"]) {
        const response = await putManifest(tag, m(1));
        assert.equal(response.status, 201, tag);
        assert.ok(response.headers.get("location"), tag);
      }
    });

    test("Manifest Upload: PUT with an empty layer list and no mediaType field should be accepted", async () => {
      const response = await putManifest("emptylayer", emptyLayerManifest);
      assert.equal(response.status, 201);
      assert.ok(response.headers.get("location"));
    });

    test("Manifest Upload: GET request to manifest URL (digest) should yield 200 response", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/manifests/${m(1).digest}`, manifestAccept), 200);
    });

    after(async () => {
      assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${m(1).digest}`), 202);
      assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${emptyLayerManifest.digest}`), 202);
      for (const content of [config1, layer]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${content.digest}`), 202);
      }
    });
  });

  describe("3. Content Discovery", () => {
    let numTags = 0;

    async function putReferrer(
      content: Blob,
      subject: Blob,
      contentType: string = types.ociManifest,
    ): Promise<void> {
      const response = await putManifest(content.digest, content, contentType);
      assert.ok(response.status >= 200 && response.status < 300, String(response.status));
      assert.equal(response.headers.get("oci-subject"), subject.digest);
    }

    before(async () => {
      await upload(configs[2] as Blob);
      await upload(layer);
      for (const tag of ["test0", "test1", "test2", "test3"]) {
        const response = await putManifest(tag, m(2));
        assert.ok(response.status >= 200 && response.status < 300);
      }
      await tagList();
      // References setup, in the suite's order.
      await upload(emptyJson);
      await upload(refBlobA);
      await putReferrer(refsManifestAConfigArtifact, m(4));
      await putReferrer(refsManifestALayerArtifact, m(4));
      await putReferrer(refsIndexArtifact, m(4), types.ociIndex);
      await upload(configs[4] as Blob);
      await upload(layer);
      const subject = await putManifest("tagtest0", m(4));
      assert.ok(subject.status >= 200 && subject.status < 300);
      await upload(refBlobB);
      await putReferrer(refsManifestBConfigArtifact, m(4));
      await putReferrer(refsManifestBLayerArtifact, m(4));
      await putReferrer(refsManifestCLayerArtifact, m(3));
    });

    test("Tag listing: GET number of tags should be 200", async () => {
      const list = await tagList();
      assert.equal(list.status, 200);
      numTags = list.tags.length;
      assert.deepEqual(list.tags, ["tagtest0", "test0", "test1", "test2", "test3"]);
    });

    test("Tag listing: GET n tags should be limited to n", async () => {
      const n = Math.floor(numTags / 2);
      const response = await send("GET", `/v2/${namespace}/tags/list?n=${n}`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { tags: string[] };
      assert.equal(body.tags.length, n);
    });

    test("Tag listing: GET with n and last should return the tags after last", async () => {
      const n = Math.floor(numTags / 2);
      const first = (await (await send("GET", `/v2/${namespace}/tags/list?n=${n}`)).json()) as {
        tags: string[];
      };
      const last = first.tags[n - 1] ?? "";
      const response = await send("GET", `/v2/${namespace}/tags/list?n=${n}&last=${last}`);
      assert.equal(response.status, 200);
      const body = (await response.json()) as { tags: string[] };
      // [later]: at most n, and never `last` itself.
      assert.ok(body.tags.length <= n);
      assert.ok(!body.tags.includes(last));
      assert.deepEqual(body.tags, ["test1", "test2"]);
    });

    async function referrers(digest: string, query = "") {
      const response = await send("GET", `/v2/${namespace}/referrers/${digest}${query}`);
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), types.ociIndex);
      const body = (await response.json()) as {
        manifests: {
          digest: string;
          mediaType: string;
          artifactType?: string;
          annotations?: Record<string, string>;
        }[];
      };
      return { response, manifests: body.manifests };
    }

    test("Referrers: GET request to nonexistent blob should result in empty 200 response", async () => {
      const { manifests: entries } = await referrers(dummyDigest);
      assert.deepEqual(entries, []);
    });

    test("Referrers: GET request to referrers list should yield 200 response", async () => {
      const { manifests: entries } = await referrers(m(4).digest);
      assert.equal(entries.length, 5);
      assert.notEqual(entries[0]?.digest, entries[1]?.digest);
      const expected = new Map([
        [refsManifestAConfigArtifact.digest, ["test config a", typeA, types.ociManifest]],
        [refsManifestALayerArtifact.digest, ["test layer a", typeA, types.ociManifest]],
        [refsIndexArtifact.digest, ["test index", "application/vnd.food.stand", types.ociIndex]],
        [refsManifestBConfigArtifact.digest, ["test config b", typeB, types.ociManifest]],
        [refsManifestBLayerArtifact.digest, ["test layer b", typeB, types.ociManifest]],
      ]);
      for (const entry of entries) {
        const [annotation, artifactType, mediaType] = expected.get(entry.digest) ?? [];
        assert.ok(annotation, `unexpected referrer ${entry.digest}`);
        assert.deepEqual(entry.annotations, { [annotationKey]: annotation });
        assert.equal(entry.artifactType, artifactType);
        assert.equal(entry.mediaType, mediaType);
      }
    });

    test("Referrers: GET request to referrers list with filter should yield 200 response", async () => {
      const { response, manifests: entries } = await referrers(m(4).digest, `?artifactType=${typeA}`);
      assert.equal(response.headers.get("oci-filters-applied"), "artifactType");
      assert.equal(entries.length, 2);
      assert.deepEqual(
        new Set(entries.map((entry) => entry.digest)),
        new Set([refsManifestAConfigArtifact.digest, refsManifestALayerArtifact.digest]),
      );
      for (const entry of entries) assert.equal(Object.keys(entry.annotations ?? {}).length, 1);
    });

    test("Referrers: GET request to missing manifest should yield 200 response", async () => {
      const { manifests: entries } = await referrers(m(3).digest);
      assert.equal(entries.length, 1);
      assert.equal(entries[0]?.digest, refsManifestCLayerArtifact.digest);
    });

    after(async () => {
      for (const content of [
        refsIndexArtifact,
        m(2),
        m(4),
        refsManifestAConfigArtifact,
        refsManifestALayerArtifact,
        refsManifestBConfigArtifact,
        refsManifestBLayerArtifact,
        refsManifestCLayerArtifact,
      ]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${content.digest}`), 202);
      }
      for (const content of [configs[2] as Blob, layer]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${content.digest}`), 202);
      }
      // References teardown: the manifests are gone already.
      for (const content of [
        refsIndexArtifact,
        refsManifestAConfigArtifact,
        refsManifestALayerArtifact,
        m(4),
        refsManifestBConfigArtifact,
        refsManifestBLayerArtifact,
      ]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${content.digest}`), 404);
      }
      for (const content of [configs[4] as Blob, refBlobA, refBlobB, emptyJson]) {
        assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${content.digest}`), 202);
      }
    });
  });

  describe("4. Content Management", () => {
    let numTags = 0;
    const config3 = configs[3] as Blob;

    before(async () => {
      await upload(config3);
      await upload(layer);
      const response = await putManifest("tagtest0", m(3));
      assert.ok(response.status >= 200 && response.status < 300);
      const list = await tagList();
      assert.equal(list.status, 200);
      numTags = list.tags.length;
    });

    test("Manifest delete: DELETE request to manifest tag should return 202", async () => {
      assert.equal(await status("DELETE", `/v2/${namespace}/manifests/tagtest0`), 202);
    });

    test("Manifest delete: DELETE request to manifest (digest) should yield 202 response", async () => {
      assert.equal(await status("DELETE", `/v2/${namespace}/manifests/${m(3).digest}`), 202);
    });

    test("Manifest delete: GET request to deleted manifest URL should yield 404 response", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/manifests/${m(3).digest}`), 404);
    });

    test("Manifest delete: GET request to tags list should reflect manifest deletion", async () => {
      const list = await tagList();
      assert.equal(list.status, 200);
      assert.ok(list.tags.length < numTags);
      assert.deepEqual(list.tags, []);
    });

    test("Blob delete: DELETE request to blob URL should yield 202 response", async () => {
      assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${config3.digest}`), 202);
      assert.equal(await status("DELETE", `/v2/${namespace}/blobs/${layer.digest}`), 202);
    });

    test("Blob delete: GET request to deleted blob URL should yield 404 response", async () => {
      assert.equal(await status("GET", `/v2/${namespace}/blobs/${config3.digest}`), 404);
    });
  });
});
