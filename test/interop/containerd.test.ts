import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ClientError, findBinary, inCI, requireClients, runClient } from "../helpers/clients.js";
import {
  type ContainersSandbox,
  createContainersSandbox,
  seedRegistry,
} from "../helpers/containers-sandbox.js";
import { buildOciLayout, DOCKER_MANIFEST, OCI_INDEX, type OciLayoutFixture } from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { assertManifestComplete } from "../helpers/registry-http.js";

// skopeo seeds berth so containerd pulls what another client pushed.
const needs = requireClients("containerd", "ctr", "skopeo", "unshare");

interface Containerd {
  socket: string;
  stop(): Promise<void>;
}

/**
 * A private containerd: every path it writes is under one temp dir, and the CRI plugin is
 * off so it opens no TCP port and needs no CNI setup.
 */
async function startContainerd(): Promise<Containerd> {
  const bin = findBinary("containerd");
  if (bin === undefined)
    throw new ClientError(`containerd not installed${inCI ? " (required because CI is set)" : ""}`);
  const dir = await mkdtemp(join(tmpdir(), "berth-containerd-"));
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      `[grpc]\n  address = "${socket}"`,
      `[ttrpc]\n  address = "${socket}.ttrpc"`,
      // Its default is /opt/containerd, outside the temp dir.
      `[plugins."io.containerd.internal.v1.opt"]\n  path = "${dir}/opt"`,
      "",
    ].join("\n"),
  );
  const logPath = join(dir, "containerd.log");
  const log = openSync(logPath, "w");
  const child: ChildProcess = spawn(bin, ["--config", config], { stdio: ["ignore", log, log] });
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });

  const deadline = Date.now() + 20_000;
  for (;;) {
    const probe = await runClient("ctr", ["--address", socket, "version"], {
      allowFailure: true,
      timeoutMs: 5_000,
    });
    if (probe.code === 0) break;
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      const tail = (await readFile(logPath, "utf8")).split("\n").slice(-20).join("\n");
      throw new Error(`containerd did not start (${exited ? "it exited" : "timed out"}):\n${tail}`);
    }
    await sleep(50);
  }

  return {
    socket,
    async stop() {
      if (!exited) {
        const gone = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 5_000);
        await gone;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("containerd (ctr) against berth", () => {
  let registry: TestRegistry;
  let layout: OciLayoutFixture;
  let seeder: ContainersSandbox;
  let containerd: Containerd;

  before(async () => {
    if (needs.skip) return;
    registry = await startTestRegistry();
    layout = await buildOciLayout("containerd");
    seeder = await createContainersSandbox();
    await seedRegistry(seeder, registry.host, layout);
    containerd = await startContainerd();
  });

  after(async () => {
    await containerd?.stop();
    await registry?.close();
    await layout?.remove();
    await seeder?.remove();
  });

  const ref = (repoAndTag: string) => `${registry.host}/${repoAndTag}`;
  // The native snapshotter unpacks without overlay mounts, which nested containers may lack.
  const ctr = (args: string[]) => runClient("ctr", ["--address", containerd.socket, ...args]);
  const pull = (reference: string, ...flags: string[]) =>
    ctr(["images", "pull", "--plain-http", "--snapshotter", "native", ...flags, reference]);
  const push = (destination: string, source: string) =>
    ctr(["images", "push", "--plain-http", destination, source]);

  /** The manifest digest containerd recorded for an image, from `ctr images ls`. */
  const storedDigest = async (reference: string) => {
    const { stdout } = await ctr(["images", "ls"]);
    const row = stdout.split("\n").find((line) => line.split(/\s+/)[0] === reference);
    assert.ok(row, `${reference} not in ctr images ls:\n${stdout}`);
    return row.split(/\s+/)[2];
  };

  test("pulls and unpacks an OCI image that skopeo pushed", needs, async () => {
    await pull(ref("seed/image:v1"));
    assert.equal(await storedDigest(ref("seed/image:v1")), layout.image.manifest.digest);
    const { stdout } = await ctr(["images", "check"]);
    const row = stdout.split("\n").find((line) => line.startsWith(ref("seed/image:v1")));
    assert.match(row ?? "", /complete/, `ctr images check:\n${stdout}`);
  });

  test("pushes the pulled image to a new repository unchanged", needs, async () => {
    await pull(ref("seed/image:v1"));
    await push(ref("ctr/image:v1"), ref("seed/image:v1"));
    await assertManifestComplete(registry.url, "ctr/image", "v1", layout.image.manifest.digest);
  });

  test("pulls a two-platform index with all platforms and pushes it unchanged", needs, async () => {
    await pull(ref("seed/multiarch:v1"), "--all-platforms");
    assert.equal(await storedDigest(ref("seed/multiarch:v1")), layout.multiarch.index.digest);
    await push(ref("ctr/multiarch:v1"), ref("seed/multiarch:v1"));
    const served = await assertManifestComplete(
      registry.url,
      "ctr/multiarch",
      "v1",
      layout.multiarch.index.digest,
    );
    assert.equal(served.mediaType, OCI_INDEX);
    assert.equal(served.manifests?.length, 2);
  });

  test("pulls and pushes a Docker schema 2 image unchanged", needs, async () => {
    await pull(ref("seed/docker:v1"));
    assert.equal(await storedDigest(ref("seed/docker:v1")), layout.docker.manifest.digest);
    await push(ref("ctr/docker:v1"), ref("seed/docker:v1"));
    const served = await assertManifestComplete(
      registry.url,
      "ctr/docker",
      "v1",
      layout.docker.manifest.digest,
    );
    assert.equal(served.mediaType, DOCKER_MANIFEST);
  });
});
