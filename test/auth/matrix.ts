import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BerthConfigInput, loadConfig } from "../../src/config/config.js";
import { startBerth } from "../../src/server.js";
import { basic, fetchToken, parseChallenge, testPolicy, users, writeHtpasswd } from "../helpers/auth.js";
import { errorCodes, pushBlob, pushImage, types } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/**
 * The access matrix both auth modes are tested against: every kind of caller, every endpoint family,
 * with the exact status a request gets after the client did what the challenge asked.
 */

export const callers = ["anonymous", "reader", "writer", "admin", "wrong-password"] as const;
export type CallerKind = (typeof callers)[number];

export const families = [
  "base",
  "pull",
  "public-pull",
  "push",
  "mount",
  "delete",
  "tags",
  "catalog",
  "referrers",
] as const;
export type Family = (typeof families)[number];

export interface Fixture {
  registry: TestRegistry;
  dir: string;
  manifestDigest: string;
  sourceBlob: string;
  close(): Promise<void>;
}

export interface FamilyRequest {
  method: string;
  path: string;
  /** The scope the challenge must name (none for the base endpoint). */
  scope?: string;
  /** Further scopes a client asks for (the mount source). */
  extraScopes?: string[];
}

const missingDigest = `sha256:${"0".repeat(64)}`;

export function familyRequest(family: Family, fixture: Fixture): FamilyRequest {
  switch (family) {
    case "base":
      return { method: "GET", path: "/v2/" };
    case "pull":
      return { method: "GET", path: "/v2/team/app/manifests/v1", scope: "repository:team/app:pull" };
    case "public-pull":
      return { method: "GET", path: "/v2/public/base/manifests/v1", scope: "repository:public/base:pull" };
    case "push":
      return { method: "POST", path: "/v2/team/app/blobs/uploads/", scope: "repository:team/app:pull,push" };
    case "mount":
      return {
        method: "POST",
        path: `/v2/team/app/blobs/uploads/?mount=${fixture.sourceBlob}&from=team/src`,
        scope: "repository:team/app:pull,push",
        extraScopes: ["repository:team/src:pull"],
      };
    case "delete":
      return {
        method: "DELETE",
        path: `/v2/team/app/manifests/${missingDigest}`,
        scope: "repository:team/app:delete",
      };
    case "tags":
      return { method: "GET", path: "/v2/team/app/tags/list", scope: "repository:team/app:pull" };
    case "catalog":
      return { method: "GET", path: "/v2/_catalog", scope: "registry:catalog:*" };
    case "referrers":
      return {
        method: "GET",
        path: `/v2/team/app/referrers/${fixture.manifestDigest}`,
        scope: "repository:team/app:pull",
      };
  }
}

// Statuses once authorized: pulls 200, upload start 202, mount 201, delete of a missing manifest 404.
const ok: Record<Family, number> = {
  base: 200,
  pull: 200,
  "public-pull": 200,
  push: 202,
  mount: 201,
  delete: 404,
  tags: 200,
  catalog: 200,
  referrers: 200,
};

/** The expected final status of each caller on each family, for basic and token modes. */
export function expectedStatus(mode: "basic" | "token", caller: CallerKind, family: Family): number {
  if (caller === "wrong-password") return 401;
  if (caller === "admin") return ok[family];
  if (caller === "anonymous") {
    if (family === "public-pull" || family === "catalog") return ok[family];
    // An anonymous token is a valid identity for the base endpoint; basic auth has none without credentials.
    if (family === "base") return mode === "token" ? 200 : 401;
    return 401;
  }
  const mayWrite = caller === "writer";
  if (family === "push" || family === "mount") return mayWrite ? ok[family] : 403;
  if (family === "delete") return 403;
  return ok[family];
}

export function authorizationFor(caller: CallerKind): string | undefined {
  if (caller === "anonymous") return undefined;
  if (caller === "wrong-password") return basic("writer", "not-the-password");
  return basic(caller, users[caller]);
}

/** Starts berth on an existing data directory (startTestRegistry always makes a fresh one). */
export async function startOn(dataDir: string, auth: BerthConfigInput["auth"]): Promise<TestRegistry> {
  const config = loadConfig({
    file: { dataDir, listen: "127.0.0.1:0", log: { level: "warn" }, ...(auth ? { auth } : {}) },
    env: {},
  });
  const server = await startBerth(config);
  return {
    url: `http://${server.address}`,
    host: server.address,
    dataDir,
    server,
    close: () => server.close(),
  };
}

/** Starts a registry with the shared policy and seeds it while auth is off for the seeding client. */
export async function startFixture(auth: BerthConfigInput["auth"]): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), "berth-auth-"));
  const htpasswd = await writeHtpasswd(dir);
  // Seeded through an open registry on the same data directory, then reopened with auth on.
  const open = await startTestRegistry();
  const image = await pushImage(open.url, "team/app", "v1");
  await pushImage(open.url, "public/base", "v1");
  const sourceBlob = await pushBlob(open.url, "team/src", randomBytes(32));
  const dataDir = open.dataDir;
  await open.server.close();
  const registry = await startOn(dataDir, {
    htpasswd,
    policy: testPolicy,
    ...auth,
  } as BerthConfigInput["auth"]);
  return {
    registry,
    dir,
    manifestDigest: image.digest,
    sourceBlob,
    async close() {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function send(
  fixture: Fixture,
  request: FamilyRequest,
  authorization?: string,
): Promise<Response> {
  const headers: Record<string, string> = { Accept: types.ociManifest };
  if (authorization) headers.Authorization = authorization;
  return fetch(`${fixture.registry.url}${request.path}`, { method: request.method, headers });
}

/** Asserts a refusal's status, spec error code, and challenge. */
export async function assertRefusal(
  response: Response,
  status: 401 | 403,
  challenge?: string,
): Promise<void> {
  assert.equal(response.status, status);
  assert.deepEqual(await errorCodes(response), [status === 401 ? "UNAUTHORIZED" : "DENIED"]);
  if (challenge !== undefined) assert.equal(response.headers.get("www-authenticate"), challenge);
}

/** Runs one cell of the matrix in token mode, as a client does: challenge, token, retry. */
export async function tokenFlow(fixture: Fixture, caller: CallerKind, family: Family): Promise<Response> {
  const request = familyRequest(family, fixture);
  const first = await send(fixture, request);
  const realm = `${fixture.registry.url}/token`;
  const expectedChallenge = `Bearer realm="${realm}",service="berth"${request.scope ? `,scope="${request.scope}"` : ""}`;
  await assertRefusal(first, 401, expectedChallenge);
  const { params } = parseChallenge(first.headers.get("www-authenticate"));
  const scopes = [...(params.scope ? [params.scope] : []), ...(request.extraScopes ?? [])];
  const tokenResponse = await fetchToken(
    params.realm as string,
    params.service as string,
    scopes,
    authorizationFor(caller),
  );
  if (tokenResponse.status !== 200) return tokenResponse;
  const body = (await tokenResponse.json()) as {
    token: string;
    access_token: string;
    expires_in: number;
    issued_at: string;
  };
  assert.equal(body.token, body.access_token);
  assert.equal(typeof body.expires_in, "number");
  assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
  return send(fixture, request, `Bearer ${body.token}`);
}
