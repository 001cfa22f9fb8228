import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { BerthConfigInput } from "../../src/config/config.js";
import { testPolicy, users, writeHtpasswd } from "../helpers/auth.js";
import { requireClients } from "../helpers/clients.js";
import { type ContainersSandbox, createContainersSandbox } from "../helpers/containers-sandbox.js";
import { buildOciLayout, type OciLayoutFixture, sha256 } from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

const needsSkopeo = requireClients("skopeo", "unshare");
const needsPodman = requireClients("podman", "skopeo", "unshare");

const creds = (user: "reader" | "writer" | "admin") => `${user}:${users[user]}`;

/** A registry with auth on, the shared test policy and users, and a sandbox for the clients. */
async function setUp(mode: "basic" | "token") {
  const layout = await buildOciLayout(`auth-${mode}`);
  const dir = await mkdtemp(join(tmpdir(), "berth-interop-auth-"));
  const htpasswd = await writeHtpasswd(dir);
  const registry = await startTestRegistry({
    auth: { mode, htpasswd, policy: testPolicy, rateLimit: { failures: 0 } },
  } as BerthConfigInput);
  return {
    layout,
    registry: {
      ...registry,
      close: async () => {
        await registry.close();
        await rm(dir, { recursive: true, force: true });
      },
    },
  };
}

for (const mode of ["basic", "token"] as const) {
  describe(`skopeo --creds against ${mode} auth`, () => {
    let registry: TestRegistry;
    let layout: OciLayoutFixture;
    let sandbox: ContainersSandbox;

    before(async () => {
      if (needsSkopeo.skip) return;
      ({ registry, layout } = await setUp(mode));
      sandbox = await createContainersSandbox();
    });
    after(async () => {
      await registry?.close();
      await layout?.remove();
      await sandbox?.remove();
    });

    const docker = (repoAndTag: string) => `docker://${registry.host}/${repoAndTag}`;
    const copy = (destination: string, ...flags: string[]) =>
      sandbox.skopeo(
        ["copy", "--dest-tls-verify=false", ...flags, `oci:${layout.dir}:${layout.image.tag}`, destination],
        { allowFailure: true },
      );
    const inspect = (reference: string, ...flags: string[]) =>
      sandbox.skopeo(["inspect", "--raw", "--tls-verify=false", ...flags, reference], { allowFailure: true });

    test("a writer pushes; a reader pulls the same digest", needsSkopeo, async () => {
      const pushed = await copy(docker("team/image:v1"), "--dest-creds", creds("writer"));
      assert.equal(pushed.code, 0, pushed.stderr);
      const pulled = await inspect(docker("team/image:v1"), "--creds", creds("reader"));
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(sha256(pulled.stdout), layout.image.manifest.digest);
    });

    test(
      "without credentials, with a wrong password, or as a reader, a push fails",
      needsSkopeo,
      async () => {
        for (const flags of [[], ["--dest-creds", "writer:wrong"], ["--dest-creds", creds("reader")]]) {
          const result = await copy(docker("team/refused:v1"), ...flags);
          assert.notEqual(result.code, 0, `push with ${flags.join(" ")} succeeded`);
          assert.match(result.stderr, /unauthorized|denied|authentication required/i);
        }
        const result = await inspect(docker("team/image:v1"));
        assert.notEqual(result.code, 0);
      },
    );

    test("anonymous pulls of public/** work", needsSkopeo, async () => {
      const pushed = await copy(docker("public/image:v1"), "--dest-creds", creds("admin"));
      assert.equal(pushed.code, 0, pushed.stderr);
      const pulled = await inspect(docker("public/image:v1"));
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(sha256(pulled.stdout), layout.image.manifest.digest);
    });
  });
}

describe("podman login, push and pull against token auth", () => {
  let registry: TestRegistry;
  let layout: OciLayoutFixture;
  const sandboxes: ContainersSandbox[] = [];
  const freshSandbox = async () => {
    const sandbox = await createContainersSandbox();
    sandboxes.push(sandbox);
    return sandbox;
  };

  before(async () => {
    if (needsPodman.skip) return;
    ({ registry, layout } = await setUp("token"));
    const seeder = await freshSandbox();
    await seeder.skopeo([
      "copy",
      "--dest-tls-verify=false",
      "--dest-creds",
      creds("writer"),
      `oci:${layout.dir}:${layout.image.tag}`,
      `docker://${registry.host}/team/seed:v1`,
    ]);
  });
  after(async () => {
    await registry?.close();
    await layout?.remove();
    await Promise.all(sandboxes.map((s) => s.remove()));
  });

  const ref = (repoAndTag: string) => `${registry.host}/${repoAndTag}`;
  const login = (sandbox: ContainersSandbox, user: string, password: string) =>
    sandbox.podman(["login", "--tls-verify=false", "-u", user, "-p", password, registry.host], {
      allowFailure: true,
    });
  const pull = (sandbox: ContainersSandbox, reference: string) =>
    sandbox.podman(["pull", "--tls-verify=false", "--signature-policy", sandbox.policyPath, reference], {
      allowFailure: true,
    });
  const push = (sandbox: ContainersSandbox, reference: string) =>
    sandbox.podman(["push", "--tls-verify=false", "--signature-policy", sandbox.policyPath, reference], {
      allowFailure: true,
    });

  test("a wrong password fails podman login", needsPodman, async () => {
    const sandbox = await freshSandbox();
    const result = await login(sandbox, "writer", "wrong");
    assert.notEqual(result.code, 0);
  });

  test("a writer logs in, pulls, re-tags and pushes; a reader pulls it back", needsPodman, async () => {
    const writer = await freshSandbox();
    const loggedIn = await login(writer, "writer", users.writer);
    assert.equal(loggedIn.code, 0, loggedIn.stderr);
    const pulled = await pull(writer, ref("team/seed:v1"));
    assert.equal(pulled.code, 0, pulled.stderr);
    await writer.podman(["tag", ref("team/seed:v1"), ref("team/podman:v1")]);
    const pushed = await push(writer, ref("team/podman:v1"));
    assert.equal(pushed.code, 0, pushed.stderr);

    const reader = await freshSandbox();
    assert.equal((await login(reader, "reader", users.reader)).code, 0);
    const readBack = await pull(reader, ref("team/podman:v1"));
    assert.equal(readBack.code, 0, readBack.stderr);
    // The reader may not push, even what it just pulled.
    await reader.podman(["tag", ref("team/podman:v1"), ref("team/by-reader:v1")]);
    const refused = await push(reader, ref("team/by-reader:v1"));
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /denied|unauthorized/i);
  });

  test("without login, a private pull fails", needsPodman, async () => {
    const sandbox = await freshSandbox();
    const result = await pull(sandbox, ref("team/seed:v1"));
    assert.notEqual(result.code, 0);
  });
});
