import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { parseChallenge } from "../../src/proxy/upstream-client.js";

const examples = fileURLToPath(new URL("../../../examples/", import.meta.url));

describe("proxy configuration", () => {
  test("examples/proxy.yaml loads with the documented defaults", () => {
    const config = loadConfig({ file: join(examples, "proxy.yaml"), env: {} });
    const [hub, ghcr] = config.proxy.upstreams;
    assert.equal(hub?.url, "https://registry-1.docker.io");
    assert.equal(hub?.libraryPrefix, true);
    assert.equal(ghcr?.url, "https://ghcr.io");
    assert.equal(ghcr?.libraryPrefix, false);
    assert.equal(ghcr?.tls.insecureSkipVerify, false);
    assert.equal(ghcr?.serveStale, true);
  });

  test("no proxy section means no upstreams", () => {
    assert.deepEqual(loadConfig({ env: {} }).proxy.upstreams, []);
  });

  const invalid = (upstreams: unknown[], pattern: RegExp) =>
    assert.throws(
      () => loadConfig({ file: { proxy: { upstreams } } as never, env: {} }),
      (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
    );

  test("each repository has one upstream: overlapping prefixes are refused", () => {
    invalid(
      [
        { prefix: "hub", url: "https://a.example" },
        { prefix: "hub/library", url: "https://b.example" },
      ],
      /overlaps "hub"/,
    );
    invalid(
      [
        { prefix: "ghcr", url: "https://a.example" },
        { prefix: "ghcr", url: "https://b.example" },
      ],
      /overlaps/,
    );
  });

  test("bad prefixes, URLs and credential combinations are refused with their key", () => {
    invalid([{ prefix: "/hub/", url: "https://a.example" }], /proxy\.upstreams\.0\.prefix/);
    invalid([{ prefix: "Hub", url: "https://a.example" }], /repository name prefix/);
    invalid([{ prefix: "hub", url: "ftp://a.example" }], /proxy\.upstreams\.0\.url/);
    invalid([{ prefix: "hub", url: "https://a.example", password: "x" }], /username: required/);
    invalid(
      [{ prefix: "hub", url: "https://a.example", username: "u", password: "x", passwordFile: "/f" }],
      /not both/,
    );
  });
});

describe("WWW-Authenticate challenges (RFC 7235, distribution token spec)", () => {
  test("Docker Hub's Bearer challenge", () => {
    assert.deepEqual(
      parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"',
      ),
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/alpine:pull",
        },
      },
    );
  });

  test("Basic, unquoted values, escapes and odd spacing", () => {
    assert.deepEqual(parseChallenge('Basic realm="a \\"b\\""'), {
      scheme: "basic",
      params: { realm: 'a "b"' },
    });
    assert.deepEqual(parseChallenge("bearer Realm=https://t.example/token, service=reg"), {
      scheme: "bearer",
      params: { realm: "https://t.example/token", service: "reg" },
    });
    assert.equal(parseChallenge(null), undefined);
    assert.equal(parseChallenge("   "), undefined);
  });
});
