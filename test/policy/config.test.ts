import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type BerthConfigInput, ConfigError, loadConfig } from "../../src/config/config.js";
import { parseByteSize, parseDuration } from "../../src/config/policy-config.js";
import { compilePolicies, policyFor } from "../../src/registry/policies.js";

function problemsOf(policies: unknown): string[] {
  try {
    loadConfig({ file: { policies } as BerthConfigInput, env: {} });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("policies config: validation at load", () => {
  test("defaults: no rules, retention hourly", () => {
    const config = loadConfig({ env: {} });
    assert.deepEqual(config.policies, { rules: [], retentionIntervalSeconds: 3600 });
  });

  test("a full rule loads, and a loaded config loads again unchanged", () => {
    const config = loadConfig({
      file: {
        policies: {
          retentionIntervalSeconds: 60,
          rules: [
            {
              name: "releases",
              repositories: ["team/*", "**"],
              immutableTags: ["v*"],
              quota: { bytes: "10GiB", tags: 100 },
              retention: { keepNewest: 5, olderThan: "30d", protect: ["latest"] },
            },
          ],
        },
      },
      env: {},
    });
    const rule = config.policies.rules[0];
    assert.equal(rule?.retention?.tagPattern, "*", "tagPattern defaults to every tag");
    assert.deepEqual(loadConfig({ file: config, env: {} }).policies, config.policies);
    const [compiled] = compilePolicies(config.policies);
    assert.equal(compiled?.quota?.bytes, 10 * 2 ** 30);
    assert.equal(compiled?.retention?.olderThanMs, 30 * 86_400_000);
    assert.equal(compiled?.label, 'rule "releases"');
  });

  test("bad globs, sizes, durations and empty retention are reported with their keys", () => {
    const problems = problemsOf({
      rules: [
        { repositories: ["Team/App"] },
        { repositories: [] },
        { repositories: ["a"], immutableTags: ["v1/x"] },
        { repositories: ["a"], quota: { bytes: "10 gigs" } },
        { repositories: ["a"], quota: { bytes: -5, tags: 0 } },
        { repositories: ["a"], retention: { olderThan: "30 days" } },
        { repositories: ["a"], retention: { protect: ["latest"] } },
        { repositories: ["a"], retention: { keepNewest: 1.5 } },
        { repositories: ["a"], unknown: true },
      ],
    });
    const text = problems.join("\n");
    const expect = (key: string, message: RegExp) =>
      assert.ok(
        problems.some((p) => p.startsWith(`${key}: `) && message.test(p)),
        `no problem for ${key} matching ${message}:\n${text}`,
      );
    expect("policies.rules.0.repositories.0", /must be a repository glob/);
    expect("policies.rules.1.repositories", /at least one repository glob/);
    expect("policies.rules.2.immutableTags.0", /must be a tag glob/);
    expect("policies.rules.3.quota.bytes", /positive byte size such as "500MiB"/);
    expect("policies.rules.4.quota.bytes", /positive byte size/);
    expect("policies.rules.4.quota.tags", /./);
    expect("policies.rules.5.retention.olderThan", /positive duration.*"30d"/);
    expect("policies.rules.6.retention", /set keepNewest, olderThan or both/);
    expect("policies.rules.7.retention.keepNewest", /./);
    expect("policies.rules.8", /unknown|unrecognized/i);
  });

  test("byte sizes and durations", () => {
    assert.equal(parseByteSize("10GiB"), 10 * 2 ** 30);
    assert.equal(parseByteSize("2GB"), 2e9);
    assert.equal(parseByteSize("1.5 MiB"), 1.5 * 2 ** 20);
    assert.equal(parseByteSize("512"), 512);
    assert.equal(parseByteSize(4096), 4096);
    assert.equal(parseByteSize("0"), undefined);
    assert.equal(parseByteSize("5 XB"), undefined);
    assert.equal(parseByteSize(1.5), undefined);
    assert.equal(parseDuration("30d"), 30 * 86_400_000);
    assert.equal(parseDuration("12h"), 12 * 3_600_000);
    assert.equal(parseDuration("2w"), 14 * 86_400_000);
    assert.equal(parseDuration("0d"), undefined);
    assert.equal(parseDuration("1y"), undefined);
  });

  test("the first rule whose repositories match governs a repository; `*` stays in one component", () => {
    const config = loadConfig({
      file: {
        policies: {
          rules: [
            { name: "exempt", repositories: ["scratch/**"] },
            { name: "team", repositories: ["team/*"], quota: { tags: 5 } },
            { name: "rest", repositories: ["**"], quota: { tags: 50 } },
          ],
        },
      },
      env: {},
    });
    const rules = compilePolicies(config.policies);
    assert.equal(policyFor(rules, "scratch/a/b")?.label, 'rule "exempt"');
    assert.equal(policyFor(rules, "team/app")?.label, 'rule "team"');
    assert.equal(policyFor(rules, "team/app/sub")?.label, 'rule "rest"');
    assert.equal(policyFor(rules, "other")?.label, 'rule "rest"');
    assert.equal(policyFor(compilePolicies({ rules: [], retentionIntervalSeconds: 0 }), "x"), undefined);
  });
});
