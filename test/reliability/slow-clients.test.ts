import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import type { BerthConfigInput } from "../../src/config/config.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { call, describeAnswer, errorCodes, pushImage, sha256, sleep } from "../helpers/reliability.js";

/**
 * Slow and abusive clients: slowloris headers, bodies trickled a byte a second, clients that vanish
 * mid-upload, and floods of upload sessions. berth must cut them off within its configured limits, clean
 * up after them, and keep serving everyone else meanwhile.
 */

const strict: BerthConfigInput = {
  http: { headersTimeoutSeconds: 2, idleTimeoutSeconds: 2, minBodyBytesPerSecond: 64 },
};

async function withRegistry(config: BerthConfigInput, body: (registry: TestRegistry) => Promise<void>) {
  const registry = await startTestRegistry(config);
  try {
    await body(registry);
  } finally {
    await registry.close();
  }
}

function open(registry: TestRegistry): Promise<Socket> {
  const [host, port] = [registry.host.split(":")[0], Number(registry.host.split(":")[1])];
  return new Promise((resolve, reject) => {
    const socket = connect(port, host, () => resolve(socket));
    socket.once("error", reject);
  });
}

/** Resolves with the milliseconds until the server closed the socket (and what it sent). */
function closed(socket: Socket): Promise<{ ms: number; data: string }> {
  const started = Date.now();
  let data = "";
  socket.on("data", (chunk) => {
    data += chunk.toString();
  });
  return new Promise((resolve) => {
    socket.once("close", () => resolve({ ms: Date.now() - started, data }));
    socket.on("error", () => undefined);
  });
}

/** A normal client's request, timed: others must stay fast while the abusers hang on. */
async function timedPull(registry: TestRegistry, repository: string): Promise<number> {
  const started = Date.now();
  const answer = await call(registry.url, "GET", `/v2/${repository}/manifests/latest`, {
    headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
    timeoutMs: 5000,
  });
  assert.equal(answer.status, 200, describeAnswer(answer));
  return Date.now() - started;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("slowloris headers are cut off at the headers timeout; other clients are served meanwhile", async () => {
  await withRegistry(strict, async (registry) => {
    await pushImage(registry.url, "slow/app", "latest", [randomBytes(1024)]);
    const sockets = await Promise.all(Array.from({ length: 50 }, () => open(registry)));
    const ends = sockets.map(closed);
    const drip = setInterval(() => {
      for (const socket of sockets) if (!socket.destroyed) socket.write(`X-Drip-${Date.now()}: 1\r\n`);
    }, 300);
    for (const socket of sockets) socket.write("GET /v2/ HTTP/1.1\r\nHost: berth\r\n");
    try {
      for (let i = 0; i < 10; i++) assert.ok((await timedPull(registry, "slow/app")) < 2000);
      const results = await Promise.all(ends);
      for (const { ms, data } of results) {
        assert.ok(ms < 5000, `a slowloris connection lived ${ms} ms with a 2 s headers timeout`);
        if (data !== "") assert.match(data, /^HTTP\/1\.1 408/);
      }
    } finally {
      clearInterval(drip);
      for (const socket of sockets) socket.destroy();
    }
  });
});

test("a body trickled at 1 byte/s is cut off, the upload stays usable, others are unaffected", async () => {
  await withRegistry(strict, async (registry) => {
    await pushImage(registry.url, "slow/app", "latest", [randomBytes(1024)]);
    const started = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
    const location = started.headers.get("location") ?? "";
    const socket = await open(registry);
    const end = closed(socket);
    socket.write(
      `PATCH ${location} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/octet-stream\r\n` +
        "Content-Length: 1000\r\nContent-Range: 0-999\r\n\r\n",
    );
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write("x");
    }, 1000);
    try {
      for (let i = 0; i < 5; i++) assert.ok((await timedPull(registry, "slow/app")) < 2000);
      const { ms } = await end;
      assert.ok(ms < 7000, `a 1 byte/s body kept its connection for ${ms} ms`);
    } finally {
      clearInterval(drip);
      socket.destroy();
    }
    // Nothing was acknowledged, and the session's lock was released: it takes a proper chunk now.
    const status = await call(registry.url, "GET", location);
    assert.equal(status.headers.get("range"), "0-0");
    const blob = randomBytes(3000);
    const patched = await call(registry.url, "PATCH", location, {
      body: blob,
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${blob.length - 1}` },
      timeoutMs: 5000,
    });
    assert.equal(patched.status, 202, describeAnswer(patched));
    const closedUpload = await call(registry.url, "PUT", `${location}?digest=${sha256(blob)}`);
    assert.equal(closedUpload.status, 201, describeAnswer(closedUpload));
  });
});

test("a client that disconnects mid-upload leaves nothing acknowledged and nothing behind", async () => {
  await withRegistry(strict, async (registry) => {
    const uploads = join(registry.dataDir, "uploads");
    const blob = randomBytes(1024 * 1024);
    const digest = sha256(blob);

    // Chunked: the session survives at its last acknowledged offset, its partial bytes are dropped.
    const started = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
    const location = started.headers.get("location") ?? "";
    const id = location.split("/").pop() ?? "";
    const socket = await open(registry);
    const end = closed(socket);
    socket.write(
      `PATCH ${location} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Length: ${blob.length}\r\nContent-Range: 0-${blob.length - 1}\r\n\r\n`,
    );
    socket.write(blob.subarray(0, 300 * 1024));
    await sleep(200);
    socket.destroy();
    await end;
    await waitFor(
      async () => (await stat(join(uploads, id))).size === 0,
      3000,
      "partial chunk bytes to be dropped",
    );
    const status = await call(registry.url, "GET", location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get("range"), "0-0");
    const patched = await call(registry.url, "PATCH", location, {
      body: blob,
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${blob.length - 1}` },
    });
    assert.equal(patched.status, 202, describeAnswer(patched));
    assert.equal((await call(registry.url, "PUT", `${location}?digest=${digest}`)).status, 201);

    // Monolithic: the scratch file is removed.
    const other = randomBytes(1024 * 1024);
    const monolithic = await open(registry);
    const monolithicEnd = closed(monolithic);
    monolithic.write(
      `POST /v2/slow/app/blobs/uploads/?digest=${sha256(other)} HTTP/1.1\r\nHost: berth\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${other.length}\r\n\r\n`,
    );
    monolithic.write(other.subarray(0, 200 * 1024));
    await sleep(200);
    monolithic.destroy();
    await monolithicEnd;
    await waitFor(async () => (await readdir(uploads)).length === 0, 3000, "the scratch file to be removed");
    const head = await call(registry.url, "HEAD", `/v2/slow/app/blobs/${sha256(other)}`);
    assert.equal(head.status, 404);
  });
});

