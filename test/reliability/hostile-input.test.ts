import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import fc from "fast-check";
import { loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";
import {
  type Answer,
  configType,
  describeAnswer,
  errorCodes,
  imageManifest,
  layerType,
  listFiles,
  manifestType,
  pushImage,
  sha256,
} from "../helpers/reliability.js";

/**
 * Hostile input, property-based: random and adversarial names, tags, digests, ranges, page parameters,
 * headers and manifest bodies. Every answer must be the spec's error for the input (4xx with the JSON
 * error body when there is a body), never a 5xx; nothing may be written outside the data directory and
 * a rejected request must leave the catalog, the tags and the blob files as they were.
 */

// Independent oracles, written from the spec rather than imported from src/.
const nameGrammar = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagGrammar = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const digestGrammar = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;
const repository = "good/repo";
const hex = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength, maxLength });
const runs = Number(process.env.BERTH_FUZZ_RUNS ?? 150);

let root: string;
let dataDir: string;
let berth: RunningBerth;
let port: number;
const agent = new Agent({ keepAlive: true, maxSockets: 8 });
const layer = randomBytes(4096);
let requests = 0;

before(async () => {
  // The data directory sits three levels down, so a path that escapes it shows up under `root`.
  root = await mkdtemp(join(tmpdir(), "berth-hostile-"));
  dataDir = join(root, "a", "b", "data");
  await mkdir(dataDir, { recursive: true });
  berth = await startBerth(
    loadConfig({ file: { dataDir, listen: "127.0.0.1:0", log: { level: "silent" } }, env: {} }),
  );
  port = Number(berth.address.split(":").pop());
  await pushImage(`http://${berth.address}`, repository, "v1", [layer]);
});

after(async () => {
  agent.destroy();
  await berth.close();
  await rm(root, { recursive: true, force: true });
});

/** Characters Node's client refuses in a path are percent-encoded; everything else goes out raw. */
function rawPath(text: string): string {
  return text.replace(/[^\u0021-\u007e]/gu, (c) => encodeURIComponent(c));
}

function send(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: Buffer | string,
): Promise<Answer> {
  requests++;
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, method, path, headers, agent, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const answerHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (typeof value === "string") answerHeaders.set(name, value);
          }
          resolve({ status: res.statusCode ?? 0, headers: answerHeaders, body: Buffer.concat(chunks) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("request timed out")));
    req.end(body);
  });
}

interface Snapshot {
  catalog: string;
  tags: string;
  blobs: string[];
  outside: string[];
}

async function snapshot(): Promise<Snapshot> {
  const catalog = await send("GET", "/v2/_catalog");
  const tags = await send("GET", `/v2/${repository}/tags/list`);
  const everything = await listFiles(root);
  return {
    catalog: catalog.body.toString(),
    tags: tags.body.toString(),
    blobs: await listFiles(join(dataDir, "blobs")),
    outside: everything.filter((path) => !path.startsWith("a/b/data/")),
  };
}

/** Never a 5xx; an error with a body carries the spec's JSON error shape, with one of `codes`. */
function assertSpecError(answer: Answer, what: string, codes?: string[]): void {
  assert.ok(answer.status < 500, `${what}: ${describeAnswer(answer)}`);
  if (answer.status >= 400 && answer.body.length > 0) {
    const found = errorCodes(answer);
    assert.ok(found, `${what}: error without the spec body: ${describeAnswer(answer)}`);
    if (codes)
      assert.ok(codes.includes(found[0] ?? ""), `${what}: expected ${codes}, got ${describeAnswer(answer)}`);
  }
}

async function assertUnchanged(before: Snapshot, what: string): Promise<void> {
  const now = await snapshot();
  assert.deepEqual(now.outside, [], `${what}: files written outside the data directory`);
  assert.equal(now.catalog, before.catalog, `${what}: catalog changed`);
  assert.equal(now.tags, before.tags, `${what}: tags changed`);
  const added = now.blobs.filter((path) => !before.blobs.includes(path));
  const removed = before.blobs.filter((path) => !now.blobs.includes(path));
  assert.ok(added.length + removed.length === 0, `${what}: blob files added ${added}, removed ${removed}`);
}

