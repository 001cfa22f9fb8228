import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { exportJWK, importPKCS8, SignJWT } from "jose";
import { errorCodes } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

type KeyPair = ReturnType<typeof generateKeyPairSync>;

const pem = (pair: KeyPair) => ({
  privateKey: pair.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  publicKey: pair.publicKey.export({ type: "spki", format: "pem" }).toString(),
});

const pullAccess = [{ type: "repository", name: "team/app", actions: ["pull"] }];

interface TokenOptions {
  key: string;
  alg?: string;
  issuer?: string;
  audience?: string;
  expiresIn?: number;
  notBefore?: number;
  kid?: string;
}

async function sign(options: TokenOptions): Promise<string> {
  const alg = options.alg ?? "ES256";
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ access: pullAccess })
    .setProtectedHeader({ alg, ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuer(options.issuer ?? "auth.example.com")
    .setAudience(options.audience ?? "berth.example.com")
    .setSubject("alice")
    .setIssuedAt(now)
    .setNotBefore(now + (options.notBefore ?? 0))
    .setExpirationTime(now + (options.expiresIn ?? 300));
  return jwt.sign(await importPKCS8(options.key, alg));
}

async function status(registry: TestRegistry, token: string): Promise<Response> {
  return fetch(`${registry.url}/v2/team/app/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
}

async function assertInvalid(registry: TestRegistry, token: string): Promise<void> {
  const response = await status(registry, token);
  assert.equal(response.status, 401);
  assert.deepEqual(await errorCodes(response), ["UNAUTHORIZED"]);
  assert.equal(
    response.headers.get("www-authenticate"),
    'Bearer realm="https://auth.example.com/token",service="berth.example.com",scope="repository:team/app:pull",error="invalid_token"',
  );
}

describe("tokens from an external issuer", () => {
  const ec = pem(generateKeyPairSync("ec", { namedCurve: "P-256" }));
  const rsa = pem(generateKeyPairSync("rsa", { modulusLength: 2048 }));
  const jwksKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const other = pem(generateKeyPairSync("ec", { namedCurve: "P-256" }));
  let dir: string;
  let registry: TestRegistry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-tokens-"));
    await writeFile(join(dir, "ec.pem"), ec.publicKey);
    await writeFile(join(dir, "rsa.pem"), rsa.publicKey);
    const jwk = await exportJWK(jwksKey.publicKey);
    await writeFile(
      join(dir, "jwks.json"),
      JSON.stringify({ keys: [{ ...jwk, kid: "jwks-1", alg: "ES256" }] }),
    );
    registry = await startTestRegistry({
      auth: {
        mode: "token",
        token: {
          realm: "https://auth.example.com/token",
          service: "berth.example.com",
          clockSkewSeconds: 5,
          external: {
            issuer: "auth.example.com",
            audience: "berth.example.com",
            publicKeys: [join(dir, "ec.pem"), join(dir, "rsa.pem")],
            jwks: join(dir, "jwks.json"),
          },
        },
      },
    });
  });
  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("accepts ES256 and RS256 tokens from the configured keys and the JWKS", async () => {
    const jwksPrivate = jwksKey.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    for (const token of [
      await sign({ key: ec.privateKey }),
      await sign({ key: rsa.privateKey, alg: "RS256" }),
      await sign({ key: jwksPrivate, kid: "jwks-1" }),
    ]) {
      const response = await status(registry, token);
      // Authorized; the repository simply does not exist.
      assert.equal(response.status, 404);
      assert.deepEqual(await errorCodes(response), ["NAME_UNKNOWN"]);
    }
  });

  test("the built-in token endpoint is off when an external issuer is configured", async () => {
    assert.equal((await fetch(`${registry.url}/token`)).status, 404);
  });

  test("rejects an expired token (past the clock skew)", async () => {
    await assertInvalid(registry, await sign({ key: ec.privateKey, expiresIn: -10 }));
  });

  test("accepts a token expired by less than the clock skew", async () => {
    assert.equal((await status(registry, await sign({ key: ec.privateKey, expiresIn: -2 }))).status, 404);
  });

  test("rejects a token not valid yet", async () => {
    await assertInvalid(registry, await sign({ key: ec.privateKey, notBefore: 120 }));
  });

  test("rejects a tampered token", async () => {
    const token = await sign({ key: ec.privateKey });
    const [header, , signature] = token.split(".");
    const payload = Buffer.from(
      JSON.stringify({
        iss: "auth.example.com",
        aud: "berth.example.com",
        sub: "alice",
        exp: Math.floor(Date.now() / 1000) + 300,
        access: [{ type: "repository", name: "team/app", actions: ["pull", "push", "delete"] }],
      }),
    ).toString("base64url");
    await assertInvalid(registry, `${header}.${payload}.${signature}`);
  });

  test("rejects a wrong audience and a wrong issuer", async () => {
    await assertInvalid(registry, await sign({ key: ec.privateKey, audience: "someone-else" }));
    await assertInvalid(registry, await sign({ key: ec.privateKey, issuer: "evil.example.com" }));
  });

  test("rejects a token signed by an unknown key", async () => {
    await assertInvalid(registry, await sign({ key: other.privateKey }));
  });

  test("rejects the wrong algorithm: HS256 keyed with the public key, and alg none", async () => {
    const now = Math.floor(Date.now() / 1000);
    const hs = await new SignJWT({ access: pullAccess })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer("auth.example.com")
      .setAudience("berth.example.com")
      .setExpirationTime(now + 300)
      .sign(Buffer.from(ec.publicKey));
    await assertInvalid(registry, hs);
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const none = `${encode({ alg: "none" })}.${encode({ iss: "auth.example.com", aud: "berth.example.com", exp: now + 300, access: pullAccess })}.`;
    await assertInvalid(registry, none);
    // An RSA key's token claiming ES256.
    const [, payload, signature] = (await sign({ key: rsa.privateKey, alg: "RS256" })).split(".");
    await assertInvalid(registry, `${encode({ alg: "ES256" })}.${payload}.${signature}`);
  });

  test("garbage in the Authorization header is a plain 401", async () => {
    await assertInvalid(registry, "not-a-jwt");
  });
});

describe("the built-in issuer with a configured RS256 key", () => {
  const rsa = pem(generateKeyPairSync("rsa", { modulusLength: 2048 }));
  let dir: string;
  let registry: TestRegistry;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-tokens-"));
    await writeFile(join(dir, "signing.pem"), rsa.privateKey);
    registry = await startTestRegistry({
      auth: {
        mode: "token",
        policy: { anonymous: [{ repositories: ["**"], actions: ["pull"] }] },
        token: { signingKey: join(dir, "signing.pem"), lifetimeSeconds: 60, issuer: "berth-test" },
      },
    });
  });
  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("issues RS256 tokens with the configured lifetime, which it accepts", async () => {
    const response = await fetch(`${registry.url}/token?service=berth&scope=repository:team/app:pull`);
    const body = (await response.json()) as { token: string; expires_in: number };
    assert.equal(body.expires_in, 60);
    const header = JSON.parse(Buffer.from(body.token.split(".")[0] as string, "base64url").toString()) as {
      alg: string;
    };
    assert.equal(header.alg, "RS256");
    assert.equal((await status(registry, body.token)).status, 404);
  });

  test("rejects its own key's tokens when expired or for another audience", async () => {
    const expired = await sign({
      key: rsa.privateKey,
      alg: "RS256",
      issuer: "berth-test",
      audience: "berth",
      expiresIn: -120,
    });
    const response = await status(registry, expired);
    assert.equal(response.status, 401);
    const wrongAudience = await sign({
      key: rsa.privateKey,
      alg: "RS256",
      issuer: "berth-test",
      audience: "x",
    });
    assert.equal((await status(registry, wrongAudience)).status, 401);
    const good = await sign({ key: rsa.privateKey, alg: "RS256", issuer: "berth-test", audience: "berth" });
    assert.equal((await status(registry, good)).status, 404);
  });
});
