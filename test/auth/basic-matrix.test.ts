import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { basic, users } from "../helpers/auth.js";
import { errorCodes } from "../helpers/oci.js";
import {
  assertRefusal,
  authorizationFor,
  callers,
  expectedStatus,
  type Fixture,
  families,
  familyRequest,
  send,
  startFixture,
} from "./matrix.js";

describe("basic auth: the access matrix", () => {
  let fixture: Fixture;
  before(async () => {
    fixture = await startFixture({ mode: "basic", rateLimit: { failures: 0 } });
  });
  after(() => fixture?.close());

  for (const caller of callers) {
    for (const family of families) {
      const status = expectedStatus("basic", caller, family);
      test(`${caller} on ${family}: ${status}`, async () => {
        const response = await send(fixture, familyRequest(family, fixture), authorizationFor(caller));
        if (status === 401) await assertRefusal(response, 401, 'Basic realm="berth"');
        else if (status === 403) await assertRefusal(response, 403);
        else {
          assert.equal(response.status, status);
          if (status === 404) assert.deepEqual(await errorCodes(response), ["MANIFEST_UNKNOWN"]);
        }
      });
    }
  }

  test("the catalog lists only what the caller may pull", async () => {
    const list = async (authorization?: string) => {
      const response = await send(fixture, { method: "GET", path: "/v2/_catalog" }, authorization);
      assert.equal(response.status, 200);
      return ((await response.json()) as { repositories: string[] }).repositories;
    };
    assert.deepEqual(await list(), ["public/base"]);
    assert.deepEqual(await list(basic("reader", users.reader)), ["public/base", "team/app", "team/src"]);
    assert.deepEqual(await list(basic("outsider", users.outsider)), ["public/base"]);
    assert.deepEqual(await list(basic("admin", users.admin)), ["public/base", "team/app", "team/src"]);
  });

  test("a filtered catalog pages with n and last", async () => {
    const response = await send(
      fixture,
      { method: "GET", path: "/v2/_catalog?n=1" },
      basic("reader", users.reader),
    );
    assert.deepEqual(await response.json(), { repositories: ["public/base"] });
    assert.equal(response.headers.get("link"), '</v2/_catalog?last=public%2Fbase&n=1>; rel="next"');
  });

  test("a mount from a repository the caller may not pull silently becomes an upload", async () => {
    const outsider = basic("outsider", users.outsider);
    for (const query of [`mount=${fixture.sourceBlob}&from=team/src`, `mount=${fixture.sourceBlob}`]) {
      const response = await send(
        fixture,
        { method: "POST", path: `/v2/scratch/x/blobs/uploads/?${query}` },
        outsider,
      );
      assert.equal(response.status, 202);
      assert.match(response.headers.get("location") ?? "", /^\/v2\/scratch\/x\/blobs\/uploads\//);
    }
    const blob = await send(
      fixture,
      { method: "HEAD", path: `/v2/scratch/x/blobs/${fixture.sourceBlob}` },
      outsider,
    );
    assert.equal(blob.status, 404);
    // The writer may pull the source, so the same mount succeeds.
    const writer = basic("writer", users.writer);
    const mounted = await send(
      fixture,
      { method: "POST", path: `/v2/team/other/blobs/uploads/?mount=${fixture.sourceBlob}&from=team/src` },
      writer,
    );
    assert.equal(mounted.status, 201);
  });

  test("a writer may delete nothing; an admin deletes", async () => {
    const path = `/v2/team/app/blobs/${fixture.sourceBlob}`;
    await assertRefusal(await send(fixture, { method: "DELETE", path }, basic("writer", users.writer)), 403);
    // The matrix's mount linked the blob into team/app.
    const response = await send(fixture, { method: "DELETE", path }, basic("admin", users.admin));
    assert.equal(response.status, 202);
  });

  test("empty basic credentials (what containers/image sends without any) count as anonymous", async () => {
    const empty = basic("", "");
    assert.equal(
      (await send(fixture, { method: "GET", path: "/v2/public/base/tags/list" }, empty)).status,
      200,
    );
    const response = await send(fixture, { method: "GET", path: "/v2/team/app/tags/list" }, empty);
    await assertRefusal(response, 401, 'Basic realm="berth"');
  });

  test("health endpoints stay open", async () => {
    assert.equal((await fetch(`${fixture.registry.url}/healthz`)).status, 200);
  });
});
