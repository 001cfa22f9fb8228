import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ConfigError, environmentName, loadConfig, parseListen } from "../../src/config/config.js";

function problemsOf(run: () => unknown): string[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

describe("config: loadConfig", () => {
  test("defaults", () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.listen, "0.0.0.0:5000");
    assert.equal(config.dataDir, "./data");
    assert.equal(config.publicUrl, undefined);
    assert.equal(config.deletes.enabled, true);
    assert.equal(config.limits.manifestBytes, 4 * 1024 * 1024);
    assert.equal(config.limits.pageSize, 1000);
    assert.equal(config.limits.uploadSessions, 1000);
    assert.equal(config.metadata.sqlite.synchronous, "full");
    assert.equal(config.log.level, "info");
  });

  test("environment variables are named after the key and parsed as YAML scalars", () => {
    assert.equal(environmentName(["limits", "manifestBytes"]), "BERTH_LIMITS_MANIFEST_BYTES");
    const config = loadConfig({
      env: {
        BERTH_LIMITS_MANIFEST_BYTES: "1024",
        BERTH_DELETES_ENABLED: "false",
        BERTH_LISTEN: "127.0.0.1:6000",
        PATH: "/usr/bin",
      },
    });
    assert.equal(config.limits.manifestBytes, 1024);
    assert.equal(config.deletes.enabled, false);
    assert.equal(config.listen, "127.0.0.1:6000");
  });

  test("precedence: file < environment < flags", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-config-"));
    try {
      const file = join(dir, "berth.yaml");
      await writeFile(file, "limits:\n  manifestBytes: 100\n  pageSize: 7\ndataDir: /from/file\n");
      const config = loadConfig({
        file,
        env: { BERTH_LIMITS_MANIFEST_BYTES: "200" },
        flags: { dataDir: "/from/flags" },
      });
      assert.equal(config.limits.manifestBytes, 200);
      assert.equal(config.limits.pageSize, 7);
      assert.equal(config.dataDir, "/from/flags");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("an unknown key is rejected with a message naming it", () => {
    const problems = problemsOf(() =>
      loadConfig({ file: { limits: { manifestBytez: 1 } } as never, env: {} }),
    );
    assert.equal(problems.length, 1);
    assert.match(problems[0] ?? "", /limits/);
    assert.match(problems[0] ?? "", /manifestBytez/);
    const topLevel = problemsOf(() => loadConfig({ file: { lsiten: ":5000" } as never, env: {} }));
    assert.match(topLevel.join("\n"), /lsiten/);
  });

  test("an unknown BERTH_ variable is rejected with the known names", () => {
    const problems = problemsOf(() => loadConfig({ env: { BERTH_LIMITS_MANIFEST_BYTEZ: "1" } }));
    assert.match(problems[0] ?? "", /^BERTH_LIMITS_MANIFEST_BYTEZ: unknown setting/);
    assert.match(problems[0] ?? "", /BERTH_LIMITS_MANIFEST_BYTES/);
  });

  test("a wrongly typed value names the file key and the environment variable", () => {
    const problems = problemsOf(() => loadConfig({ env: { BERTH_LIMITS_MANIFEST_BYTES: "lots" } }));
    assert.match(problems[0] ?? "", /limits\.manifestBytes/);
    assert.match(problems[0] ?? "", /BERTH_LIMITS_MANIFEST_BYTES/);
    assert.ok(problemsOf(() => loadConfig({ file: { limits: { pageSize: 0 } }, env: {} })).length > 0);
  });

  test("a bad list entry names its file key only: no environment variable sets a list entry", () => {
    const problems = problemsOf(() =>
      loadConfig({ file: { policies: { rules: [{ repositories: ["UPPER"] }] } }, env: {} }),
    );
    assert.match(problems.join("\n"), /policies\.rules\.0\.repositories\.0/);
    assert.doesNotMatch(problems.join("\n"), /BERTH_POLICIES_RULES/);
  });

  test("a bad listen address is rejected with the expected form", () => {
    for (const listen of ["nope", "5000", "host:99999", "host:", "[::1]5000"]) {
      const problems = problemsOf(() => loadConfig({ file: { listen }, env: {} }));
      assert.match(problems.join("\n"), /listen: must be "HOST:PORT"/, listen);
    }
  });

  test("a YAML file that is not a mapping is reported with its path", async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-config-"));
    try {
      const file = join(dir, "list.yaml");
      await writeFile(file, "- a\n- b\n");
      const problems = problemsOf(() => loadConfig({ file, env: {} }));
      assert.match(problems[0] ?? "", /must be a YAML mapping/);
      assert.ok(problems[0]?.includes(file));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("config: parseListen", () => {
  test("host:port, :port and [ipv6]:port", () => {
    assert.deepEqual(parseListen("127.0.0.1:5000"), { host: "127.0.0.1", port: 5000 });
    assert.deepEqual(parseListen(":5000"), { host: "0.0.0.0", port: 5000 });
    assert.deepEqual(parseListen("[::1]:0"), { host: "::1", port: 0 });
    assert.deepEqual(parseListen("localhost:65535"), { host: "localhost", port: 65535 });
  });

  test("anything else is undefined", () => {
    for (const value of ["", "5000", "host:65536", "host:-1", "a:b:1", "[::1]", "host:123456"]) {
      assert.equal(parseListen(value), undefined, value);
    }
  });
});
