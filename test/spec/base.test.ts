import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { errorCodes } from "../helpers/oci.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

describe("API: determining support and endpoint dispatch", () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startTestRegistry();
  });
  after(async () => {
    await registry.close();
  });

  test("Determining Support: GET /v2/ is 200 with Docker-Distribution-API-Version", async () => {
    const response = await fetch(`${registry.url}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.match(response.headers.get("content-type") ?? "", /^application\/json/);
    assert.deepEqual(await response.json(), {});
  });

  test("Determining Support: GET /v2 without the trailing slash is 200 too", async () => {
    const response = await fetch(`${registry.url}/v2`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    await response.arrayBuffer();
  });

  test("Determining Support: HEAD /v2/ is 200 with no body", async () => {
    const response = await fetch(`${registry.url}/v2/`, { method: "HEAD" });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.equal((await response.arrayBuffer()).byteLength, 0);
  });

  test("Endpoints: an unknown endpoint under /v2/ is 404 with a spec error body", async () => {
    const response = await fetch(`${registry.url}/v2/repo/nothing-here/x`);
    assert.equal(response.status, 404);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    assert.deepEqual(await errorCodes(response), ["NAME_UNKNOWN"]);
  });

  test("Endpoints: a path outside /v2/ is 404 with a spec error body", async () => {
    const response = await fetch(`${registry.url}/v3/`);
    assert.equal(response.status, 404);
    assert.deepEqual(await errorCodes(response), ["NAME_UNKNOWN"]);
  });

  test("Endpoints: a method an endpoint does not serve is 405 UNSUPPORTED with a JSON body", async () => {
    const cases: [string, string][] = [
      ["DELETE", "/v2/"],
      ["POST", "/v2/repo/tags/list"],
      ["PATCH", "/v2/repo/manifests/latest"],
      ["PUT", `/v2/repo/blobs/sha256:${"a".repeat(64)}`],
      ["GET", "/v2/repo/blobs/uploads/"],
      ["DELETE", "/v2/_catalog"],
      ["PUT", `/v2/repo/referrers/sha256:${"a".repeat(64)}`],
    ];
    for (const [method, path] of cases) {
      const response = await fetch(`${registry.url}${path}`, { method });
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.deepEqual(await errorCodes(response), ["UNSUPPORTED"], `${method} ${path}`);
    }
  });

  test("Pulling manifests: a <name> outside the spec's grammar is 400 NAME_INVALID", async () => {
    for (const name of ["Upper/case", "trailing-", "a__-b", "-lead"]) {
      const response = await fetch(`${registry.url}/v2/${name}/tags/list`);
      assert.equal(response.status, 400, name);
      assert.deepEqual(await errorCodes(response), ["NAME_INVALID"], name);
    }
  });
});
