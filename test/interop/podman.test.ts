import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { requireClients } from "../helpers/clients.js";
import {
  type ContainersSandbox,
  createContainersSandbox,
  seedRegistry,
} from "../helpers/containers-sandbox.js";
import {
  buildOciLayout,
  DOCKER_MANIFEST,
  type LayoutImage,
  OCI_MANIFEST,
  type OciLayoutFixture,
} from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { assertManifestComplete } from "../helpers/registry-http.js";

// skopeo seeds berth so podman pulls what another client pushed.
const needs = requireClients("podman", "skopeo", "unshare");

interface PodmanImage {
  Id: string;
  Digest: string;
  Architecture: string;
  Os: string;
  RootFS: { Layers: string[] };
  Config: { Cmd?: string[] };
}

describe("podman against berth", () => {
  let registry: TestRegistry;
  let layout: OciLayoutFixture;
  const sandboxes: ContainersSandbox[] = [];

  /** Every sandbox has its own empty image store, so a pull there must come from berth. */
  const freshSandbox = async () => {
    const sandbox = await createContainersSandbox();
    sandboxes.push(sandbox);
    return sandbox;
  };

  before(async () => {
    if (needs.skip) return;
    registry = await startTestRegistry();
    layout = await buildOciLayout("podman");
    const seeder = await freshSandbox();
    await seedRegistry(seeder, registry.host, layout);
  });

  after(async () => {
    await registry?.close();
    await layout?.remove();
    await Promise.all(sandboxes.map((s) => s.remove()));
  });

  const ref = (repoAndTag: string) => `${registry.host}/${repoAndTag}`;
  const pull = (sandbox: ContainersSandbox, reference: string, ...flags: string[]) =>
    sandbox.podman([
      "pull",
      "--tls-verify=false",
      "--signature-policy",
      sandbox.policyPath,
      ...flags,
      reference,
    ]);
  /** Pushes and returns the manifest digest podman reports for what it sent. */
  const push = async (
    sandbox: ContainersSandbox,
    source: string,
    destination: string,
    ...flags: string[]
  ) => {
    const digestFile = join(sandbox.dir, "pushed-digest");
    const args = [
      "push",
      "--tls-verify=false",
      "--signature-policy",
      sandbox.policyPath,
      "--digestfile",
      digestFile,
    ];
    await sandbox.podman([...args, ...flags, source, destination]);
    return (await readFile(digestFile, "utf8")).trim();
  };
  const inspect = async (sandbox: ContainersSandbox, reference: string): Promise<PodmanImage> => {
    const { stdout } = await sandbox.podman(["image", "inspect", reference]);
    const [image] = JSON.parse(stdout) as PodmanImage[];
    assert.ok(image, `podman image inspect ${reference} returned nothing`);
    return image;
  };
  /** The uncompressed layers that podman stored must be exactly the ones the config names. */
  const assertSameImage = (image: PodmanImage, expected: LayoutImage) => {
    assert.equal(`sha256:${image.Id}`, expected.config.digest);
    assert.deepEqual(image.RootFS.Layers, expected.diffIds);
    assert.equal(image.Architecture, expected.platform.architecture);
    assert.equal(image.Os, expected.platform.os);
  };

  test("pulls an OCI image that skopeo pushed", needs, async () => {
    const sandbox = await freshSandbox();
    await pull(sandbox, ref("seed/image:v1"));
    const image = await inspect(sandbox, ref("seed/image:v1"));
    assertSameImage(image, layout.image);
    assert.equal(image.Digest, layout.image.manifest.digest);
    assert.deepEqual(image.Config.Cmd, ["/usr/local/bin/hello"]);
  });

  test("pushes a re-tagged OCI image to another repository and pulls it back", needs, async () => {
    const pusher = await freshSandbox();
    await pull(pusher, ref("seed/image:v1"));
    await pusher.podman(["tag", ref("seed/image:v1"), ref("podman/retagged:v1")]);
    const digest = await push(pusher, ref("podman/retagged:v1"), ref("podman/retagged:v1"));
    const served = await assertManifestComplete(registry.url, "podman/retagged", "v1", digest);
    assert.equal(served.mediaType, OCI_MANIFEST);
    assert.equal(served.layers?.length, 3);

    const puller = await freshSandbox();
    await pull(puller, ref("podman/retagged:v1"));
    const image = await inspect(puller, ref("podman/retagged:v1"));
    assertSameImage(image, layout.image);
    assert.equal(image.Digest, digest);
  });

  test("pushes with --format v2s2 and pulls the Docker schema 2 image back", needs, async () => {
    const pusher = await freshSandbox();
    await pull(pusher, ref("seed/image:v1"));
    const digest = await push(pusher, ref("seed/image:v1"), ref("podman/v2s2:v1"), "--format", "v2s2");
    const served = await assertManifestComplete(registry.url, "podman/v2s2", "v1", digest);
    assert.equal(served.mediaType, DOCKER_MANIFEST);

    const puller = await freshSandbox();
    await pull(puller, ref("podman/v2s2:v1"));
    const image = await inspect(puller, ref("podman/v2s2:v1"));
    assertSameImage(image, layout.image);
    assert.equal(image.Digest, digest);
  });

  test("pulls a Docker schema 2 image that skopeo pushed", needs, async () => {
    const sandbox = await freshSandbox();
    await pull(sandbox, ref("seed/docker:v1"));
    const image = await inspect(sandbox, ref("seed/docker:v1"));
    assertSameImage(image, layout.docker);
    assert.equal(image.Digest, layout.docker.manifest.digest);
  });

  test("picks each platform out of a two-platform index", needs, async () => {
    for (const expected of layout.multiarch.images) {
      const sandbox = await freshSandbox();
      const { platform } = expected;
      const platformFlag = [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
      await pull(sandbox, ref("seed/multiarch:v1"), "--platform", platformFlag);
      assertSameImage(await inspect(sandbox, ref("seed/multiarch:v1")), expected);
    }
  });
});
