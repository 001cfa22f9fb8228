import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { requireClients } from "../helpers/clients.js";
import { type ContainersSandbox, createContainersSandbox } from "../helpers/containers-sandbox.js";
import { buildOciLayout, type OciLayoutFixture } from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const needs = requireClients("skopeo", "unshare");

describe("skopeo against berth's policies", () => {
  let registry: TestRegistry;
  let layout: OciLayoutFixture;
  let sandbox: ContainersSandbox;

  before(async () => {
    if (needs.skip) return;
    registry = await startTestRegistry({
      policies: {
        rules: [{ name: "releases", repositories: ["team/**"], immutableTags: ["v*"], quota: { tags: 3 } }],
      },
    });
    layout = await buildOciLayout("skopeo-policy");
    sandbox = await createContainersSandbox();
  });

  after(async () => {
    await registry?.close();
    await layout?.remove();
    await sandbox?.remove();
  });

  const copy = (source: string, destination: string, allowFailure = false) =>
    sandbox.skopeo(
      ["copy", "--dest-tls-verify=false", source, `docker://${registry.host}/${destination}`],
      allowFailure ? { allowFailure: true } : {},
    );

  test("skopeo copy onto an immutable tag that would move fails with berth's message", needs, async () => {
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/app:v1");
    // The same image again is fine: the tag does not move.
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/app:v1");
    const moved = await copy(`oci:${layout.dir}:${layout.multiarch.tag}`, "team/app:v1", true);
    assert.notEqual(moved.code, 0, "skopeo must fail");
    assert.match(moved.stderr, /denied/i);
    // skopeo logs the registry's message inside a quoted msg="...", escaping its quotes.
    assert.match(
      moved.stderr.replaceAll('\\"', '"'),
      /tag "v1" of repository "team\/app" is immutable \(rule "releases", immutableTags "v\*"\)/,
      moved.stderr,
    );
    // A new tag for the other image is fine.
    await copy(`oci:${layout.dir}:${layout.multiarch.tag}`, "team/app:v2");
  });

  test("skopeo copy past the tag quota fails with the quota message", needs, async () => {
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/quota:a");
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/quota:b");
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/quota:c");
    const refused = await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/quota:d", true);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr.replaceAll('\\"', '"'),
      /quota exceeded for repository "team\/quota" \(rule "releases"\)/,
      refused.stderr,
    );
  });
});
