import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { requireClients } from "../helpers/clients.js";
import { type ContainersSandbox, createContainersSandbox } from "../helpers/containers-sandbox.js";
import {
  buildOciLayout,
  DOCKER_MANIFEST,
  type OciLayoutFixture,
  readLayoutBlob,
  readLayoutRef,
  sha256,
} from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { assertManifestComplete, getManifest } from "../helpers/registry-http.js";

const needs = requireClients("skopeo", "unshare");

describe("skopeo against berth", () => {
  let registry: TestRegistry;
  let layout: OciLayoutFixture;
  let sandbox: ContainersSandbox;
  let scratch: string;

  before(async () => {
    if (needs.skip) return;
    registry = await startTestRegistry({ deletes: { enabled: true } });
    layout = await buildOciLayout("skopeo");
    sandbox = await createContainersSandbox();
    scratch = await mkdtemp(join(tmpdir(), "berth-skopeo-out-"));
  });

  after(async () => {
    await registry?.close();
    await layout?.remove();
    await sandbox?.remove();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  const docker = (repoAndTag: string) => `docker://${registry.host}/${repoAndTag}`;
  const copy = (source: string, destination: string, ...flags: string[]) =>
    sandbox.skopeo([
      "copy",
      "--src-tls-verify=false",
      "--dest-tls-verify=false",
      ...flags,
      source,
      destination,
    ]);
  const inspectRaw = async (reference: string) =>
    (await sandbox.skopeo(["inspect", "--raw", "--tls-verify=false", reference])).stdout;

  // Several tests start from the image already being in berth; push it once, on first need.
  let imagePushed: Promise<unknown> | undefined;
  const pushImage = () => {
    imagePushed ??= copy(`oci:${layout.dir}:${layout.image.tag}`, docker("skopeo/image:v1"), "--all");
    return imagePushed;
  };

  test("copies a three-layer OCI image in and back out with its digest unchanged", needs, async () => {
    await pushImage();
    const raw = await inspectRaw(docker("skopeo/image:v1"));
    assert.equal(sha256(raw), layout.image.manifest.digest);
    await assertManifestComplete(registry.url, "skopeo/image", "v1", layout.image.manifest.digest);

    const out = join(scratch, "image");
    await copy(docker("skopeo/image:v1"), `oci:${out}:copied`, "--all");
    const ref = await readLayoutRef(out, "copied");
    assert.equal(ref.digest, layout.image.manifest.digest);
    for (const blob of [layout.image.config, ...layout.image.layers]) {
      assert.deepEqual(await readLayoutBlob(out, blob.digest), await readLayoutBlob(layout.dir, blob.digest));
    }
  });

  test("copies a two-platform index with --all, keeping the index digest", needs, async () => {
    const { index, images } = layout.multiarch;
    await copy(`oci:${layout.dir}:${layout.multiarch.tag}`, docker("skopeo/multiarch:v1"), "--all");
    const raw = await inspectRaw(docker("skopeo/multiarch:v1"));
    assert.equal(sha256(raw), index.digest);
    const served = await assertManifestComplete(registry.url, "skopeo/multiarch", "v1", index.digest);
    assert.deepEqual(
      served.manifests?.map((m) => [m.digest, m.platform?.architecture]),
      images.map((image) => [image.manifest.digest, image.platform.architecture]),
    );

    const out = join(scratch, "multiarch");
    await copy(docker("skopeo/multiarch:v1"), `oci:${out}:copied`, "--all");
    assert.equal((await readLayoutRef(out, "copied")).digest, index.digest);
    for (const image of images) {
      const manifest = await readLayoutBlob(out, image.manifest.digest);
      assert.equal(sha256(manifest), image.manifest.digest);
    }
  });

  test("copies a Docker schema 2 image byte for byte and back", needs, async () => {
    await copy(`dir:${layout.docker.dir}`, docker("skopeo/docker:v1"));
    const served = await getManifest(registry.url, "skopeo/docker", "v1", DOCKER_MANIFEST);
    assert.equal(served.contentType, DOCKER_MANIFEST);
    await assertManifestComplete(registry.url, "skopeo/docker", "v1", layout.docker.manifest.digest);

    const out = join(scratch, "docker");
    await copy(docker("skopeo/docker:v1"), `dir:${out}`);
    assert.deepEqual(
      await readFile(join(out, "manifest.json")),
      await readFile(join(layout.docker.dir, "manifest.json")),
    );
  });

  test("converts an OCI image to Docker schema 2 with --format v2s2 and pulls it back", needs, async () => {
    await copy(`oci:${layout.dir}:${layout.image.tag}`, docker("skopeo/converted:v1"), "--format", "v2s2");
    const raw = await inspectRaw(docker("skopeo/converted:v1"));
    const manifest = JSON.parse(raw) as { mediaType: string; layers: { digest: string }[] };
    assert.equal(manifest.mediaType, DOCKER_MANIFEST);
    // Conversion changes media types only; the gzip layer bytes are reused as they are.
    assert.deepEqual(
      manifest.layers.map((l) => l.digest),
      layout.image.layers.map((l) => l.digest),
    );
    await assertManifestComplete(registry.url, "skopeo/converted", "v1", sha256(raw));

    const out = join(scratch, "converted");
    await copy(docker("skopeo/converted:v1"), `dir:${out}`);
    assert.equal(await readFile(join(out, "manifest.json"), "utf8"), raw);
  });

  test("mounts blobs from another repository when its cache knows where they are", needs, async () => {
    await pushImage();
    // The sandbox's blob-info cache recorded skopeo/image as holding these blobs.
    const { stderr } = await copy(
      `oci:${layout.dir}:${layout.image.tag}`,
      docker("skopeo/mounted:v1"),
      "--debug",
    );
    // skopeo logs "... mount OK" only after a 201 answer to POST ?mount=&from=.
    const mounted = stderr.split("\n").filter((line) => line.includes("mount OK")).length;
    for (const layer of layout.image.layers) {
      assert.ok(
        stderr.includes(`mount=${encodeURIComponent(layer.digest)}`),
        `skopeo tried no cross-repository mount of ${layer.digest}:\n${stderr}`,
      );
    }
    assert.equal(mounted, layout.image.layers.length, `not every layer was mounted:\n${stderr}`);
    await assertManifestComplete(registry.url, "skopeo/mounted", "v1", layout.image.manifest.digest);
  });

  test("inspect reports digest, platform, layers and config", needs, async () => {
    await pushImage();
    const { stdout } = await sandbox.skopeo(["inspect", "--tls-verify=false", docker("skopeo/image:v1")]);
    const info = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(info.Digest, layout.image.manifest.digest);
    assert.equal(info.Architecture, "amd64");
    assert.equal(info.Os, "linux");
    assert.deepEqual(
      info.Layers,
      layout.image.layers.map((l) => l.digest),
    );
    assert.ok((info.RepoTags as string[]).includes("v1"), `RepoTags: ${JSON.stringify(info.RepoTags)}`);

    const config = await sandbox.skopeo([
      "inspect",
      "--config",
      "--raw",
      "--tls-verify=false",
      docker("skopeo/image:v1"),
    ]);
    assert.equal(sha256(config.stdout), layout.image.config.digest);
  });

  test("list-tags lists every tag of a repository", needs, async () => {
    await pushImage();
    for (const tag of ["v2", "latest"]) {
      await copy(docker("skopeo/image:v1"), docker(`skopeo/image:${tag}`));
    }
    const { stdout } = await sandbox.skopeo([
      "list-tags",
      "--tls-verify=false",
      `docker://${registry.host}/skopeo/image`,
    ]);
    const listed = JSON.parse(stdout) as { Repository: string; Tags: string[] };
    assert.equal(listed.Repository, `${registry.host}/skopeo/image`);
    assert.deepEqual([...listed.Tags].sort(), ["latest", "v1", "v2"]);
  });

  test("delete removes a manifest", needs, async () => {
    await pushImage();
    await copy(`oci:${layout.dir}:${layout.image.tag}`, docker("skopeo/delete-me:v1"));
    await sandbox.skopeo(["delete", "--tls-verify=false", docker("skopeo/delete-me:v1")]);

    const byDigest = await getManifest(registry.url, "skopeo/delete-me", layout.image.manifest.digest);
    assert.equal(byDigest.status, 404, `GET manifest by digest after delete: ${byDigest.status}`);
    const inspect = await sandbox.skopeo(
      ["inspect", "--raw", "--tls-verify=false", docker("skopeo/delete-me:v1")],
      {
        allowFailure: true,
      },
    );
    assert.notEqual(inspect.code, 0, `inspect after delete succeeded: ${inspect.stdout}`);
    assert.match(inspect.stderr, /manifest unknown/i);
    // The same manifest in another repository is untouched.
    assert.equal((await getManifest(registry.url, "skopeo/image", layout.image.manifest.digest)).status, 200);
  });
});