const nastyNames = [
  "..",
  "../..",
  "../../etc",
  "a/../b",
  "a/./b",
  "%2e%2e",
  "%2e%2e/%2e%2e/x",
  "a%2fb",
  "a%2Fb",
  "..%2f..%2fetc",
  "a\u0000b",
  "%00",
  "A",
  "a//b",
  "/a",
  "a/",
  ".",
  "-a",
  "a-",
  "a..b",
  "a___b",
  "é",
  "a\u202eb",
  "ａ",
  "a".repeat(256),
  `${"ab/".repeat(100)}c`,
  "a".repeat(5000),
  "good/repo/..",
  "good/repo/../../x",
  "tags/list",
  "_catalog",
  "a b",
  "a\\b",
  "a?b",
  "a#b",
];

const nameArbitrary = fc.oneof(
  fc.constantFrom(...nastyNames),
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
  fc.string({ unit: fc.constantFrom("a", "b", "0", ".", "_", "-", "/", "%", "2", "e", "f"), minLength: 1 }),
  fc.string({ unit: "binary", minLength: 1, maxLength: 20 }),
);

test("repository names: invalid ones are NAME_INVALID or unknown, never a 5xx, never state", async () => {
  await fc.assert(
    fc.asyncProperty(
      nameArbitrary,
      fc.constantFrom("tags", "manifest-get", "manifest-put", "upload", "blob-head", "manifest-delete"),
      async (name, operation) => {
        const path = rawPath(name);
        const valid = nameGrammar.test(name) && name.length <= 255 && path === name;
        const state = await snapshot();
        const manifest = imageManifest(Buffer.from("{}"), [layer]);
        const answer = await (operation === "tags"
          ? send("GET", `/v2/${path}/tags/list`)
          : operation === "manifest-get"
            ? send("GET", `/v2/${path}/manifests/latest`)
            : operation === "manifest-put"
              ? send("PUT", `/v2/${path}/manifests/latest`, { "Content-Type": manifestType }, manifest)
              : operation === "upload"
                ? send("POST", `/v2/${path}/blobs/uploads/`)
                : operation === "blob-head"
                  ? send("HEAD", `/v2/${path}/blobs/${sha256(layer)}`)
                  : send("DELETE", `/v2/${path}/manifests/latest`));
        const what = `${operation} ${JSON.stringify(name).slice(0, 80)}`;
        assertSpecError(answer, what);
        if (!valid) {
          assert.ok(answer.status >= 400, `${what}: invalid name accepted: ${describeAnswer(answer)}`);
          assertSpecError(answer, what, ["NAME_INVALID", "NAME_UNKNOWN", "UNSUPPORTED", "MANIFEST_UNKNOWN"]);
          await assertUnchanged(state, what);
        } else if (operation === "upload" && answer.status === 202) {
          // A valid name may open a session; close it again so the state stays small.
          const location = answer.headers.get("location") ?? "";
          assert.equal((await send("DELETE", location)).status, 204);
        } else if (operation === "manifest-put") {
          // The config blob "{}" is not in the repository: refused, whatever the (valid) name.
          assertSpecError(answer, what, ["MANIFEST_BLOB_UNKNOWN"]);
          await assertUnchanged(state, what);
        }
      },
    ),
    { numRuns: runs },
  );
});

test("tags: only the spec's grammar is accepted, and a refused tag changes nothing", async () => {
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
  const manifest = imageManifest(config, [layer]);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ unit: "grapheme", minLength: 1, maxLength: 140 }),
        fc.stringMatching(/^[a-zA-Z0-9_.-]{1,140}$/),
        fc.constantFrom(
          "..",
          ".",
          "-a",
          ".a",
          "a".repeat(128),
          "a".repeat(129),
          "%2e%2e",
          "a%2Fb",
          "v1\u0000",
        ),
      ),
      async (tag) => {
        const path = rawPath(tag);
        const valid = tagGrammar.test(tag) && path === tag;
        const state = await snapshot();
        const answer = await send(
          "PUT",
          `/v2/${repository}/manifests/${path}`,
          { "Content-Type": manifestType },
          manifest,
        );
        const what = `PUT tag ${JSON.stringify(tag).slice(0, 80)}`;
        assertSpecError(answer, what);
        if (valid) {
          assert.equal(answer.status, 201, `${what}: ${describeAnswer(answer)}`);
          if (tag !== "v1") {
            const deleted = await send("DELETE", `/v2/${repository}/manifests/${tag}`);
            assert.equal(deleted.status, 202, `${what}: cleanup ${describeAnswer(deleted)}`);
          }
        } else {
          assert.ok(answer.status >= 400 && answer.status < 500, `${what}: ${describeAnswer(answer)}`);
          await assertUnchanged(state, what);
        }
      },
    ),
    { numRuns: runs },
  );
});

