import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AccessPolicy, compileGlob } from "../../src/auth/access-policy.js";
import { hashPassword, parseHtpasswd } from "../../src/auth/htpasswd.js";
import { LoginLimiter } from "../../src/auth/login-limiter.js";
import { covers, formatScope, parseScope, parseScopes } from "../../src/auth/scope.js";
import { accessPolicySchema } from "../../src/config/auth-config.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";

describe("scopes", () => {
  test("parse and format, names with a registry host and port", () => {
    assert.deepEqual(parseScope("repository:team/app:pull,push"), {
      type: "repository",
      name: "team/app",
      actions: ["pull", "push"],
    });
    assert.deepEqual(parseScope("repository:localhost:5000/app:pull"), {
      type: "repository",
      name: "localhost:5000/app",
      actions: ["pull"],
    });
    assert.deepEqual(parseScope("repository(plugin):a:pull")?.type, "repository(plugin)");
    assert.equal(parseScope("repository:app"), undefined);
    assert.equal(parseScope("nonsense"), undefined);
    assert.equal(formatScope({ type: "registry", name: "catalog", actions: ["*"] }), "registry:catalog:*");
    assert.equal(parseScopes(["repository:a:pull repository:b:push", ""]).length, 2);
  });

  test("covers needs every action", () => {
    const granted = [{ type: "repository", name: "a", actions: ["pull"] }];
    assert.ok(covers(granted, { type: "repository", name: "a", actions: ["pull"] }));
    assert.ok(!covers(granted, { type: "repository", name: "a", actions: ["pull", "push"] }));
    assert.ok(!covers(granted, { type: "repository", name: "b", actions: ["pull"] }));
  });
});

describe("access policy", () => {
  test("globs: * within a component, ** across", () => {
    assert.ok(compileGlob("team-a/**").test("team-a/x/y"));
    assert.ok(!compileGlob("team-a/**").test("team-a"));
    assert.ok(!compileGlob("team-a/**").test("team-ab/x"));
    assert.ok(compileGlob("team-a/*").test("team-a/x"));
    assert.ok(!compileGlob("team-a/*").test("team-a/x/y"));
    assert.ok(compileGlob("**").test("anything/at/all"));
    assert.ok(!compileGlob("a.b").test("axb"));
  });

  test("grants add up across anonymous, authenticated, users, groups, admins", () => {
    const policy = new AccessPolicy(
      accessPolicySchema.parse({
        admins: ["root"],
        groups: { devs: ["dana"] },
        anonymous: [{ repositories: ["public/**"], actions: ["pull"] }],
        authenticated: [{ repositories: ["shared/**"], actions: ["pull"] }],
        rules: [{ repositories: ["team/**"], groups: ["devs"], actions: ["pull", "push"] }],
      }),
    );
    assert.deepEqual([...policy.allowedActions({}, "public/x")], ["pull"]);
    assert.deepEqual([...policy.allowedActions({}, "shared/x")], []);
    assert.deepEqual([...policy.allowedActions({ user: "eve" }, "shared/x")], ["pull"]);
    assert.deepEqual([...policy.allowedActions({ user: "eve" }, "public/x")], ["pull"]);
    assert.deepEqual([...policy.allowedActions({ user: "dana" }, "team/x")].sort(), ["pull", "push"]);
    assert.deepEqual([...policy.allowedActions({ user: "eve" }, "team/x")], []);
    assert.deepEqual([...policy.allowedActions({ user: "root" }, "any")].sort(), ["delete", "pull", "push"]);
    assert.ok(policy.mayListCatalog({}));
  });
});

describe("htpasswd", () => {
  test("reads the bcrypt entries htpasswd -B writes and skips others", () => {
    const hash = hashPassword("secret", 4);
    assert.match(hash, /^\$2y\$04\$/);
    const entries = parseHtpasswd(
      `# comment\nalice:${hash}\nbob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\ncarol:$apr1$x$y\n`,
    );
    assert.deepEqual([...entries.keys()], ["alice"]);
  });
});

describe("login limiter", () => {
  test("blocks past the limit until the window ends", () => {
    let now = 0;
    const limiter = new LoginLimiter(2, 10_000, () => now);
    limiter.recordFailure("a");
    assert.equal(limiter.retryAfter("a"), undefined);
    limiter.recordFailure("a");
    assert.equal(limiter.retryAfter("a"), 10);
    assert.equal(limiter.retryAfter("b"), undefined);
    now = 10_000;
    assert.equal(limiter.retryAfter("a"), undefined);
  });
});

describe("auth config", () => {
  test("off by default", () => {
    const config = loadConfig({ env: {} });
    assert.equal(config.auth.mode, "none");
    assert.equal(config.tls.cert, undefined);
  });

  test("basic needs an htpasswd file; an external issuer needs keys and a realm", () => {
    assert.throws(() => loadConfig({ file: { auth: { mode: "basic" } }, env: {} }), ConfigError);
    assert.throws(
      () =>
        loadConfig({
          file: { auth: { mode: "token", token: { external: { issuer: "i", audience: "a" } } } },
          env: {},
        }),
      /publicKeys, jwks or jwksUrl[\s\S]*realm/,
    );
    assert.throws(() => loadConfig({ file: { tls: { cert: "c.pem" } }, env: {} }), /cert and key/);
  });

  test("scalar settings map to the environment", () => {
    const config = loadConfig({
      env: {
        BERTH_AUTH_MODE: "basic",
        BERTH_AUTH_HTPASSWD: "/etc/berth/htpasswd",
        BERTH_AUTH_TOKEN_LIFETIME_SECONDS: "60",
      },
    });
    assert.equal(config.auth.mode, "basic");
    assert.equal(config.auth.token.lifetimeSeconds, 60);
  });
});
