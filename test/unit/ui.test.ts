import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readCookie, UiSessions } from "../../src/http/ui-session.js";
import { isImageConfig, summarizeImageConfig } from "../../src/oci/image-config.js";

describe("image config summary (image-spec config.md)", () => {
  test("reads the fields a person looks at", () => {
    const summary = summarizeImageConfig({
      created: "2024-01-01T00:00:00Z",
      author: "team",
      architecture: "arm64",
      variant: "v8",
      os: "linux",
      config: {
        User: "1000",
        Env: ["PATH=/bin", "LANG=C"],
        Entrypoint: ["/entry"],
        Cmd: ["serve", "--port", "80"],
        WorkingDir: "/srv",
        ExposedPorts: { "80/tcp": {} },
        Labels: { "org.opencontainers.image.source": "https://example.com/app" },
      },
      rootfs: { type: "layers", diff_ids: [] },
      history: [
        { created: "2024-01-01T00:00:00Z", created_by: "ADD rootfs /" },
        { created_by: "ENV LANG=C", empty_layer: true },
      ],
    });
    assert.deepEqual(summary, {
      created: "2024-01-01T00:00:00Z",
      author: "team",
      architecture: "arm64",
      variant: "v8",
      os: "linux",
      user: "1000",
      workingDir: "/srv",
      env: ["PATH=/bin", "LANG=C"],
      entrypoint: ["/entry"],
      cmd: ["serve", "--port", "80"],
      exposedPorts: ["80/tcp"],
      labels: { "org.opencontainers.image.source": "https://example.com/app" },
      history: [
        { created: "2024-01-01T00:00:00Z", createdBy: "ADD rootfs /", emptyLayer: false },
        { createdBy: "ENV LANG=C", emptyLayer: true },
      ],
    });
  });

  test("drops what is not of the spec's type instead of trusting it", () => {
    const summary = summarizeImageConfig({
      architecture: 7,
      config: { Env: "PATH=/bin", Cmd: ["ok", 3], Labels: { a: "b", c: { d: 1 } }, ExposedPorts: ["80"] },
      history: "none",
    });
    assert.deepEqual(summary, {
      env: [],
      entrypoint: [],
      cmd: ["ok"],
      exposedPorts: [],
      labels: { a: "b" },
      history: [],
    });
    assert.equal(summarizeImageConfig([1, 2]), undefined);
    assert.equal(summarizeImageConfig(null), undefined);
  });

  test("only image configs are parsed as such", () => {
    assert.equal(isImageConfig("application/vnd.oci.image.config.v1+json"), true);
    assert.equal(isImageConfig("application/vnd.docker.container.image.v1+json"), true);
    assert.equal(isImageConfig("application/vnd.oci.empty.v1+json"), false);
  });
});

describe("UI sessions", () => {
  const stamps = new Map([
    ["alice", "stamp-1"],
    ["bob", "stamp-b"],
  ]);
  const stampOf = (user: string) => stamps.get(user);

  test("a cookie vouches for its user until it expires", () => {
    let now = 1_000_000;
    const sessions = new UiSessions("a-secret-of-at-least-32-characters!!", 60, () => now);
    const cookie = sessions.issue("alice", "stamp-1");
    assert.equal(sessions.verify(cookie, stampOf), "alice");
    now += 59_000;
    assert.equal(sessions.verify(cookie, stampOf), "alice");
    now += 1_000;
    assert.equal(sessions.verify(cookie, stampOf), undefined, "expired");
  });

  test("a changed password or a removed user ends the sessions opened before", () => {
    const sessions = new UiSessions("a-secret-of-at-least-32-characters!!", 60);
    const cookie = sessions.issue("alice", "stamp-1");
    assert.ok(
      !cookie.includes("stamp-1") && !Buffer.from(cookie.split(".")[0] ?? "", "base64url").includes("stamp"),
    );
    assert.equal(
      sessions.verify(cookie, () => "stamp-2"),
      undefined,
      "password changed",
    );
    assert.equal(
      sessions.verify(cookie, () => undefined),
      undefined,
      "user removed",
    );
    assert.equal(sessions.verify(cookie, stampOf), "alice");
  });

  test("forged, altered or foreign cookies vouch for nobody", () => {
    const sessions = new UiSessions("a-secret-of-at-least-32-characters!!", 60);
    const cookie = sessions.issue("alice", "stamp-1");
    const [payload, signature] = cookie.split(".") as [string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const altered = Buffer.from(JSON.stringify({ ...claims, u: "bob" })).toString("base64url");
    assert.equal(sessions.verify(`${altered}.${signature}`, stampOf), undefined);
    assert.equal(sessions.verify(`${payload}.${signature.slice(1)}`, stampOf), undefined);
    assert.equal(sessions.verify(payload, stampOf), undefined);
    assert.equal(sessions.verify("", stampOf), undefined);
    assert.equal(sessions.verify("%%%.###", stampOf), undefined);
    assert.equal(sessions.verify(undefined, stampOf), undefined);
    const other = new UiSessions("another-secret-of-at-least-32-characters", 60);
    assert.equal(other.verify(cookie, stampOf), undefined, "signed with another secret");
    // Without a configured secret each process makes its own: instances do not share logins.
    assert.equal(
      new UiSessions(undefined, 60).verify(new UiSessions(undefined, 60).issue("alice", "stamp-1"), stampOf),
      undefined,
    );
  });

  test("cookies are read from the Cookie header by name", () => {
    assert.equal(readCookie("a=1; berth_session=xyz.abc; b=2", "berth_session"), "xyz.abc");
    assert.equal(readCookie("berth_session_other=1", "berth_session"), undefined);
    assert.equal(readCookie(undefined, "berth_session"), undefined);
  });
});