const digestArbitrary = fc.oneof(
  hex(64, 64).map((hex) => `sha256:${hex}`),
  hex(0, 130).map((hex) => `sha256:${hex}`),
  hex(128, 128).map((hex) => `sha512:${hex}`),
  hex(64, 64).map((hex) => `sha256:${hex.toUpperCase()}`),
  fc
    .tuple(fc.constantFrom("md5", "sha1", "SHA256", "sha384", "blake3", "", "sha256+b64"), hex(0, 70))
    .map(([algorithm, hex]) => `${algorithm}:${hex}`),
  fc.string({ unit: "grapheme", maxLength: 80 }),
  fc.constant(`sha256:${"0".repeat(64)}/../../x`),
);

test("digests: malformed ones are DIGEST_INVALID, unknown ones BLOB_UNKNOWN, pushes of them write nothing", async () => {
  await fc.assert(
    fc.asyncProperty(digestArbitrary, fc.boolean(), async (digest, push) => {
      const path = rawPath(digest);
      const wellFormed = digestGrammar.test(digest) && path === digest;
      const what = `${push ? "push" : "GET"} ${JSON.stringify(digest).slice(0, 80)}`;
      if (!push) {
        const answer = await send("GET", `/v2/${repository}/blobs/${path}`);
        assertSpecError(answer, what, ["DIGEST_INVALID", "BLOB_UNKNOWN", "NAME_UNKNOWN"]);
        if (wellFormed || digest === "") assert.equal(answer.status, 404, what);
        else if (!digest.includes("/"))
          assert.equal(answer.status, 400, `${what}: ${describeAnswer(answer)}`);
        return;
      }
      const state = await snapshot();
      const answer = await send(
        "POST",
        `/v2/${repository}/blobs/uploads/?digest=${encodeURIComponent(digest)}`,
        { "Content-Type": "application/octet-stream" },
        "not the content of that digest",
      );
      assertSpecError(answer, what, ["DIGEST_INVALID"]);
      assert.equal(answer.status, 400, `${what}: ${describeAnswer(answer)}`);
      await assertUnchanged(state, what);
    }),
    { numRuns: runs },
  );
});

test("Range on blob reads: 200, a correct 206 slice, or 416; Content-Range on chunks: 202 or 416", async () => {
  const digest = sha256(layer);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.tuple(fc.nat(6000), fc.nat(6000)).map(([a, b]) => `bytes=${a}-${b}`),
        fc.nat(6000).map((a) => `bytes=${a}-`),
        fc.nat(6000).map((a) => `bytes=-${a}`),
        fc.string({ maxLength: 40 }).map((s) => `bytes=${s}`),
        fc.constantFrom(
          "bytes=0-0,5-9",
          "bytes=99999999999999999999-1",
          "bytes=-0",
          "items=0-5",
          "bytes=",
          "bytes=-",
        ),
      ),
      async (range) => {
        const answer = await send("GET", `/v2/${repository}/blobs/${digest}`, { Range: range });
        const what = `Range ${JSON.stringify(range)}`;
        assertSpecError(answer, what);
        if (answer.status === 200) assert.ok(answer.body.equals(layer), what);
        else if (answer.status === 206) {
          const match = /^bytes (\d+)-(\d+)\/4096$/.exec(answer.headers.get("content-range") ?? "");
          assert.ok(match, `${what}: Content-Range ${answer.headers.get("content-range")}`);
          assert.ok(answer.body.equals(layer.subarray(Number(match[1]), Number(match[2]) + 1)), what);
        } else {
          assert.equal(answer.status, 416, `${what}: ${describeAnswer(answer)}`);
          assert.equal(answer.headers.get("content-range"), "bytes */4096", what);
        }
      },
    ),
    { numRuns: runs },
  );

  const started = await send("POST", `/v2/${repository}/blobs/uploads/`);
  const location = started.headers.get("location") ?? "";
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.tuple(fc.nat(100), fc.nat(100)).map(([a, b]) => `${a}-${b}`),
        fc.string({ maxLength: 30 }),
        fc.constantFrom("0-", "-1", "1-0", "0-99999999999999999999", "bytes 0-9/*", "0-9/10"),
      ),
      async (contentRange) => {
        const before = await send("GET", location);
        const chunk = Buffer.alloc(10, 7);
        const answer = await send(
          "PATCH",
          location,
          { "Content-Type": "application/octet-stream", "Content-Range": rawPath(contentRange) },
          chunk,
        );
        const what = `Content-Range ${JSON.stringify(contentRange)}`;
        assertSpecError(answer, what, ["BLOB_UPLOAD_INVALID", "SIZE_INVALID"]);
        const status = await send("GET", location);
        if (answer.status === 202) {
          assert.notEqual(status.headers.get("range"), before.headers.get("range"), what);
        } else {
          assert.ok([400, 416].includes(answer.status), `${what}: ${describeAnswer(answer)}`);
          assert.equal(status.headers.get("range"), before.headers.get("range"), `${what}: offset moved`);
        }
      },
    ),
    { numRuns: runs },
  );
  await send("DELETE", location);
});

