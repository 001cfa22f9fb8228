import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { startBerth } from "../../src/server.js";
import { digestOf, errorCodes, pushBlob, streamed } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The Location header as an absolute URL, as the conformance client resolves it. */
function locationOf(response: Response, base: string): string {
  const location = response.headers.get("location");
  assert.ok(location, `no Location on ${response.status}`);
  return new URL(location, base).toString();
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  return url.toString();
}

async function startSession(url: string, repo: string): Promise<string> {
  const response = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
  assert.equal(response.status, 202);
  return locationOf(response, url);
}

async function readBlob(url: string, repo: string, digest: string): Promise<Buffer | number> {
  const response = await fetch(`${url}/v2/${repo}/blobs/${digest}`);
  if (response.status !== 200) {
    await response.arrayBuffer();
    return response.status;
  }
  assert.equal(response.headers.get("docker-content-digest"), digest);
  return Buffer.from(await response.arrayBuffer());
}

describe("Push: pushing blobs", () => {
  let registry: TestRegistry;
  let url: string;
  const repo = "push/blobs";

  before(async () => {
    registry = await startTestRegistry();
    url = registry.url;
  });
  after(async () => {
    await registry.close();
  });

  test("Single POST: POST ?digest= with the blob is 201 with the blob's Location, and the blob is readable", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      body: blob,
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Single POST: a streamed body (chunked transfer encoding) is 201 too", async () => {
    const blob = randomBytes(1000);
    const digest = digestOf(blob);
    const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      headers: { "Content-Type": "application/octet-stream" },
      ...streamed(blob),
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Single POST: the empty blob needs no body", async () => {
    const digest = digestOf("");
    const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST" });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, repo, digest), Buffer.alloc(0));
  });

  test("Single POST: a digest that does not match the body is 400 DIGEST_INVALID and nothing is stored", async () => {
    const blob = randomBytes(42);
    const claimed = digestOf(randomBytes(42));
    const response = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${claimed}`, {
      method: "POST",
      body: blob,
    });
    assert.equal(response.status, 400);
    assert.deepEqual(await errorCodes(response), ["DIGEST_INVALID"]);
    assert.equal(await readBlob(url, repo, claimed), 404);
    assert.equal(await readBlob(url, repo, digestOf(blob)), 404);
  });

  test("POST then PUT: POST is 202 with a session Location and Docker-Upload-UUID, PUT ?digest= is 201", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    const uuid = post.headers.get("docker-upload-uuid") ?? "";
    assert.match(uuid, uuidPattern);
    assert.equal(post.headers.get("location"), `/v2/${repo}/blobs/uploads/${uuid}`);
    assert.equal(post.headers.get("range"), "0-0");
    const put = await fetch(withDigest(locationOf(post, url), digest), {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream" },
      body: blob,
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.equal(put.headers.get("docker-content-digest"), digest);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
    // The session is closed: its Location no longer answers.
    const status = await fetch(locationOf(post, url));
    assert.equal(status.status, 404);
    assert.deepEqual(await errorCodes(status), ["BLOB_UPLOAD_UNKNOWN"]);
  });

  test("POST then PUT: POST ?digest= without a body starts a session (202)", async () => {
    const blob = randomBytes(10);
    const digest = digestOf(blob);
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST" });
    assert.equal(post.status, 202);
    assert.match(post.headers.get("location") ?? "", new RegExp(`^/v2/${repo}/blobs/uploads/`));
    const put = await fetch(withDigest(locationOf(post, url), digest), { method: "PUT", body: blob });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("POST then PUT: a PUT without ?digest= is 400 DIGEST_INVALID", async () => {
    const location = await startSession(url, repo);
    const put = await fetch(location, { method: "PUT", body: randomBytes(4) });
    assert.equal(put.status, 400);
    assert.deepEqual(await errorCodes(put), ["DIGEST_INVALID"]);
  });

  test("Pushing a blob in chunks: a streamed PATCH (no Content-Range, chunked encoding) then PUT with no body", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const location = await startSession(url, repo);
    const patch = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream" },
      ...streamed(blob),
    });
    assert.equal(patch.status, 202);
    assert.equal(patch.headers.get("range"), "0-41");
    assert.match(patch.headers.get("docker-upload-uuid") ?? "", uuidPattern);
    const put = await fetch(withDigest(locationOf(patch, url), digest), {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream" },
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing a blob in chunks: the conformance sequence (0-21, stale retry 416, GET status, 22-41, PUT)", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const chunk1 = blob.subarray(0, 22);
    const chunk2 = blob.subarray(22);
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/`, {
      method: "POST",
      headers: { "Content-Length": "0" },
    });
    assert.equal(post.status, 202);
    const l0 = locationOf(post, url);

    const first = await fetch(l0, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-21" },
      ...streamed(chunk1),
    });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get("range"), "0-21");
    assert.ok(first.headers.get("location"));

    // Retrying the chunk on the POST's Location overlaps what is stored: 416.
    const stale = await fetch(l0, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-21" },
      ...streamed(chunk1),
    });
    assert.equal(stale.status, 416);
    assert.equal(stale.headers.get("range"), "0-21");
    assert.deepEqual(await errorCodes(stale), ["BLOB_UPLOAD_INVALID"]);

    const status = await fetch(l0);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-21");
    const l1 = locationOf(status, url);

    const second = await fetch(l1, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "22-41" },
      ...streamed(chunk2),
    });
    assert.equal(second.status, 202);
    assert.equal(second.headers.get("range"), "0-41");
    const l2 = locationOf(second, url);

    const put = await fetch(withDigest(l2, digest), {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": "0" },
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing a blob in chunks: chunks with Content-Length and Content-Range are 202 each", async () => {
    const blob = randomBytes(30);
    const digest = digestOf(blob);
    let location = await startSession(url, repo);
    for (const [start, end] of [
      [0, 9],
      [10, 19],
      [20, 29],
    ] as const) {
      const patch = await fetch(location, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `${start}-${end}` },
        body: blob.subarray(start, end + 1),
      });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get("range"), `0-${end}`);
      location = locationOf(patch, url);
    }
    const put = await fetch(withDigest(location, digest), { method: "PUT" });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing a blob in chunks: a first chunk that does not start at 0 is 416", async () => {
    const location = await startSession(url, repo);
    const patch = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "22-41" },
      ...streamed(randomBytes(20)),
    });
    assert.equal(patch.status, 416);
    assert.deepEqual(await errorCodes(patch), ["BLOB_UPLOAD_INVALID"]);
    // Nothing was taken: the session is still empty.
    const status = await fetch(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-0");
  });

  test("Pushing a blob in chunks: a chunk past the end of the upload is 416", async () => {
    const blob = randomBytes(20);
    const location = await startSession(url, repo);
    const first = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": "0-9" },
      body: blob.subarray(0, 10),
    });
    assert.equal(first.status, 202);
    const gap = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": "15-19" },
      body: blob.subarray(15),
    });
    assert.equal(gap.status, 416);
    assert.equal(gap.headers.get("range"), "0-9");
    await gap.arrayBuffer();
  });

  test("Pushing a blob in chunks: the final chunk may come in the closing PUT", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const location = await startSession(url, repo);
    const patch = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-21" },
      body: blob.subarray(0, 22),
    });
    assert.equal(patch.status, 202);
    const put = await fetch(withDigest(locationOf(patch, url), digest), {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": "22-41" },
      body: blob.subarray(22),
    });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing a blob in chunks: DELETE cancels the session, then its status is 404 BLOB_UPLOAD_UNKNOWN", async () => {
    const blob = randomBytes(10);
    const location = await startSession(url, repo);
    const patch = await fetch(location, { method: "PATCH", body: blob });
    assert.equal(patch.status, 202);
    const cancel = await fetch(location, { method: "DELETE" });
    assert.equal(cancel.status, 204);
    const status = await fetch(location);
    assert.equal(status.status, 404);
    assert.deepEqual(await errorCodes(status), ["BLOB_UPLOAD_UNKNOWN"]);
    const put = await fetch(withDigest(location, digestOf(blob)), { method: "PUT" });
    assert.equal(put.status, 404);
    assert.deepEqual(await errorCodes(put), ["BLOB_UPLOAD_UNKNOWN"]);
    assert.equal(await readBlob(url, repo, digestOf(blob)), 404);
  });

  test("Pushing a blob in chunks: a digest mismatch on PUT is 400 DIGEST_INVALID, no blob, and the session is gone", async () => {
    const blob = randomBytes(42);
    const wrong = digestOf(randomBytes(42));
    const location = await startSession(url, repo);
    const patch = await fetch(location, { method: "PATCH", body: blob });
    assert.equal(patch.status, 202);
    const put = await fetch(withDigest(location, wrong), { method: "PUT" });
    assert.equal(put.status, 400);
    assert.deepEqual(await errorCodes(put), ["DIGEST_INVALID"]);
    assert.equal(await readBlob(url, repo, wrong), 404);
    assert.equal(await readBlob(url, repo, digestOf(blob)), 404);
    const status = await fetch(location);
    assert.equal(status.status, 404);
    assert.deepEqual(await errorCodes(status), ["BLOB_UPLOAD_UNKNOWN"]);
  });

  test("Pushing blobs: sha512 digests work for a single POST", async () => {
    const blob = randomBytes(42);
    const digest = await pushBlob(url, repo, blob, "sha512");
    assert.match(digest, /^sha512:[0-9a-f]{128}$/);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
    const head = await fetch(`${url}/v2/${repo}/blobs/${digest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), "42");
  });

  test("Pushing blobs: sha512 digests work for a chunked upload", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob, "sha512");
    const location = await startSession(url, repo);
    const first = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": "0-21" },
      body: blob.subarray(0, 22),
    });
    assert.equal(first.status, 202);
    const second = await fetch(locationOf(first, url), {
      method: "PATCH",
      headers: { "Content-Range": "22-41" },
      body: blob.subarray(22),
    });
    assert.equal(second.status, 202);
    const put = await fetch(withDigest(locationOf(second, url), digest), { method: "PUT" });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("docker-content-digest"), digest);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
    // The sha256 of the same bytes was not published by this upload.
    assert.equal(await readBlob(url, repo, digestOf(blob)), 404);
  });

  test("Pushing blobs: sha512 chunked upload announced at POST ?digest=", async () => {
    const blob = randomBytes(42);
    const digest = digestOf(blob, "sha512");
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST" });
    assert.equal(post.status, 202);
    const patch = await fetch(locationOf(post, url), { method: "PATCH", ...streamed(blob) });
    assert.equal(patch.status, 202);
    const put = await fetch(withDigest(locationOf(patch, url), digest), { method: "PUT" });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing blobs: an invalid upload UUID is 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH, PUT and DELETE", async () => {
    for (const id of ["not-a-uuid", "00000000-0000-0000-0000-000000000000"]) {
      const base = `${url}/v2/${repo}/blobs/uploads/${id}`;
      const requests: [string, RequestInit][] = [
        [base, { method: "GET" }],
        [base, { method: "PATCH", body: "abc" }],
        [withDigest(base, digestOf("abc")), { method: "PUT", body: "abc" }],
        [base, { method: "DELETE" }],
      ];
      for (const [target, init] of requests) {
        const response = await fetch(target, init);
        assert.equal(response.status, 404, `${init.method} ${id}`);
        assert.deepEqual(await errorCodes(response), ["BLOB_UPLOAD_UNKNOWN"], `${init.method} ${id}`);
      }
    }
  });

  test("Pushing blobs: an upload UUID is unknown in another repository", async () => {
    const location = await startSession(url, repo);
    const id = new URL(location).pathname.split("/").pop() ?? "";
    const elsewhere = `${url}/v2/push/other/blobs/uploads/${id}`;
    const status = await fetch(elsewhere);
    assert.equal(status.status, 404);
    assert.deepEqual(await errorCodes(status), ["BLOB_UPLOAD_UNKNOWN"]);
    const patch = await fetch(elsewhere, { method: "PATCH", body: "abc" });
    assert.equal(patch.status, 404);
    await patch.arrayBuffer();
    // The session itself is untouched.
    const own = await fetch(location);
    assert.equal(own.status, 204);
    assert.equal(own.headers.get("range"), "0-0");
  });

  test("Mounting a blob from another repository: mount with from is 201 with the exact blob Location", async () => {
    const blob = randomBytes(42);
    const digest = await pushBlob(url, "mount/source", blob);
    const target = "mount/target-a";
    const response = await fetch(`${url}/v2/${target}/blobs/uploads/?mount=${digest}&from=mount/source`, {
      method: "POST",
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `/v2/${target}/blobs/${digest}`);
    assert.equal(response.headers.get("docker-content-digest"), digest);
    assert.deepEqual(await readBlob(url, target, digest), blob);
    // The source keeps it.
    assert.deepEqual(await readBlob(url, "mount/source", digest), blob);
  });

  test("Mounting a blob from another repository: a from that lacks the blob is 202 with an upload session", async () => {
    const digest = await pushBlob(url, "mount/holder", randomBytes(42));
    await pushBlob(url, "mount/empty-source", randomBytes(3));
    const target = "mount/target-b";
    const response = await fetch(
      `${url}/v2/${target}/blobs/uploads/?mount=${digest}&from=mount/empty-source`,
      { method: "POST" },
    );
    assert.equal(response.status, 202);
    assert.match(
      response.headers.get("location") ?? "",
      new RegExp(`^/v2/${target}/blobs/uploads/[0-9a-f-]{36}$`),
    );
    assert.match(response.headers.get("docker-upload-uuid") ?? "", uuidPattern);
    assert.equal(await readBlob(url, target, digest), 404);
    const status = await fetch(locationOf(response, url));
    assert.equal(status.status, 204);
  });

  test("Mounting a blob from another repository: without from, 201 when the blob is known anywhere", async () => {
    const blob = randomBytes(42);
    const digest = await pushBlob(url, "mount/anywhere", blob);
    const target = "mount/target-c";
    const response = await fetch(`${url}/v2/${target}/blobs/uploads/?mount=${digest}`, { method: "POST" });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get("location"), `/v2/${target}/blobs/${digest}`);
    assert.deepEqual(await readBlob(url, target, digest), blob);
    // Mounting again into the repository that now holds it is still 201.
    const again = await fetch(`${url}/v2/${target}/blobs/uploads/?mount=${digest}`, { method: "POST" });
    assert.equal(again.status, 201);
    assert.equal(again.headers.get("location"), `/v2/${target}/blobs/${digest}`);
  });

  test("Mounting a blob from another repository: without from, 202 when the blob is unknown", async () => {
    const digest = digestOf(randomBytes(42));
    const response = await fetch(`${url}/v2/mount/target-d/blobs/uploads/?mount=${digest}`, {
      method: "POST",
    });
    assert.equal(response.status, 202);
    assert.match(response.headers.get("location") ?? "", /^\/v2\/mount\/target-d\/blobs\/uploads\//);
    assert.match(response.headers.get("docker-upload-uuid") ?? "", uuidPattern);
  });

  test("Pushing a blob in chunks: a chunk longer than its Content-Range is refused and the session stays usable", async () => {
    const blob = randomBytes(10);
    const digest = digestOf(blob);
    const location = await startSession(url, repo);
    const bad = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": "0-9" },
      ...streamed(randomBytes(15)),
    });
    assert.ok(bad.status === 400 || bad.status === 416, String(bad.status));
    assert.ok((await errorCodes(bad)).length > 0);
    const status = await fetch(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-0");
    const good = await fetch(location, { method: "PATCH", headers: { "Content-Range": "0-9" }, body: blob });
    assert.equal(good.status, 202);
    assert.equal(good.headers.get("range"), "0-9");
    const put = await fetch(withDigest(location, digest), { method: "PUT" });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Resumable Push: a PATCH whose client disconnects mid-body leaves the session where it was", async () => {
    const blob = randomBytes(64 * 1024);
    const digest = digestOf(blob);
    const location = await startSession(url, repo);
    const first = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": "0-1023" },
      body: blob.subarray(0, 1024),
    });
    assert.equal(first.status, 202);
    const abort = new AbortController();
    let sent!: () => void;
    const partSent = new Promise<void>((resolve) => {
      sent = resolve;
    });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(blob.subarray(1024, 4096));
      },
      pull() {
        sent();
        return new Promise(() => undefined);
      },
    });
    const interrupted = fetch(location, {
      method: "PATCH",
      body,
      duplex: "half",
      signal: abort.signal,
    } as RequestInit);
    await partSent;
    await new Promise((resolve) => setTimeout(resolve, 100));
    abort.abort();
    await assert.rejects(interrupted);
    // The interrupted chunk was never acknowledged; the next one continues from the last good offset.
    const timeout = AbortSignal.timeout(5000);
    const status = await fetch(location, { signal: timeout });
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-1023");
    const rest = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Range": `1024-${blob.length - 1}` },
      body: blob.subarray(1024),
      signal: timeout,
    });
    assert.equal(rest.status, 202);
    assert.equal(rest.headers.get("range"), `0-${blob.length - 1}`);
    const put = await fetch(withDigest(location, digest), { method: "PUT", signal: timeout });
    assert.equal(put.status, 201);
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });

  test("Pushing blobs: malformed digests in POST ?digest=, POST ?mount= and PUT ?digest= are 400 DIGEST_INVALID", async () => {
    const post = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=sha256:nope`, {
      method: "POST",
      body: "x",
    });
    assert.equal(post.status, 400);
    assert.deepEqual(await errorCodes(post), ["DIGEST_INVALID"]);
    const mount = await fetch(`${url}/v2/${repo}/blobs/uploads/?mount=nope&from=push/other`, {
      method: "POST",
    });
    assert.equal(mount.status, 400);
    assert.deepEqual(await errorCodes(mount), ["DIGEST_INVALID"]);
    const location = await startSession(url, repo);
    const put = await fetch(withDigest(location, `sha256:${"Z".repeat(64)}`), { method: "PUT", body: "x" });
    assert.equal(put.status, 400);
    assert.deepEqual(await errorCodes(put), ["DIGEST_INVALID"]);
  });

  test("Layer Upload De-duplication: 10 concurrent pushes of the same blob all succeed", async () => {
    const blob = randomBytes(256 * 1024);
    const digest = digestOf(blob);
    const monolithic = Array.from({ length: 5 }, () =>
      fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: "POST", body: blob }),
    );
    const chunked = Array.from({ length: 5 }, async () => {
      const location = await startSession(url, repo);
      const patch = await fetch(location, { method: "PATCH", ...streamed(blob) });
      assert.equal(patch.status, 202);
      return fetch(withDigest(locationOf(patch, url), digest), { method: "PUT" });
    });
    const responses = await Promise.all([...monolithic, ...chunked]);
    for (const response of responses) {
      assert.equal(response.status, 201);
      assert.equal(response.headers.get("location"), `/v2/${repo}/blobs/${digest}`);
    }
    assert.deepEqual(await readBlob(url, repo, digest), blob);
  });
});

