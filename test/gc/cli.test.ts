import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { ScrubReport } from "../../src/gc/scrub.js";
import {
  descriptorOf,
  digestOf,
  imageManifest,
  pushBlob,
  pushImage,
  putManifest,
  types,
} from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

/** Runs the berth CLI as a real process (asynchronously: the registry under test keeps serving). */
function berth(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env } }, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
    });
  });
}

/** `berth gc`, `berth scrub` and `berth fsck` against a data directory a running berth serves. */
describe("berth gc, scrub and fsck", () => {
  let registry: TestRegistry;
  const blobFile = (digest: string) =>
    join(registry.dataDir, "blobs", "sha256", digest.slice("sha256:".length));
  const status = async (path: string) => (await fetch(`${registry.url}${path}`)).status;

  before(async () => {
    registry = await startTestRegistry({ gc: { enabled: false } });
  });
  after(async () => {
    await registry?.close();
  });

  test("gc --dry-run prints what would go and how many bytes; gc then removes it, online", async () => {
    const loose = await pushImage(registry.url, "cli/gc", "digest");
    await pushImage(registry.url, "cli/gc", "v1");
    await new Promise((resolve) => setTimeout(resolve, 10));
    const dry = await berth(["gc", "--dry-run", "--grace", "0", "--delete-untagged", "-d", registry.dataDir]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`would remove manifest cli/gc ${loose.digest} .*\\(untagged\\)`));
    assert.match(dry.stdout, new RegExp(`would remove blob ${loose.layer.digest} 64 bytes`));
    const summary =
      /gc would remove: (\d+) manifests, (\d+) blob links, (\d+) blobs \((?:[\d.]+ \w+ \()?(\d+) bytes\)?\)/.exec(
        dry.stdout,
      );
    assert.ok(summary, dry.stdout);
    assert.equal(summary[1], "1");
    assert.equal(summary[3], "3", "manifest bytes, config and layer");
    assert.equal(Number(summary[4]), loose.manifest.length + loose.config.size + loose.layer.size);
    assert.equal(await status(`/v2/cli/gc/manifests/${loose.digest}`), 200, "dry run removed nothing");

    const real = await berth(["gc", "--grace", "0", "--delete-untagged", "-d", registry.dataDir]);
    assert.equal(real.code, 0, real.stderr);
    assert.match(real.stdout, /gc removed: 1 manifests, 2 blob links, 3 blobs/);
    assert.equal(await status(`/v2/cli/gc/manifests/${loose.digest}`), 404);
    assert.equal(await status(`/v2/cli/gc/manifests/v1`), 200);
  });

  test("scrub re-hashes everything; a corrupt or missing blob names repositories and tags and exits 1", async () => {
    const clean = await berth(["scrub", "-d", registry.dataDir]);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /scrub: \d+ blobs and \d+ manifests checked .* 0 problems/);

    // One layer shared by two repositories, tagged differently; the config of a third image lost.
    const shared = randomBytes(300);
    const layerDigest = await pushBlob(registry.url, "cli/app", shared);
    await pushBlob(registry.url, "cli/other", shared);
    const configBytes = Buffer.from('{"architecture":"amd64","os":"linux"}');
    await pushBlob(registry.url, "cli/app", configBytes);
    await pushBlob(registry.url, "cli/other", configBytes);
    const manifest = imageManifest(descriptorOf(types.ociConfig, configBytes), [
      descriptorOf(types.ociLayer, shared),
    ]);
    assert.equal((await putManifest(registry.url, "cli/app", "v1", manifest)).status, 201);
    assert.equal((await putManifest(registry.url, "cli/other", "latest", manifest)).status, 201);
    const lost = await pushImage(registry.url, "cli/app", "v2");

    await writeFile(blobFile(layerDigest), randomBytes(300));
    await rm(blobFile(lost.config.digest));

    const found = await berth(["scrub", "-d", registry.dataDir]);
    assert.equal(found.code, 1, found.stdout + found.stderr);
    assert.match(
      found.stdout,
      new RegExp(
        `digest-mismatch ${layerDigest}: bytes hash to sha256:[0-9a-f]{64}; affects cli/app \\(tags: v1\\); cli/other \\(tags: latest\\)`,
      ),
    );
    assert.match(
      found.stdout,
      new RegExp(
        `missing ${lost.config.digest}: missing from the blob store; affects cli/app \\(tags: v2\\)`,
      ),
    );
    assert.match(found.stdout, /2 problems/);

    const json = await berth(["scrub", "--json", "-d", registry.dataDir]);
    assert.equal(json.code, 1);
    const report = JSON.parse(json.stdout.slice(0, json.stdout.lastIndexOf("\nscrub:"))) as ScrubReport;
    assert.deepEqual(
      report.problems.map((p) => [p.kind, p.digest, p.affected]).sort(),
      [
        [
          "digest-mismatch",
          layerDigest,
          [
            { repository: "cli/app", tags: ["v1"] },
            { repository: "cli/other", tags: ["latest"] },
          ],
        ],
        ["missing", lost.config.digest, [{ repository: "cli/app", tags: ["v2"] }]],
      ].sort(),
    );
    // The corrupt file repaired, for the next test; the lost config stays lost.
    await writeFile(blobFile(layerDigest), shared);
  });

  test("fsck reports pointers to missing content (exit 1) and lists unreferenced content", async () => {
    const image = await pushImage(registry.url, "cli/fsck", "v1");
    const orphan = randomBytes(40);
    await writeFile(blobFile(digestOf(orphan)), orphan);
    await rm(blobFile(image.layer.digest));
    const result = await berth(["fsck", "-d", registry.dataDir]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stdout, new RegExp(`blob-without-bytes ${image.layer.digest}`));
    assert.match(result.stdout, new RegExp(`unreferenced: bytes not recorded ${digestOf(orphan)}`));
    assert.match(result.stdout, /fsck: \d+ problems; unreferenced: 1 unrecorded blobs/);
  });
});