test("n and last on tag and catalog listings: a page or a 400, never a 5xx", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(`/v2/${repository}/tags/list`, "/v2/_catalog"),
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.integer().map(String),
        fc.constantFrom("-1", "1e9", "0x10", "99999999999999999999"),
      ),
      fc.oneof(fc.string({ unit: "grapheme", maxLength: 300 }), fc.constant("v1")),
      async (path, n, last) => {
        const answer = await send(
          "GET",
          `${path}?n=${encodeURIComponent(n)}&last=${encodeURIComponent(last)}`,
        );
        const what = `${path} n=${JSON.stringify(n)} last=${JSON.stringify(last).slice(0, 60)}`;
        assertSpecError(answer, what);
        if (answer.status === 200) {
          const body = JSON.parse(answer.body.toString()) as { tags?: string[]; repositories?: string[] };
          const items = body.tags ?? body.repositories ?? [];
          assert.ok(Array.isArray(items), what);
          if (/^\d+$/.test(n)) assert.ok(items.length <= Number(n), `${what}: ${items.length} items`);
        } else {
          assert.equal(answer.status, 400, `${what}: ${describeAnswer(answer)}`);
        }
      },
    ),
    { numRuns: runs },
  );
});

test("header sizes: oversized headers are refused with a 4xx, the server keeps serving", async () => {
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 200_000 }), fc.nat(40), async (size, count) => {
      const headers: Record<string, string> = { "X-Big": "a".repeat(size) };
      for (let i = 0; i < count; i++) headers[`X-Extra-${i}`] = "b".repeat(100);
      const answer = await send("GET", `/v2/${repository}/tags/list`, headers).catch(
        (error: Error) => ({ status: 0, headers: new Headers(), body: Buffer.from(error.message) }) as Answer,
      );
      const what = `header of ${size} bytes and ${count} more`;
      // A refusal may close the connection while the client is still sending: that is not a server failure.
      if (answer.status !== 0) {
        assertSpecError(answer, what);
        assert.ok([200, 431, 400].includes(answer.status), `${what}: ${describeAnswer(answer)}`);
      }
      const ok = await send("GET", "/v2/");
      assert.equal(ok.status, 200, `${what}: server stopped answering`);
    }),
    { numRuns: 40 },
  );
});