describe("Push: upload session limits", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry({ limits: { uploadSessions: 2 } });
  });
  after(async () => {
    await registry.close();
  });

  test("Pushing blobs: past limits.uploadSessions, POST is 429 TOOMANYREQUESTS until a session closes", async () => {
    const { url } = registry;
    const first = await startSession(url, "limits/a");
    await startSession(url, "limits/b");
    const refused = await fetch(`${url}/v2/limits/c/blobs/uploads/`, { method: "POST" });
    assert.equal(refused.status, 429);
    assert.ok(refused.headers.get("retry-after"));
    assert.deepEqual(await errorCodes(refused), ["TOOMANYREQUESTS"]);
    // A single POST holds no session, so it is still served.
    const digest = await pushBlob(url, "limits/c", "monolithic");
    assert.equal(digest, digestOf("monolithic"));
    const cancel = await fetch(first, { method: "DELETE" });
    assert.equal(cancel.status, 204);
    const again = await fetch(`${url}/v2/limits/c/blobs/uploads/`, { method: "POST" });
    assert.equal(again.status, 202);
  });
});

describe("Push: resumable push across a restart", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "berth-restart-"));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  const start = () =>
    startBerth(loadConfig({ file: { dataDir, listen: "127.0.0.1:0", log: { level: "warn" } }, env: {} }));

  test("Shutdown: close() right after a blob download does not wait for the shutdown deadline", async () => {
    const server = await start();
    const url = `http://${server.address}`;
    let closed = false;
    try {
      const digest = await pushBlob(url, "restart/close", randomBytes(100));
      const response = await fetch(`${url}/v2/restart/close/blobs/${digest}`);
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      const started = Date.now();
      await server.close();
      closed = true;
      // The keep-alive connection of the finished download must not hold the close open (30 s deadline).
      assert.ok(Date.now() - started < 3000, `close took ${Date.now() - started} ms`);
    } finally {
      if (!closed) await server.close();
    }
  });

  test("Resumable Push: a chunked upload continues after the server restarts on the same data", async () => {
    const blob = randomBytes(4096);
    const digest = digestOf(blob);
    const repo = "restart/repo";

    const first = await start();
    let path: string;
    try {
      const url = `http://${first.address}`;
      const location = await startSession(url, repo);
      path = new URL(location).pathname;
      const patch = await fetch(location, {
        method: "PATCH",
        headers: { "Content-Range": "0-999" },
        body: blob.subarray(0, 1000),
      });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get("range"), "0-999");
    } finally {
      await first.close();
    }

    const second = await start();
    try {
      const url = `http://${second.address}`;
      const status = await fetch(`${url}${path}`);
      assert.equal(status.status, 204);
      assert.equal(status.headers.get("range"), "0-999");
      const patch = await fetch(locationOf(status, url), {
        method: "PATCH",
        headers: { "Content-Range": `1000-${blob.length - 1}` },
        body: blob.subarray(1000),
      });
      assert.equal(patch.status, 202);
      assert.equal(patch.headers.get("range"), `0-${blob.length - 1}`);
      const put = await fetch(withDigest(locationOf(patch, url), digest), { method: "PUT" });
      assert.equal(put.status, 201);
      assert.deepEqual(await readBlob(url, repo, digest), blob);
    } finally {
      await second.close();
    }
  });
});

