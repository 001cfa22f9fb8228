import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";
import { type Certificates, makeCertificates } from "../helpers/certificates.js";
import { requireClients } from "../helpers/clients.js";
import type { PushedImage } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { getManifest } from "../helpers/registry-http.js";
import { pushUpstreamImage } from "./upstreams.js";

/** Per-upstream TLS settings against an HTTPS upstream (berth with a certificate from a private CA). */
describe("pull-through from an HTTPS upstream", requireClients("openssl"), () => {
  let dir: string;
  let certs: Certificates;
  let upstream: RunningBerth;
  let proxy: TestRegistry;
  let image: PushedImage;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-proxy-tls-"));
    certs = makeCertificates(dir, "unused");
    const dataDir = join(dir, "upstream");
    // Seeded over plain HTTP, then reopened on the same data with TLS on.
    const seeding = await startBerth(
      loadConfig({ file: { dataDir, listen: "127.0.0.1:0", log: { level: "warn" } }, env: {} }),
    );
    image = await pushUpstreamImage(`http://${seeding.address}`, "team/app", "v1");
    await seeding.close();
    upstream = await startBerth(
      loadConfig({
        file: {
          dataDir,
          listen: "127.0.0.1:0",
          log: { level: "warn" },
          tls: { cert: certs.serverCert, key: certs.serverKey },
        },
        env: {},
      }),
    );
    const url = `https://${upstream.address}`;
    proxy = await startTestRegistry({
      log: { level: "fatal" },
      proxy: {
        upstreams: [
          { prefix: "trusted", url, tls: { caFile: certs.caCert } },
          { prefix: "untrusted", url },
          { prefix: "skip", url, tls: { insecureSkipVerify: true } },
        ],
      },
    });
  });
  after(async () => {
    await proxy?.close();
    await upstream?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("tls.caFile trusts the upstream's private CA", async () => {
    const manifest = await getManifest(proxy.url, "trusted/team/app", "v1");
    assert.equal(manifest.status, 200, manifest.body.toString());
    assert.equal(manifest.digest, image.digest);
    const layer = await fetch(`${proxy.url}/v2/trusted/team/app/blobs/${image.layer.digest}`);
    assert.equal(layer.status, 200);
    assert.equal(Buffer.from(await layer.arrayBuffer()).length, image.layer.size);
  });

  test("without it the certificate is refused: a 502 that names the TLS problem", async () => {
    const response = await fetch(`${proxy.url}/v2/untrusted/team/app/manifests/v1`);
    assert.equal(response.status, 502);
    const body = (await response.json()) as { errors: { message: string }[] };
    assert.match(body.errors[0]?.message ?? "", /CERT|certificate/i);
  });

  test("tls.insecureSkipVerify accepts it", async () => {
    const manifest = await getManifest(proxy.url, "skip/team/app", "v1");
    assert.equal(manifest.status, 200);
    assert.equal(manifest.digest, image.digest);
  });
});