test("thousands of upload sessions: the limit holds under a burst, expired sessions make room again", async (t) => {
  await withRegistry({ limits: { uploadSessions: 1000, uploadIdleSeconds: 6 } }, async (registry) => {
    await pushImage(registry.url, "slow/app", "latest", [randomBytes(1024)]);
    let accepted = 0;
    let refused = 0;
    const burst = async () => {
      for (let i = 0; i < 30; i++) {
        const answer = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
        if (answer.status === 202) accepted++;
        else {
          assert.equal(answer.status, 429, describeAnswer(answer));
          assert.deepEqual(errorCodes(answer), ["TOOMANYREQUESTS"]);
          refused++;
        }
      }
    };
    const pulls = (async () => {
      // Generous: this registry shares its process and two cores with 50 flooding clients (and, in the
      // suite, other test files); the point is that pulls are answered, not queued behind the flood.
      for (let i = 0; i < 20; i++) {
        const ms = await timedPull(registry, "slow/app");
        assert.ok(ms < 5000, `a pull took ${ms} ms during the flood`);
      }
    })();
    const burstStarted = Date.now();
    await Promise.all([...Array.from({ length: 40 }, burst), pulls]);
    const burstMs = Date.now() - burstStarted;
    assert.equal(accepted + refused, 1200);
    assert.ok((await readdir(join(registry.dataDir, "uploads"))).length <= 1000);
    assert.ok(accepted >= 990, `only ${accepted} sessions opened`);
    // Sessions expire after 6 s; a burst slower than that (a loaded machine) may legitimately reuse
    // their room, and then the registry is not full below: the exact checks need a fast burst.
    if (burstMs >= 6000) {
      t.diagnostic(`the burst took ${burstMs} ms; exact limit checks skipped`);
      return;
    }
    assert.ok(accepted <= 1000, `${accepted} sessions opened with a limit of 1000`);
    assert.ok(refused >= 200);

    // Past the idle limit, the abandoned sessions no longer count: a new one is accepted at once.
    await sleep(6500);
    const fresh = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
    assert.equal(fresh.status, 202, describeAnswer(fresh));
    const left = (await readdir(join(registry.dataDir, "uploads"))).length;
    assert.ok(left <= 10, `expired sessions kept ${left} files`);
  });
});

test("abandoned upload sessions expire and free their room and their files", async () => {
  await withRegistry({ limits: { uploadSessions: 20, uploadIdleSeconds: 2 } }, async (registry) => {
    // Each abandoned session got a first chunk, so each has a scratch file (they are created by the first write).
    for (let i = 0; i < 20; i++) {
      const answer = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
      assert.equal(answer.status, 202, describeAnswer(answer));
      const chunk = await call(registry.url, "PATCH", answer.headers.get("location") ?? "", {
        body: "abandoned",
        headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-8" },
      });
      assert.equal(chunk.status, 202, describeAnswer(chunk));
    }
    assert.equal((await readdir(join(registry.dataDir, "uploads"))).length, 20);
    const refused = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
    assert.equal(refused.status, 429, describeAnswer(refused));
    assert.equal(refused.headers.get("retry-after"), "30");
    await sleep(2500);
    const fresh = await call(registry.url, "POST", "/v2/slow/app/blobs/uploads/");
    assert.equal(fresh.status, 202, describeAnswer(fresh));
    // The expired sessions' files are gone; the fresh session has none before its first write.
    assert.deepEqual(await readdir(join(registry.dataDir, "uploads")), []);
  });
});
