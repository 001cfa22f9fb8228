import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type BerthConfig, loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";
import { basic, writeHtpasswd } from "../helpers/auth.js";
import { type Certificates, makeCertificates } from "../helpers/certificates.js";
import { requireClients } from "../helpers/clients.js";

const examples = fileURLToPath(new URL("../../../examples/", import.meta.url));

interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function httpsGet(
  url: string,
  options: { ca: string; cert?: string; key?: string; authorization?: string },
): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(options.ca),
        ...(options.cert ? { cert: readFileSync(options.cert) } : {}),
        ...(options.key ? { key: readFileSync(options.key) } : {}),
        headers: options.authorization ? { Authorization: options.authorization } : {},
        agent: false,
      },
      (response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

// openssl makes the certificates; Node has no API to issue one.
const needs = requireClients("openssl");

describe("TLS and client certificates (examples/tls.yaml)", () => {
  let dir: string;
  let certs: Certificates;
  let htpasswd: string;
  const running: RunningBerth[] = [];

  const startTls = async (requireClientCert: boolean) => {
    const example = loadConfig({ file: join(examples, "tls.yaml"), env: {} });
    const config: BerthConfig = loadConfig({
      file: {
        ...example,
        dataDir: join(dir, `data-${requireClientCert}`),
        listen: "127.0.0.1:0",
        log: { level: "warn" },
        tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.caCert, requireClientCert },
        auth: { ...example.auth, htpasswd },
      },
      env: {},
    });
    const server = await startBerth(config);
    running.push(server);
    return `https://${server.address}`;
  };

  before(async () => {
    if (needs.skip) return;
    dir = await mkdtemp(join(tmpdir(), "berth-tls-"));
    certs = makeCertificates(dir, "ci-robot");
    htpasswd = await writeHtpasswd(dir, { dana: "dana-secret" });
  });
  after(async () => {
    await Promise.all(running.map((server) => server.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test(
    "serves HTTPS; a client certificate authenticates as its CN, a password still works",
    needs,
    async () => {
      const url = await startTls(false);
      const withCert = await httpsGet(`${url}/v2/_catalog`, {
        ca: certs.caCert,
        cert: certs.clientCert,
        key: certs.clientKey,
      });
      assert.equal(withCert.status, 200);
      // The catalog needs an identity here (no anonymous grants): the certificate is one.
      const noCert = await httpsGet(`${url}/v2/`, { ca: certs.caCert });
      assert.equal(noCert.status, 401);
      assert.equal(noCert.headers["www-authenticate"], 'Basic realm="berth"');
      const password = await httpsGet(`${url}/v2/`, {
        ca: certs.caCert,
        authorization: basic("dana", "dana-secret"),
      });
      assert.equal(password.status, 200);
    },
  );

  test("with requireClientCert, a connection without a certificate is refused", needs, async () => {
    const url = await startTls(true);
    await assert.rejects(httpsGet(`${url}/v2/`, { ca: certs.caCert }));
    const withCert = await httpsGet(`${url}/v2/`, {
      ca: certs.caCert,
      cert: certs.clientCert,
      key: certs.clientKey,
    });
    assert.equal(withCert.status, 200);
  });
});
