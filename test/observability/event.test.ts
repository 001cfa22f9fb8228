import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadConfig } from "../../src/config/config.js";
import { newEvent, repositoryMatcher, toCloudEvent } from "../../src/events/event.js";

describe("event model", () => {
  test("repository globs: * and ? within a segment, ** across segments", () => {
    const matches = repositoryMatcher(["team-a/**", "base/*", "tools/v?"]);
    for (const yes of ["team-a/app", "team-a/x/y/z", "base/debian", "tools/v1"]) assert.ok(matches(yes), yes);
    for (const no of ["team-b/app", "team-a", "base/debian/slim", "tools/v10", "xbase/debian", "base.x/y"])
      assert.ok(!matches(no), no);
    // Regex metacharacters in a pattern are literal.
    assert.ok(repositoryMatcher(["a.b/c"])("a.b/c"));
    assert.ok(!repositoryMatcher(["a.b/c"])("axb/c"));
    assert.ok(repositoryMatcher([])("anything/at/all"));
  });

  test("a CloudEvent carries the Distribution event as its data", () => {
    const event = newEvent(
      "delete",
      { repository: "r/app", digest: "sha256:abc" },
      { method: "DELETE" },
      "alice",
      { addr: "host:5000", instanceID: "i-1" },
    );
    const cloud = toCloudEvent(event);
    assert.deepEqual(
      { ...cloud, data: undefined },
      {
        specversion: "1.0",
        id: event.id,
        source: "berth://host:5000",
        type: "io.berth.registry.delete",
        subject: "r/app@sha256:abc",
        time: event.timestamp,
        datacontenttype: "application/json",
        data: undefined,
      },
    );
    assert.deepEqual(cloud.data, event);
    assert.deepEqual(event.actor, { name: "alice" });
  });

  test("endpoint settings are validated and defaulted", () => {
    const config = loadConfig({
      file: { notifications: { endpoints: [{ name: "ci", url: "https://ci.example.com/hook" }] } },
      env: {},
    });
    const [endpoint] = config.notifications.endpoints;
    assert.deepEqual(endpoint?.events, ["push", "delete"]);
    assert.equal(endpoint?.format, "distribution");
    assert.deepEqual(endpoint?.backoff, { initialSeconds: 1, maxSeconds: 300 });
    assert.throws(
      () =>
        loadConfig({
          file: {
            notifications: {
              endpoints: [
                { name: "ci", url: "https://a.example/" },
                { name: "ci", url: "https://b.example/" },
              ],
            },
          },
          env: {},
        }),
      /duplicate endpoint name/,
    );
    assert.throws(
      () => loadConfig({ file: { notifications: { endpoints: [{ name: "x", url: "ftp://a/" }] } }, env: {} }),
      /notifications\.endpoints\.0\.url/,
    );
    assert.throws(() => loadConfig({ file: { metrics: { path: "/v2/metrics" } }, env: {} }), /metrics\.path/);
    assert.equal(
      loadConfig({ env: { BERTH_METRICS_LISTEN: "127.0.0.1:9090" } }).metrics.listen,
      "127.0.0.1:9090",
    );
    assert.equal(loadConfig({ env: {} }).tracing.enabled, false);
  });
});
