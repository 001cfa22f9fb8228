import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { basic, fetchToken, users } from "../helpers/auth.js";
import { errorCodes } from "../helpers/oci.js";
import {
  assertRefusal,
  callers,
  expectedStatus,
  type Fixture,
  families,
  startFixture,
  tokenFlow,
} from "./matrix.js";

describe("token auth: the access matrix", () => {
  let fixture: Fixture;
  before(async () => {
    fixture = await startFixture({ mode: "token", rateLimit: { failures: 0 } });
  });
  after(() => fixture?.close());

  for (const caller of callers) {
    for (const family of families) {
      const status = expectedStatus("token", caller, family);
      test(`${caller} on ${family}: ${status}`, async () => {
        const response = await tokenFlow(fixture, caller, family);
        if (status === 401 && caller === "wrong-password") {
          // Refused by the token endpoint itself, with a Basic challenge for the credentials.
          await assertRefusal(response, 401, 'Basic realm="berth"');
        } else if (status === 401) {
          assert.equal(response.status, 401);
          assert.deepEqual(await errorCodes(response), ["UNAUTHORIZED"]);
          assert.match(
            response.headers.get("www-authenticate") ?? "",
            /^Bearer realm="[^"]+\/token",service="berth",scope="[^"]+",error="insufficient_scope"$/,
          );
        } else if (status === 403) await assertRefusal(response, 403);
        else assert.equal(response.status, status);
      });
    }
  }

  const realm = () => `${fixture.registry.url}/token`;
  const claims = (token: string) =>
    JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()) as Record<string, unknown>;

  test("the token grants only what the policy allows, in ES256", async () => {
    const response = await fetchToken(
      realm(),
      "berth",
      [
        "repository:team/app:pull,push,delete",
        "repository:public/base:pull",
        "repository:other/x:pull",
        "registry:catalog:*",
      ],
      basic("reader", users.reader),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("cache-control"), "no-store");
    const { token, expires_in } = (await response.json()) as { token: string; expires_in: number };
    assert.equal(expires_in, 300);
    const header = JSON.parse(Buffer.from(token.split(".")[0] as string, "base64url").toString()) as {
      alg: string;
    };
    assert.equal(header.alg, "ES256");
    const payload = claims(token);
    assert.equal(payload.iss, "berth");
    assert.equal(payload.aud, "berth");
    assert.equal(payload.sub, "reader");
    assert.deepEqual(payload.access, [
      { type: "repository", name: "team/app", actions: ["pull"] },
      { type: "repository", name: "public/base", actions: ["pull"] },
      { type: "registry", name: "catalog", actions: ["*"] },
    ]);
  });

  test("several scopes in one space-separated parameter, and anonymous tokens", async () => {
    const response = await fetchToken(realm(), "berth", [
      "repository:team/app:pull repository:public/base:pull",
    ]);
    const { token } = (await response.json()) as { token: string };
    const payload = claims(token);
    assert.equal(payload.sub, "");
    assert.deepEqual(payload.access, [{ type: "repository", name: "public/base", actions: ["pull"] }]);
  });

  test("a token for one repository does not open another", async () => {
    const response = await fetchToken(
      realm(),
      "berth",
      ["repository:public/base:pull"],
      basic("admin", users.admin),
    );
    const { token } = (await response.json()) as { token: string };
    const other = await fetch(`${fixture.registry.url}/v2/team/app/tags/list`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    // A user's token that lacks the scope: refused as DENIED, with a challenge naming what it needs.
    await assertRefusal(other, 403);
  });

  test("a filtered catalog through a token", async () => {
    const list = async (authorization?: string) => {
      const response = await fetchToken(realm(), "berth", ["registry:catalog:*"], authorization);
      const { token } = (await response.json()) as { token: string };
      const catalog = await fetch(`${fixture.registry.url}/v2/_catalog`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      assert.equal(catalog.status, 200);
      return ((await catalog.json()) as { repositories: string[] }).repositories;
    };
    assert.deepEqual(await list(), ["public/base"]);
    assert.deepEqual(await list(basic("writer", users.writer)), ["public/base", "team/app", "team/src"]);
  });
});