/** Manifest bodies an attacker might send, each paired with whether it may be accepted. */
const manifestBodyArbitrary = fc.oneof(
  fc.json().map((text) => ({ body: text, type: manifestType })),
  fc.string({ maxLength: 200 }).map((text) => ({ body: text, type: manifestType })),
  fc
    .integer({ min: 1, max: 200_000 })
    .map((depth) => ({ body: "[".repeat(depth) + "]".repeat(depth), type: manifestType })),
  fc
    .integer({ min: 1, max: 200_000 })
    .map((depth) => ({ body: `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`, type: manifestType })),
  fc.integer({ min: 1, max: 30_000 }).map((count) => ({
    body: JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: configType, digest: sha256("{}"), size: 2 },
      layers: Array.from({ length: count }, () => ({
        mediaType: layerType,
        digest: sha256(layer),
        size: 4096,
      })),
    }),
    type: manifestType,
  })),
  fc.string({ maxLength: 60 }).map((type) => ({
    body: imageManifest(Buffer.from("{}"), [layer]).toString(),
    type,
  })),
  hex(64, 64).map((hex) => ({
    body: JSON.stringify({
      schemaVersion: 2,
      mediaType: manifestType,
      config: { mediaType: configType, digest: `sha256:${hex}`, size: 10 },
      layers: [{ mediaType: layerType, digest: sha256(layer), size: 4096 }],
    }),
    type: manifestType,
  })),
  fc
    .constantFrom(
      `{"schemaVersion":2,"schemaVersion":1,"mediaType":"${manifestType}","config":{},"layers":[]}`,
      `{"schemaVersion":2,"mediaType":"${manifestType}","config":{"mediaType":"${configType}","digest":"${sha256("{}")}","size":2},"layers":[],"layers":[{"mediaType":"${layerType}","digest":"${sha256("x")}","size":1}]}`,
      `{"__proto__":{"schemaVersion":2},"layers":[]}`,
      `{"schemaVersion":2,"mediaType":"${manifestType}","config":{"mediaType":"${configType}","digest":"${sha256(layer)}","size":-1},"layers":[]}`,
      `{"schemaVersion":2,"mediaType":"${manifestType}","config":{"mediaType":"${configType}","digest":"${sha256(layer)}","size":1e400},"layers":[]}`,
      "\u0000",
      "",
      "null",
      '"manifest"',
    )
    .map((text) => ({ body: text, type: manifestType })),
);

test("manifest bodies: invalid, deep, huge, mistyped or dangling ones are refused and change nothing", async () => {
  await fc.assert(
    fc.asyncProperty(manifestBodyArbitrary, fc.boolean(), async ({ body, type }, byDigest) => {
      const state = await snapshot();
      const reference = byDigest ? sha256(body) : "hostile";
      const headers: Record<string, string> = {};
      if (type !== "") headers["Content-Type"] = rawPath(type).replace(/[\r\n]/g, "");
      const answer = await send("PUT", `/v2/${repository}/manifests/${reference}`, headers, body);
      const what = `manifest ${JSON.stringify(body.slice(0, 60))} (${body.length} bytes) as ${JSON.stringify(type)}`;
      // The config "{}" and random digests are never pushed, so none of these may be accepted.
      assert.ok(answer.status >= 400 && answer.status < 500, `${what}: ${describeAnswer(answer)}`);
      assertSpecError(answer, what, [
        "MANIFEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "BLOB_UNKNOWN",
        "SIZE_INVALID",
        // 415 for a Content-Type that is not a media type at all.
        "UNSUPPORTED",
      ]);
      await assertUnchanged(state, what);
    }),
    { numRuns: runs },
  );
});

test("bytes the HTTP parser refuses (NUL, bare CR, overlong request line) never take the server down", async () => {
  const raw = [
    "GET /v2/a\u0000b/tags/list HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /v2/ HTTP/1.1\r\nHost: x\rX: y\r\n\r\n",
    `GET /v2/${"a".repeat(100_000)}/tags/list HTTP/1.1\r\nHost: x\r\n\r\n`,
    "PATCH /v2/good/repo/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    "GET /v2/../../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    "\u0016\u0003\u0001\u0002\u0000\u0001\u0000\u0001\u00fc\u0003\u0003",
  ];
  for (const text of raw) {
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => socket.end(Buffer.from(text, "latin1")));
      let data = "";
      socket.on("data", (chunk) => {
        data += chunk.toString("latin1");
      });
      socket.on("close", () => resolve(data));
      socket.on("error", () => resolve(data));
      socket.setTimeout(10_000, () => socket.destroy());
    });
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(reply)?.[1] ?? 0);
    assert.ok(
      status === 0 || (status >= 400 && status < 500),
      `${JSON.stringify(text.slice(0, 40))}: ${reply.slice(0, 200)}`,
    );
    const body = reply.split("\r\n\r\n")[1] ?? "";
    if (body.length > 0 && status !== 0) {
      assert.ok(
        errorCodes({ status, headers: new Headers(), body: Buffer.from(body) }),
        `non-spec body: ${body}`,
      );
    }
  }
  const ok = await send("GET", "/v2/");
  assert.equal(ok.status, 200);
  const state = await snapshot();
  assert.deepEqual(state.outside, []);
});

test("after all of it, the registry still serves the image it had", async (t) => {
  const answer = await send("GET", `/v2/${repository}/manifests/v1`, { Accept: manifestType });
  assert.equal(answer.status, 200);
  t.diagnostic(`hostile requests sent: ${requests}`);
});
