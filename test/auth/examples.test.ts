import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { importPKCS8, SignJWT } from "jose";
import { type BerthConfig, loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";
import { basic, parseChallenge, writeHtpasswd } from "../helpers/auth.js";
import { errorCodes } from "../helpers/oci.js";

const examples = fileURLToPath(new URL("../../../examples/", import.meta.url));
const passwords = { alice: "alice-secret", bob: "bob-secret", carol: "carol-secret" };

/** Loads an example as berth would, then points its files at the test's own and binds a free port. */
function loadExample(name: string, dir: string, files: Record<string, string>): BerthConfig {
  const config = loadConfig({ file: join(examples, name), env: {} });
  const rewritten = JSON.parse(JSON.stringify(config), (_key, value: unknown) =>
    typeof value === "string" && value.startsWith("./") && files[value] !== undefined ? files[value] : value,
  ) as BerthConfig;
  return loadConfig({
    file: { ...rewritten, dataDir: join(dir, "data"), listen: "127.0.0.1:0", log: { level: "warn" } },
    env: {},
  });
}

describe("examples/auth-*.yaml start and do what they say", () => {
  let dir: string;
  let htpasswd: string;
  const running: RunningBerth[] = [];
  const start = async (config: BerthConfig) => {
    const server = await startBerth(config);
    running.push(server);
    return server;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-examples-"));
    htpasswd = await writeHtpasswd(dir, passwords);
  });
  after(async () => {
    await Promise.all(running.map((server) => server.close()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("auth-basic.yaml: admins, groups, anonymous public pulls", async () => {
    const server = await start(loadExample("auth-basic.yaml", dir, { "./htpasswd": htpasswd }));
    const url = `http://${server.address}`;
    const get = (path: string, authorization?: string) =>
      fetch(`${url}${path}`, { headers: authorization ? { Authorization: authorization } : {} });
    assert.equal((await get("/v2/", basic("alice", passwords.alice))).status, 200);
    const anonymous = await get("/v2/team-a/app/tags/list");
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("www-authenticate"), 'Basic realm="berth"');
    // Allowed: the repository is simply empty.
    assert.deepEqual(await errorCodes(await get("/v2/public/x/tags/list")), ["NAME_UNKNOWN"]);
    assert.deepEqual(await errorCodes(await get("/v2/team-a/x/tags/list", basic("bob", passwords.bob))), [
      "NAME_UNKNOWN",
    ]);
    const bobDeletes = await fetch(`${url}/v2/team-a/x/manifests/sha256:${"0".repeat(64)}`, {
      method: "DELETE",
      headers: { Authorization: basic("bob", passwords.bob) },
    });
    assert.deepEqual(await errorCodes(bobDeletes), ["DENIED"]);
  });

  test("auth-token.yaml: a challenge naming publicUrl's token endpoint, and a token that works", async () => {
    const key = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keyFile = join(dir, "token-key.pem");
    await writeFile(keyFile, key.privateKey.export({ type: "pkcs8", format: "pem" }));
    const server = await start(
      loadExample("auth-token.yaml", dir, { "./htpasswd": htpasswd, "./token-key.pem": keyFile }),
    );
    const url = `http://${server.address}`;
    const first = await fetch(`${url}/v2/team-a/app/manifests/v1`, { method: "HEAD" });
    assert.equal(first.status, 401);
    const { params } = parseChallenge(first.headers.get("www-authenticate"));
    assert.deepEqual(params, {
      realm: "http://localhost:5000/token",
      service: "berth",
      scope: "repository:team-a/app:pull",
    });
    const tokenResponse = await fetch(`${url}/token?service=berth&scope=${params.scope}`, {
      headers: { Authorization: basic("bob", passwords.bob) },
    });
    const { token } = (await tokenResponse.json()) as { token: string };
    const retried = await fetch(`${url}/v2/team-a/app/manifests/v1`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.deepEqual(await errorCodes(retried), ["MANIFEST_UNKNOWN"]);
  });

  test("auth-external-token.yaml: tokens signed by the team's auth service", async () => {
    const key = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const publicKey = join(dir, "auth-service.pem");
    await writeFile(publicKey, key.publicKey.export({ type: "spki", format: "pem" }));
    const server = await start(
      loadExample("auth-external-token.yaml", dir, { "./auth-service.pem": publicKey }),
    );
    const url = `http://${server.address}`;
    assert.equal((await fetch(`${url}/token`)).status, 404);
    const token = await new SignJWT({
      access: [{ type: "repository", name: "team-a/app", actions: ["pull"] }],
    })
      .setProtectedHeader({ alg: "RS256" })
      .setIssuer("auth.example.com")
      .setAudience("registry.example.com")
      .setSubject("alice")
      .setExpirationTime("5m")
      .sign(await importPKCS8(key.privateKey.export({ type: "pkcs8", format: "pem" }).toString(), "RS256"));
    const allowed = await fetch(`${url}/v2/team-a/app/tags/list`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.deepEqual(await errorCodes(allowed), ["NAME_UNKNOWN"]);
    const other = await fetch(`${url}/v2/team-b/app/tags/list`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    assert.deepEqual(await errorCodes(other), ["DENIED"]);
    const none = await fetch(`${url}/v2/team-a/app/tags/list`);
    assert.equal(
      none.headers.get("www-authenticate"),
      'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team-a/app:pull"',
    );
  });
});
