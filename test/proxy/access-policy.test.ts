import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { basic, users, writeHtpasswd } from "../helpers/auth.js";
import { errorCodes, type PushedImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { pushUpstreamImage } from "./upstreams.js";

/** Proxied repositories are governed by the proxy's own access policy, like any other repository. */
describe("access policy on proxied repositories", () => {
  let dir: string;
  let upstream: TestRegistry;
  let proxy: TestRegistry;
  let image: PushedImage;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-proxy-policy-"));
    upstream = await startTestRegistry();
    image = await pushUpstreamImage(upstream.url, "team/app", "v1");
    proxy = await startTestRegistry({
      log: { level: "fatal" },
      auth: {
        mode: "basic",
        htpasswd: await writeHtpasswd(dir),
        rateLimit: { failures: 0 },
        policy: {
          rules: [
            { repositories: ["mirror/**"], users: ["reader"], actions: ["pull"] },
            { repositories: ["mirror/**", "own/**"], users: ["writer"], actions: ["pull", "push", "delete"] },
          ],
        },
      },
      proxy: { upstreams: [{ prefix: "mirror", url: upstream.url }] },
    });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const manifest = (authorization?: string) =>
    fetch(`${proxy.url}/v2/mirror/team/app/manifests/v1`, {
      headers: authorization ? { Authorization: authorization } : {},
    });

  test("without credentials: 401 before anything is fetched upstream", async () => {
    const response = await manifest();
    assert.equal(response.status, 401);
    assert.deepEqual(await errorCodes(response), ["UNAUTHORIZED"]);
    assert.equal(proxy.server.registry.proxy?.metrics.of("mirror").upstreamRequests, 0);
  });

  test("a user the policy refuses gets 403; one it allows pulls through", async () => {
    const refused = await manifest(basic("outsider", users.outsider));
    assert.equal(refused.status, 403);
    await refused.arrayBuffer();
    const allowed = await manifest(basic("reader", users.reader));
    assert.equal(allowed.status, 200);
    assert.equal(allowed.headers.get("docker-content-digest"), image.digest);
    await allowed.arrayBuffer();
  });

  test("even a user with push and delete grants cannot write to the cache", async () => {
    const push = await fetch(`${proxy.url}/v2/mirror/team/app/blobs/uploads/`, {
      method: "POST",
      headers: { Authorization: basic("writer", users.writer) },
    });
    assert.equal(push.status, 403);
    assert.deepEqual(await errorCodes(push), ["DENIED"]);
    const removal = await fetch(`${proxy.url}/v2/mirror/team/app/manifests/${image.digest}`, {
      method: "DELETE",
      headers: { Authorization: basic("writer", users.writer) },
    });
    assert.equal(removal.status, 403);
    await removal.arrayBuffer();
    const own = await fetch(`${proxy.url}/v2/own/app/blobs/uploads/`, {
      method: "POST",
      headers: { Authorization: basic("writer", users.writer) },
    });
    assert.equal(own.status, 202, "other repositories stay writable");
    await own.arrayBuffer();
  });
});
