import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { ProxyCounts } from "../../src/proxy/proxy-metrics.js";
import { basic, fetchToken, testPolicy, users, writeHtpasswd } from "../helpers/auth.js";
import { digestOf, errorCodes, type PushedImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { getManifest } from "../helpers/registry-http.js";
import { pushUpstreamImage } from "./upstreams.js";

/**
 * Upstreams that want credentials: berth itself with token auth (the WWW-Authenticate Bearer dance,
 * anonymous and with a user) and with basic auth. Policy of both: `public/**` is anonymous pull,
 * `team/**` needs user `reader` (test/helpers/auth.ts).
 */
describe("pull-through from upstreams with authentication", () => {
  let dir: string;
  let tokenUpstream: TestRegistry;
  let shortLivedUpstream: TestRegistry;
  let basicUpstream: TestRegistry;
  let proxy: TestRegistry;
  const images: Record<string, PushedImage> = {};

  /** Pushes as admin, answering the upstream's challenge like a client. */
  const seed = async (registry: TestRegistry, mode: "token" | "basic", repo: string, tag: string) => {
    let authorization = basic("admin", users.admin);
    if (mode === "token") {
      const response = await fetchToken(
        `${registry.url}/token`,
        "berth",
        [`repository:${repo}:pull,push`],
        authorization,
      );
      authorization = `Bearer ${((await response.json()) as { token: string }).token}`;
    }
    return pushUpstreamImage(registry.url, repo, tag, { Authorization: authorization });
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-proxy-auth-"));
    const htpasswd = await writeHtpasswd(dir);
    const auth = { htpasswd, policy: testPolicy, rateLimit: { failures: 0 } };
    tokenUpstream = await startTestRegistry({ auth: { ...auth, mode: "token" } });
    shortLivedUpstream = await startTestRegistry({
      auth: { ...auth, mode: "token", token: { lifetimeSeconds: 1 } },
    });
    basicUpstream = await startTestRegistry({ auth: { ...auth, mode: "basic" } });
    images.publicV1 = await seed(tokenUpstream, "token", "public/base", "v1");
    images.publicV2 = await seed(tokenUpstream, "token", "public/base", "v2");
    images.team = await seed(tokenUpstream, "token", "team/app", "v1");
    images.shortV1 = await seed(shortLivedUpstream, "token", "public/base", "v1");
    images.shortV2 = await seed(shortLivedUpstream, "token", "public/base", "v2");
    images.basicTeam = await seed(basicUpstream, "basic", "team/app", "v1");
    const passwordFile = join(dir, "reader-password");
    await writeFile(passwordFile, `${users.reader}\n`);
    proxy = await startTestRegistry({
      log: { level: "fatal" },
      proxy: {
        upstreams: [
          { prefix: "anon", url: tokenUpstream.url },
          { prefix: "cred", url: tokenUpstream.url, username: "reader", password: users.reader },
          { prefix: "wrong", url: tokenUpstream.url, username: "reader", password: "not-the-password" },
          { prefix: "short", url: shortLivedUpstream.url },
          { prefix: "basic", url: basicUpstream.url, username: "reader", passwordFile },
          { prefix: "basicanon", url: basicUpstream.url },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.close();
    await tokenUpstream?.close();
    await shortLivedUpstream?.close();
    await basicUpstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const counts = (prefix: string): ProxyCounts => {
    const metrics = proxy.server.registry.proxy?.metrics;
    assert.ok(metrics);
    return metrics.of(prefix);
  };

  const pull = async (repo: string, tag: string, image: PushedImage | undefined) => {
    assert.ok(image);
    const manifest = await getManifest(proxy.url, repo, tag);
    assert.equal(manifest.status, 200, manifest.body.toString());
    assert.equal(manifest.digest, image.digest);
    for (const descriptor of [image.config, image.layer]) {
      const response = await fetch(`${proxy.url}/v2/${repo}/blobs/${descriptor.digest}`);
      assert.equal(response.status, 200);
      assert.equal(digestOf(Buffer.from(await response.arrayBuffer())), descriptor.digest);
    }
  };

  test("anonymous Bearer challenge: one token per scope, reused until it expires", async () => {
    await pull("anon/public/base", "v1", images.publicV1);
    assert.equal(counts("anon").tokenFetches, 1, "manifest and blobs shared one token");
    await pull("anon/public/base", "v2", images.publicV2);
    const after = counts("anon");
    assert.equal(after.tokenFetches, 1, "the cached token served a second tag of the same repository");
    assert.equal(after.misses, 6);
  });

  test("a repository the upstream refuses to anonymous callers is unknown to the client", async () => {
    const response = await fetch(`${proxy.url}/v2/anon/team/app/manifests/v1`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
  });

  test("credentialed Bearer challenge: the token carries the configured user", async () => {
    await pull("cred/team/app", "v1", images.team);
    assert.equal(counts("cred").tokenFetches, 1);
    await pull("cred/public/base", "v1", images.publicV1);
    assert.equal(counts("cred").tokenFetches, 2, "another repository is another scope");
  });

  test("wrong upstream credentials are a 502 that says so, not the client's fault", async () => {
    const response = await fetch(`${proxy.url}/v2/wrong/team/app/manifests/v1`);
    assert.equal(response.status, 502);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, "UNAVAILABLE");
    assert.match(body.errors[0]?.message ?? "", /token endpoint answered 401/);
    assert.doesNotMatch(body.errors[0]?.message ?? "", /not-the-password/);
  });

  test("an expired token is replaced by a new one", async () => {
    await pull("short/public/base", "v1", images.shortV1);
    assert.equal(counts("short").tokenFetches, 1);
    // Tokens of this upstream live 1 s; berth stops using them a little before that.
    await sleep(1100);
    await pull("short/public/base", "v2", images.shortV2);
    assert.equal(counts("short").tokenFetches, 2);
  });

  test("basic auth upstream, password from a file; without credentials it refuses", async () => {
    await pull("basic/team/app", "v1", images.basicTeam);
    assert.equal(counts("basic").tokenFetches, 0);
    const refused = await fetch(`${proxy.url}/v2/basicanon/team/app/manifests/v1`);
    assert.equal(refused.status, 404);
    await refused.arrayBuffer();
  });
});
