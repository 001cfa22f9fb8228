import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open, readdir, rm, stat, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import {
  type Answer,
  BerthProcess,
  call,
  corruptBlobs,
  describeAnswer,
  errorCodes,
  freePort,
  imageManifest,
  manifestType,
  pushImage,
  sha256,
} from "../helpers/reliability.js";

const run = promisify(execFile);

/** Mounts a 64 MiB tmpfs, or returns why it cannot (not root, no mount permission). */
async function mountSmallFilesystem(dir: string): Promise<string | undefined> {
  try {
    await run("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", dir]);
    return undefined;
  } catch (error) {
    return `cannot mount a size-limited tmpfs here: ${(error as Error).message.trim()}`;
  }
}

/** Writes until the filesystem refuses, to leave it (nearly) no free byte. */
async function fillFilesystem(path: string): Promise<void> {
  const handle = await open(path, "w");
  try {
    for (const size of [1 << 20, 1 << 16, 4096, 512, 1]) {
      const chunk = Buffer.alloc(size, 1);
      for (;;) {
        try {
          await handle.write(chunk);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === "ENOSPC") break;
          throw error;
        }
      }
    }
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** A 5xx with the spec's JSON error body, and its message says what ran out. */
function assertOutOfSpace(answer: Answer, what: string): void {
  assert.ok(answer.status >= 500 && answer.status < 600, `${what}: ${describeAnswer(answer)}`);
  assert.match(answer.headers.get("content-type") ?? "", /application\/json/, what);
  assert.ok(errorCodes(answer), `${what}: no spec error body: ${describeAnswer(answer)}`);
  assert.match(answer.body.toString(), /space|full/i, `${what}: the message does not say storage is full`);
}

test("a push that runs out of disk gets a 5xx spec error, leaves nothing partial, reads go on", {
  timeout: 120_000,
}, async (t) => {
  const root = await mkdtemp(join(tmpdir(), "berth-diskfull-"));
  const mountPoint = join(root, "mnt");
  await mkdir(mountPoint);
  const refusal = await mountSmallFilesystem(mountPoint);
  if (refusal !== undefined) {
    await rm(root, { recursive: true, force: true });
    t.skip(refusal);
    return;
  }
  const dataDir = join(mountPoint, "data");
  const filler = join(mountPoint, "filler");
  const berth = new BerthProcess({ dataDir, port: await freePort() });
  try {
    await berth.start();
    const url = berth.url;
    const repository = "full/app";
    const layer = randomBytes(256 * 1024);
    const manifestDigest = await pushImage(url, repository, "before", [layer]);

    // 1. One monolithic blob larger than the whole filesystem.
    const huge = randomBytes(80 * 1024 * 1024);
    const hugeDigest = sha256(huge);
    const monolithic = await call(url, "POST", `/v2/${repository}/blobs/uploads/?digest=${hugeDigest}`, {
      body: huge,
      headers: { "Content-Type": "application/octet-stream" },
    });
    assertOutOfSpace(monolithic, "monolithic push");
    assert.deepEqual(
      await readdir(join(dataDir, "uploads")),
      [],
      "the failed upload's bytes were left behind",
    );

    // 2. A chunk larger than the filesystem: the session stays at its acknowledged offset, space is freed.
    const started = await call(url, "POST", `/v2/${repository}/blobs/uploads/`);
    assert.equal(started.status, 202, describeAnswer(started));
    const location = started.headers.get("location") ?? "";
    const patch = await call(url, "PATCH", location, {
      body: huge,
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${huge.length - 1}` },
    });
    assertOutOfSpace(patch, "chunk upload");
    const status = await call(url, "GET", location);
    assert.equal(status.status, 204, describeAnswer(status));
    assert.equal(status.headers.get("range"), "0-0");
    for (const name of await readdir(join(dataDir, "uploads"))) {
      assert.equal((await stat(join(dataDir, "uploads", name))).size, 0, "unacknowledged bytes kept on disk");
    }
    const free = await statfs(mountPoint);
    assert.ok(free.bavail * free.bsize > 48 * 1024 * 1024, "space was not freed after the failed chunk");
    assert.equal((await call(url, "DELETE", location)).status, 204);

    // 3. A full disk: manifests and blobs are refused, reads are served.
    await fillFilesystem(filler);
    const config = Buffer.from(JSON.stringify({ architecture: "arm64", os: "linux" }));
    const smallBlob = await call(url, "POST", `/v2/${repository}/blobs/uploads/?digest=${sha256(config)}`, {
      body: config,
      headers: { "Content-Type": "application/octet-stream" },
    });
    assertOutOfSpace(smallBlob, "small blob on a full disk");
    const otherConfig = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux" }));
    const manifest = imageManifest(otherConfig, [layer]);
    const refusedManifest = await call(url, "PUT", `/v2/${repository}/manifests/during`, {
      body: Buffer.concat([manifest, Buffer.from(" ".repeat(8192))]),
      headers: { "Content-Type": manifestType },
    });
    assertOutOfSpace(refusedManifest, "manifest on a full disk");

    const byTag = await call(url, "GET", `/v2/${repository}/manifests/before`, {
      headers: { Accept: manifestType },
    });
    assert.equal(byTag.status, 200, describeAnswer(byTag));
    assert.equal(sha256(byTag.body), manifestDigest);
    const blob = await call(url, "GET", `/v2/${repository}/blobs/${sha256(layer)}`);
    assert.equal(blob.status, 200);
    assert.ok(blob.body.equals(layer));
    const tags = await call(url, "GET", `/v2/${repository}/tags/list`);
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ["before"]);
    assert.equal((await call(url, "GET", "/v2/_catalog")).status, 200);
    assert.equal((await call(url, "HEAD", `/v2/${repository}/blobs/${hugeDigest}`)).status, 404);

    // 4. Space freed: pushes work again, including the manifest that was refused.
    await rm(filler);
    const after = await pushImage(url, repository, "after", [randomBytes(1024 * 1024)]);
    assert.equal(await manifestOf(url, repository, "after"), after);
    const retried = await pushImage(url, repository, "during", [layer], otherConfig);
    assert.equal(retried, sha256(manifest));

    assert.ok(berth.alive, "berth exited");
    assert.deepEqual(await corruptBlobs(dataDir), []);
    assert.deepEqual(await readdir(join(dataDir, "tmp")), [], "partial files left in tmp/");
    assert.deepEqual(await readdir(join(dataDir, "uploads")), [], "upload files left behind");
  } finally {
    await berth.stop("SIGKILL");
    await run("umount", [mountPoint]).catch(() => run("umount", ["-l", mountPoint]));
    await rm(root, { recursive: true, force: true });
  }
});

async function manifestOf(url: string, repository: string, tag: string): Promise<string> {
  const answer = await call(url, "GET", `/v2/${repository}/manifests/${tag}`, {
    headers: { Accept: manifestType },
  });
  return sha256(answer.body);
}