describe("Push: absolute Locations under publicUrl", () => {
  let registry: TestRegistry;
  const publicUrl = "https://registry.example.com";
  before(async () => {
    registry = await startTestRegistry({ publicUrl });
  });
  after(async () => {
    await registry.close();
  });

  test("POST then PUT: with publicUrl set, every Location is absolute under it", async () => {
    const { url } = registry;
    const blob = randomBytes(42);
    const digest = digestOf(blob);
    const post = await fetch(`${url}/v2/public/repo/blobs/uploads/`, { method: "POST" });
    assert.equal(post.status, 202);
    const location = post.headers.get("location") ?? "";
    assert.match(location, new RegExp(`^${publicUrl}/v2/public/repo/blobs/uploads/[0-9a-f-]{36}$`));
    // The client keeps the path and query and talks to the registry it knows.
    const path = new URL(location).pathname;
    const stale = await fetch(`${url}${path}`, {
      method: "PATCH",
      headers: { "Content-Range": "5-9" },
      body: blob.subarray(5, 10),
    });
    assert.equal(stale.status, 416);
    assert.equal(stale.headers.get("location"), location);
    await stale.arrayBuffer();
    const put = await fetch(`${url}${path}?digest=${digest}`, { method: "PUT", body: blob });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get("location"), `${publicUrl}/v2/public/repo/blobs/${digest}`);
    const manifest = await fetch(`${url}/v2/public/repo/manifests/latest`, {
      method: "PUT",
      headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" },
      body: JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest, size: blob.length },
        layers: [],
      }),
    });
    assert.equal(manifest.status, 201);
    assert.match(
      manifest.headers.get("location") ?? "",
      new RegExp(`^${publicUrl}/v2/public/repo/manifests/sha256:`),
    );
  });
});
