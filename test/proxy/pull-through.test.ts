import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { ProxyCounts } from "../../src/proxy/proxy-metrics.js";
import { requireClients } from "../helpers/clients.js";
import {
  type ContainersSandbox,
  createContainersSandbox,
  seedRegistry,
} from "../helpers/containers-sandbox.js";
import { digestOf, errorCodes, type PushedImage, pushImage, types } from "../helpers/oci.js";
import {
  buildOciLayout,
  type OciLayoutFixture,
  readLayoutBlob,
  readLayoutRef,
} from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { assertManifestComplete, getManifest } from "../helpers/registry-http.js";
import {
  type DistributionUpstream,
  needsDistribution,
  pushUpstreamImage,
  startDistribution,
} from "./upstreams.js";

/**
 * berth as a pull-through cache of a real CNCF Distribution on loopback: misses and hits, tag
 * re-validation, outages with and without stale serving, the read-only rule, and skopeo through it.
 */
describe("pull-through cache of a Distribution upstream", needsDistribution, () => {
  let upstream: DistributionUpstream;
  let proxy: TestRegistry;

  before(async () => {
    upstream = await startDistribution();
    const base = { url: upstream.url, timeoutSeconds: 5 };
    proxy = await startTestRegistry({
      proxy: {
        upstreams: [
          { ...base, prefix: "dist", tagTtlSeconds: 3600 },
          { ...base, prefix: "hub", libraryPrefix: true },
          { ...base, prefix: "fresh", tagTtlSeconds: 0 },
          { ...base, prefix: "stale", tagTtlSeconds: 0, serveStale: true },
          { ...base, prefix: "strict", tagTtlSeconds: 0, serveStale: false },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
  });

  const counts = (prefix: string): ProxyCounts => {
    const metrics = proxy.server.registry.proxy?.metrics;
    assert.ok(metrics, "the registry has a pull-through cache");
    return metrics.of(prefix);
  };
  const blob = (repo: string, digest: string) => fetch(`${proxy.url}/v2/${repo}/blobs/${digest}`);

  /** Pulls manifest, config and layer as a client does; asserts every byte is the upstream's. */
  const pull = async (repo: string, tag: string, image: PushedImage) => {
    const manifest = await getManifest(proxy.url, repo, tag);
    assert.equal(manifest.status, 200, manifest.body.toString());
    assert.equal(manifest.digest, image.digest);
    assert.equal(manifest.contentType, types.ociManifest);
    assert.deepEqual(manifest.body, image.manifest);
    for (const descriptor of [image.config, image.layer]) {
      const response = await blob(repo, descriptor.digest);
      assert.equal(response.status, 200);
      const bytes = Buffer.from(await response.arrayBuffer());
      assert.equal(digestOf(bytes), descriptor.digest);
      assert.equal(response.headers.get("docker-content-digest"), descriptor.digest);
    }
  };

  test("first pull misses and fetches upstream; the second is served from the cache", async () => {
    const image = await pushUpstreamImage(upstream.url, "team/app", "v1");
    await pull("dist/team/app", "v1", image);
    const first = counts("dist");
    assert.equal(first.misses, 3, "manifest, config and layer came from the upstream");
    assert.equal(first.hits, 0);
    const contentBytes = image.manifest.length + image.config.size + image.layer.size;
    assert.equal(first.upstreamBytes, contentBytes);

    await pull("dist/team/app", "v1", image);
    await pull("dist/team/app", image.digest, image);
    const second = counts("dist");
    assert.equal(second.misses, 3, "nothing more was fetched");
    assert.equal(second.upstreamBytes, contentBytes);
    assert.equal(second.upstreamRequests, first.upstreamRequests, "the upstream was not even asked");
    assert.equal(second.hits, 6);

    // The same counters reach Prometheus, labelled by upstream prefix.
    const exposition = await (await fetch(`${proxy.url}/metrics`)).text();
    const sample = (series: string) =>
      Number(
        exposition
          .split("\n")
          .find((line) => line.startsWith(`${series} `))
          ?.slice(series.length + 1),
      );
    assert.equal(sample('berth_proxy_requests_total{upstream="dist",result="miss"}'), 3);
    assert.equal(sample('berth_proxy_requests_total{upstream="dist",result="hit"}'), 6);
    assert.equal(sample('berth_proxy_upstream_bytes_total{upstream="dist"}'), contentBytes);

    // HEAD answers from the cache too, with the same size.
    const head = await fetch(`${proxy.url}/v2/dist/team/app/blobs/${image.layer.digest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(image.layer.size));
  });

  test("a HEAD of an uncached blob asks the upstream and stores nothing", async () => {
    const image = await pushUpstreamImage(upstream.url, "team/head", "v1");
    const head = await fetch(`${proxy.url}/v2/dist/team/head/blobs/${image.layer.digest}`, {
      method: "HEAD",
    });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-length"), String(image.layer.size));
    const before = counts("dist").misses;
    const response = await blob("dist/team/head", image.layer.digest);
    assert.equal(digestOf(Buffer.from(await response.arrayBuffer())), image.layer.digest);
    assert.equal(counts("dist").misses, before + 1, "the GET after the HEAD still had to fetch");
  });

  test("bytes cached for one repository serve another only once the upstream confirms it has them", async () => {
    const image = await pushUpstreamImage(upstream.url, "team/shared", "v1");
    await pull("dist/team/shared", "v1", image);
    // Same upstream repository through another prefix: a HEAD upstream, then linked, no bytes moved.
    const before = counts("fresh");
    const linked = await blob("fresh/team/shared", image.layer.digest);
    assert.equal(digestOf(Buffer.from(await linked.arrayBuffer())), image.layer.digest);
    const after = counts("fresh");
    assert.equal(after.upstreamBytes, before.upstreamBytes);
    assert.equal(after.misses, before.misses);
    // A repository that does not have the blob upstream does not get it from the cache (isolation).
    await pushUpstreamImage(upstream.url, "team/elsewhere", "v1");
    const isolated = await blob("dist/team/elsewhere", image.layer.digest);
    assert.equal(isolated.status, 404);
    assert.deepEqual(await errorCodes(isolated), ["BLOB_UNKNOWN"]);
  });

  test("official images: hub/<name> is library/<name> upstream, deeper paths are unchanged", async () => {
    const official = await pushUpstreamImage(upstream.url, "library/alpine", "3");
    const user = await pushUpstreamImage(upstream.url, "someone/tool", "1");
    await pull("hub/alpine", "3", official);
    await pull("hub/someone/tool", "1", user);
  });

  test("unknown content upstream stays 404 with the spec's error codes", async () => {
    const manifest = await fetch(`${proxy.url}/v2/dist/team/app/manifests/nope`);
    assert.equal(manifest.status, 404);
    assert.deepEqual(await errorCodes(manifest), ["MANIFEST_UNKNOWN"]);
    const missing = await blob("dist/team/app", `sha256:${"1".repeat(64)}`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await errorCodes(missing), ["BLOB_UNKNOWN"]);
    const bare = await fetch(`${proxy.url}/v2/dist/manifests/v1`);
    assert.equal(bare.status, 404);
  });

  test("repositories outside every prefix stay ordinary: a missing blob is BLOB_UNKNOWN", async () => {
    const local = await pushImage(proxy.url, "team/local", "v1");
    const unknown = `sha256:${"a".repeat(64)}`;
    const missing = await blob("team/local", unknown);
    assert.equal(missing.status, 404);
    assert.deepEqual(await errorCodes(missing), ["BLOB_UNKNOWN"]);
    const head = await fetch(`${proxy.url}/v2/team/local/blobs/${unknown}`, { method: "HEAD" });
    assert.equal(head.status, 404);
    const present = await blob("team/local", local.layer.digest);
    assert.equal(present.status, 200);
    assert.equal(digestOf(Buffer.from(await present.arrayBuffer())), local.layer.digest);
  });

  test("proxied repositories are read-only: pushes and deletes answer 403 DENIED", async () => {
    const upload = await fetch(`${proxy.url}/v2/dist/team/app/blobs/uploads/`, { method: "POST" });
    assert.equal(upload.status, 403);
    assert.deepEqual(await errorCodes(upload), ["DENIED"]);
    const manifest = await fetch(`${proxy.url}/v2/dist/team/new/manifests/v1`, {
      method: "PUT",
      headers: { "Content-Type": types.ociManifest },
      body: "{}",
    });
    assert.equal(manifest.status, 403);
    const body = (await manifest.json()) as { errors: { code: string; message: string }[] };
    assert.equal(body.errors[0]?.code, "DENIED");
    assert.match(body.errors[0]?.message ?? "", /read-only pull-through cache/);
    const removal = await fetch(`${proxy.url}/v2/dist/team/app/manifests/v1`, { method: "DELETE" });
    assert.equal(removal.status, 403);
    // Other repositories stay writable.
    await pushImage(proxy.url, "local/app", "v1");
  });

  test("the catalog lists proxied repositories once something was cached", async () => {
    const response = await fetch(`${proxy.url}/v2/_catalog`);
    const { repositories } = (await response.json()) as { repositories: string[] };
    assert.ok(repositories.includes("dist/team/app"), repositories.join(","));
    assert.ok(repositories.includes("hub/alpine"), repositories.join(","));
    assert.ok(!repositories.includes("dist/never/pulled"));
  });

  test("a tag moved upstream is seen once the TTL passed; before, the cached digest is served", async () => {
    const v1 = await pushUpstreamImage(upstream.url, "team/moving", "latest");
    await pull("dist/team/moving", "latest", v1);
    await pull("fresh/team/moving", "latest", v1);
    const freshBefore = counts("fresh");

    // Re-validation of an unchanged tag is a HEAD only: no manifest bytes move.
    await pull("fresh/team/moving", "latest", v1);
    const unchanged = counts("fresh");
    assert.equal(unchanged.upstreamBytes, freshBefore.upstreamBytes);
    assert.equal(unchanged.misses, freshBefore.misses);
    assert.ok(unchanged.upstreamRequests > freshBefore.upstreamRequests, "the tag was re-checked upstream");

    const v2 = await pushUpstreamImage(upstream.url, "team/moving", "latest");
    assert.notEqual(v2.digest, v1.digest);
    // TTL 3600 s: the cache keeps serving what it validated, without asking.
    const requests = counts("dist").upstreamRequests;
    await pull("dist/team/moving", "latest", v1);
    assert.equal(counts("dist").upstreamRequests, requests);
    // TTL 0: every pull by tag re-validates, and this one finds the tag moved.
    await pull("fresh/team/moving", "latest", v2);
    // The old manifest stays addressable by digest (immutable).
    await pull("fresh/team/moving", v1.digest, v1);
  });

  test("upstream down: stale content with serveStale, a clear 502 without; back up, fresh again", async () => {
    const image = await pushUpstreamImage(upstream.url, "team/outage", "v1");
    await pull("stale/team/outage", "v1", image);
    await pull("strict/team/outage", "v1", image);
    const uncached = await pushUpstreamImage(upstream.url, "team/outage", "v2");

    await upstream.stop();
    try {
      const staleBefore = counts("stale").staleServed;
      await pull("stale/team/outage", "v1", image);
      assert.equal(counts("stale").staleServed, staleBefore + 1);

      const refused = await fetch(`${proxy.url}/v2/strict/team/outage/manifests/v1`);
      assert.equal(refused.status, 502);
      const body = (await refused.json()) as { errors: { code: string; message: string }[] };
      assert.equal(body.errors[0]?.code, "UNAVAILABLE");
      assert.match(
        body.errors[0]?.message ?? "",
        new RegExp(`upstream registry ${upstream.url} is unavailable`),
      );
      assert.match(body.errors[0]?.message ?? "", /serveStale is off/);
      // By digest, content is immutable and needs no upstream even without stale serving.
      await pull("strict/team/outage", image.digest, image);

      for (const prefix of ["stale", "strict"]) {
        for (const reference of ["v2", uncached.digest]) {
          const missing = await fetch(`${proxy.url}/v2/${prefix}/team/outage/manifests/${reference}`);
          assert.equal(missing.status, 502, `${prefix}: nothing cached for ${reference}`);
          const error = (await missing.json()) as { errors: { code: string; message: string }[] };
          assert.equal(error.errors[0]?.code, "UNAVAILABLE");
          assert.match(error.errors[0]?.message ?? "", /nothing cached to serve instead/);
        }
        const layer = await blob(`${prefix}/team/outage`, uncached.layer.digest);
        assert.equal(layer.status, 502);
        await layer.arrayBuffer();
      }
    } finally {
      await upstream.start();
    }
    await pull("strict/team/outage", "v1", image);
    await pull("strict/team/outage", "v2", uncached);
  });

  describe("skopeo through the proxy", requireClients("skopeo", "unshare"), () => {
    let layout: OciLayoutFixture;
    let sandbox: ContainersSandbox;
    let scratch: string;
    before(async () => {
      layout = await buildOciLayout("proxy");
      sandbox = await createContainersSandbox();
      scratch = await mkdtemp(join(tmpdir(), "berth-proxy-skopeo-"));
      await seedRegistry(sandbox, upstream.host, layout);
    });
    after(async () => {
      await layout?.remove();
      await sandbox?.remove();
      if (scratch) await rm(scratch, { recursive: true, force: true });
    });

    test("copies a two-platform index out through the proxy with every digest unchanged", async () => {
      const out = join(scratch, "multiarch");
      const before = counts("dist");
      await sandbox.skopeo([
        "copy",
        "--all",
        "--src-tls-verify=false",
        `docker://${proxy.host}/dist/seed/multiarch:v1`,
        `oci:${out}:copied`,
      ]);
      const ref = await readLayoutRef(out, "copied");
      assert.equal(ref.digest, layout.multiarch.index.digest);
      for (const image of layout.multiarch.images) {
        for (const descriptor of [image.manifest, image.config, ...image.layers]) {
          assert.deepEqual(
            await readLayoutBlob(out, descriptor.digest),
            await readLayoutBlob(layout.dir, descriptor.digest),
          );
        }
      }
      const after = counts("dist");
      assert.ok(after.misses > before.misses, "content came from the upstream");
      // Now berth alone can serve the whole image: a complete manifest with every blob cached.
      await upstream.stop();
      try {
        const again = join(scratch, "again");
        await sandbox.skopeo([
          "copy",
          "--all",
          "--src-tls-verify=false",
          `docker://${proxy.host}/dist/seed/multiarch@${layout.multiarch.index.digest}`,
          `oci:${again}:copied`,
        ]);
        assert.equal((await readLayoutRef(again, "copied")).digest, layout.multiarch.index.digest);
      } finally {
        await upstream.start();
      }
      await assertManifestComplete(proxy.url, "dist/seed/docker", "v1");
    });
  });
});
