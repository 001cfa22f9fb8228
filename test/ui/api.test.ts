import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../src/config/config.js";
import type { UiManifest, UiRepositoryPage, UiSession, UiTagPage } from "../../src/http/ui-api.js";
import { startBerth } from "../../src/server.js";
import { basic, fetchToken, users, withAuthorization, writeHtpasswd } from "../helpers/auth.js";
import { digestOf, errorCodes, pushImage } from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/**
 * The web UI's JSON API without a browser: server-side search and paging over 10,000 repositories,
 * sessions from the registry's own credentials, the access policy on every answer, CSRF refusals, and
 * the static bundle's headers.
 */

const uiHeader = { "X-Berth-UI": "1" };

async function login(url: string, user: string, password: string): Promise<Response> {
  return fetch(`${url}/ui/api/login`, {
    method: "POST",
    headers: { ...uiHeader, "Content-Type": "application/json" },
    body: JSON.stringify({ user, password }),
  });
}

/** Logs in and returns the Cookie header the session cookie makes. */
async function sessionCookie(url: string, user: string, password: string): Promise<string> {
  const response = await login(url, user, password);
  assert.equal(response.status, 200, await response.text());
  const setCookie = response.headers.get("set-cookie") ?? "";
  assert.match(setCookie, /^berth_session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict/);
  return setCookie.split(";", 1)[0] as string;
}

async function getJson<T>(url: string, cookie?: string): Promise<T> {
  const response = await fetch(url, { headers: cookie ? { Cookie: cookie } : {} });
  assert.equal(response.status, 200, `${url}: ${await response.clone().text()}`);
  assert.equal(response.headers.get("content-type"), "application/json");
  assert.equal(response.headers.get("cache-control"), "no-store");
  return (await response.json()) as T;
}

/** Follows `next` to the end, checking that no page is larger than `n`. */
async function allRepositories(url: string, q: string, n: number, cookie?: string) {
  const names: string[] = [];
  let last: string | null = null;
  let requests = 0;
  do {
    const params = new URLSearchParams({ q, n: String(n) });
    if (last !== null) params.set("last", last);
    const page: UiRepositoryPage = await getJson<UiRepositoryPage>(
      `${url}/ui/api/repositories?${params}`,
      cookie,
    );
    assert.ok(page.repositories.length <= n, `page of ${page.repositories.length} > n=${n}`);
    names.push(...page.repositories.map((r) => r.name));
    last = page.next;
    requests++;
    assert.ok(requests < 1000, "paging ends");
  } while (last !== null);
  return { names, requests };
}

const repositoryCount = 10_000;
const pad = (i: number) => String(i).padStart(5, "0");
/** 50 teams of 200 repositories: team-07/app-00007, team-07/app-00057, ... */
const repositoryName = (i: number) => `team-${String(i % 50).padStart(2, "0")}/app-${pad(i)}`;

describe("UI API: 10,000 repositories, searched and paged on the server", { timeout: 300_000 }, () => {
  let registry: TestRegistry;
  let dir: string;
  let adminCookie: string;
  let readerCookie: string;
  const all = Array.from({ length: repositoryCount }, (_, i) => repositoryName(i)).sort();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-ui-api-"));
    registry = await startTestRegistry({
      metadata: { sqlite: { synchronous: "normal" } },
      auth: {
        mode: "basic",
        htpasswd: await writeHtpasswd(dir),
        policy: {
          admins: ["admin"],
          rules: [{ repositories: ["team-07/**"], users: ["reader"], actions: ["pull"] }],
        },
      },
    });
    // Straight into the metadata store: 10,000 pushes over HTTP would test the push path, not the listing.
    const metadata = registry.server.registry.ctx.metadata;
    const digest = digestOf("ui-api-seed");
    for (const name of all) await metadata.recordBlob(name, digest, 1);
    adminCookie = await sessionCookie(registry.url, "admin", users.admin);
    readerCookie = await sessionCookie(registry.url, "reader", users.reader);
  });

  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("every repository, once, in byte order, 100 to a page", async () => {
    const started = Date.now();
    const { names, requests } = await allRepositories(registry.url, "", 100, adminCookie);
    assert.equal(requests, repositoryCount / 100);
    assert.deepEqual(names, all);
    // A figure for the report, not an assertion: timing depends on the machine.
    console.log(
      `# listed ${repositoryCount} repositories in ${requests} pages in ${Date.now() - started} ms`,
    );
  });

  test("a search filters on the server and pages through only the matches", async () => {
    const expected = all.filter((name) => name.includes("team-07/"));
    assert.equal(expected.length, 200);
    const { names, requests } = await allRepositories(registry.url, "team-07/", 50, adminCookie);
    assert.deepEqual(names, expected);
    assert.equal(requests, 4);
    const started = Date.now();
    const one = await getJson<UiRepositoryPage>(
      `${registry.url}/ui/api/repositories?q=APP-01234`,
      adminCookie,
    );
    // A figure for the report: one match among 10,000 means a scan of the whole name index.
    console.log(
      `# a search with 1 match among ${repositoryCount} repositories took ${Date.now() - started} ms`,
    );
    assert.deepEqual(one, {
      repositories: [{ name: "team-34/app-01234", tagCount: 0, updatedAt: one.repositories[0]?.updatedAt }],
      next: null,
    });
    const none = await getJson<UiRepositoryPage>(
      `${registry.url}/ui/api/repositories?q=nothing-like-it`,
      adminCookie,
    );
    assert.deepEqual(none, { repositories: [], next: null });
  });

  test("a user sees only the repositories the access policy lets them pull", async () => {
    const started = Date.now();
    const { names, requests } = await allRepositories(registry.url, "", 50, readerCookie);
    console.log(
      `# a user who may see 200 of ${repositoryCount} repositories listed them in ${requests} pages in ${Date.now() - started} ms`,
    );
    assert.deepEqual(
      names,
      all.filter((name) => name.startsWith("team-07/")),
    );
    const searched = await allRepositories(registry.url, "app-0000", 50, readerCookie);
    assert.deepEqual(searched.names, ["team-07/app-00007"]);
    const anonymous = await allRepositories(registry.url, "", 50);
    assert.deepEqual(anonymous.names, []);
  });

  test("bad paging parameters are refused with the registry's error body", async () => {
    for (const query of ["n=0", "n=abc", "last=Not%20A%20Name", `q=${"x".repeat(256)}`]) {
      const response = await fetch(`${registry.url}/ui/api/repositories?${query}`, {
        headers: { Cookie: adminCookie },
      });
      assert.equal(response.status, 400, query);
      assert.deepEqual(await errorCodes(response), ["UNSUPPORTED"]);
    }
    const big = await getJson<UiRepositoryPage>(`${registry.url}/ui/api/repositories?n=5000`, adminCookie);
    assert.equal(big.repositories.length, 100, "n is capped");
  });
});

describe("UI API: sessions, access policy and CSRF", () => {
  let registry: TestRegistry;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-ui-api-"));
    registry = await startTestRegistry({
      auth: {
        mode: "basic",
        htpasswd: await writeHtpasswd(dir),
        policy: {
          admins: ["admin"],
          anonymous: [{ repositories: ["public/**"], actions: ["pull"] }],
          rules: [
            { repositories: ["team/**"], users: ["reader"], actions: ["pull"] },
            { repositories: ["team/**"], users: ["writer"], actions: ["pull", "push", "delete"] },
          ],
        },
        rateLimit: { failures: 3, windowSeconds: 60 },
      },
    });
    await withAuthorization(basic("admin", users.admin), async () => {
      await pushImage(registry.url, "team/app", "v1");
      await pushImage(registry.url, "team/app", "v2");
      await pushImage(registry.url, "public/hello", "latest");
    });
  });

  after(async () => {
    await registry?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the session names the user of a valid cookie, nobody otherwise", async () => {
    const anonymous = await getJson<UiSession>(`${registry.url}/ui/api/session`);
    assert.deepEqual(anonymous, { user: null, authEnabled: true, deletesEnabled: true, registryHost: null });
    const cookie = await sessionCookie(registry.url, "reader", users.reader);
    assert.equal((await getJson<UiSession>(`${registry.url}/ui/api/session`, cookie)).user, "reader");
    // A cookie whose payload was changed (another user) fails its signature.
    const [payload, signature] = cookie.slice("berth_session=".length).split(".") as [string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as { u: string; e: number };
    const forged = Buffer.from(JSON.stringify({ ...claims, u: "admin" })).toString("base64url");
    const forgedSession = await getJson<UiSession>(
      `${registry.url}/ui/api/session`,
      `berth_session=${forged}.${signature}`,
    );
    assert.equal(forgedSession.user, null);
  });

  test("logins use the registry's credentials and never answer with a browser challenge", async () => {
    const wrong = await login(registry.url, "reader", "wrong");
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get("www-authenticate"), null);
    assert.equal(wrong.headers.get("set-cookie"), null);
    assert.deepEqual(await errorCodes(wrong), ["UNAUTHORIZED"]);
    const unknown = await login(registry.url, "nobody", "whatever");
    assert.equal(unknown.status, 401);
    const empty = await login(registry.url, "", "");
    assert.equal(empty.status, 401);
  });

  test("mutating requests need the UI's header and a same-origin Origin", async () => {
    const noHeader = await fetch(`${registry.url}/ui/api/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: "reader", password: users.reader }),
    });
    assert.equal(noHeader.status, 403);
    assert.equal(noHeader.headers.get("set-cookie"), null);
    const crossSite = await fetch(`${registry.url}/ui/api/login`, {
      method: "POST",
      headers: { ...uiHeader, Origin: "https://evil.example", "Content-Type": "application/json" },
      body: JSON.stringify({ user: "reader", password: users.reader }),
    });
    assert.equal(crossSite.status, 403);
    const cookie = await sessionCookie(registry.url, "writer", users.writer);
    const deleteWithoutHeader = await fetch(
      `${registry.url}/ui/api/manifest?repository=team/app&reference=v2`,
      {
        method: "DELETE",
        headers: { Cookie: cookie },
      },
    );
    assert.equal(deleteWithoutHeader.status, 403);
    const tags = await fetch(`${registry.url}/v2/team/app/tags/list`, {
      headers: { Authorization: basic("admin", users.admin) },
    });
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ["v1", "v2"], "nothing was deleted");
  });

  test("tags and manifests follow the access policy; delete needs the delete action", async () => {
    const anonymous = await fetch(`${registry.url}/ui/api/tags?repository=team/app`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get("www-authenticate"), null);
    const publicTags = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=public/hello`);
    assert.deepEqual(
      publicTags.tags.map((t) => t.name),
      ["latest"],
    );
    assert.equal(publicTags.mayDelete, false);

    const reader = await sessionCookie(registry.url, "reader", users.reader);
    const readerTags = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=team/app`, reader);
    assert.equal(readerTags.mayDelete, false);
    const readerDelete = await fetch(`${registry.url}/ui/api/manifest?repository=team/app&reference=v2`, {
      method: "DELETE",
      headers: { ...uiHeader, Cookie: reader },
    });
    assert.equal(readerDelete.status, 403);
    assert.deepEqual(await errorCodes(readerDelete), ["DENIED"]);

    const writer = await sessionCookie(registry.url, "writer", users.writer);
    const writerTags = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=team/app`, writer);
    assert.equal(writerTags.mayDelete, true);
    const v2 = writerTags.tags.find((t) => t.name === "v2");
    assert.ok(v2);
    const manifest = await getJson<UiManifest>(
      `${registry.url}/ui/api/manifest?repository=team/app&reference=${v2.digest}`,
      writer,
    );
    assert.equal(manifest.digest, v2.digest);
    assert.equal(manifest.image?.architecture, "amd64");
    assert.equal(manifest.layers.length, 1);
    assert.equal(manifest.totalSize, v2.size);
    const deleted = await fetch(`${registry.url}/ui/api/manifest?repository=team/app&reference=v2`, {
      method: "DELETE",
      headers: { ...uiHeader, Cookie: writer },
    });
    assert.equal(deleted.status, 200, await deleted.text());
    const after = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=team/app`, writer);
    assert.deepEqual(
      after.tags.map((t) => t.name),
      ["v1"],
    );
    // By digest, the manifest goes with every tag on it (distribution-spec "Deleting Manifests").
    const v1 = after.tags[0];
    assert.ok(v1);
    const byDigest = await fetch(
      `${registry.url}/ui/api/manifest?repository=team/app&reference=${v1.digest}`,
      {
        method: "DELETE",
        headers: { ...uiHeader, Cookie: writer },
      },
    );
    assert.equal(byDigest.status, 200, await byDigest.text());
    const empty = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=team/app`, writer);
    assert.deepEqual(empty.tags, []);
    const gone = await fetch(`${registry.url}/v2/team/app/manifests/${v1.digest}`, {
      headers: { Authorization: basic("admin", users.admin) },
    });
    assert.equal(gone.status, 404);
  });

  test("bad names and references get the spec's errors", async () => {
    const admin = await sessionCookie(registry.url, "admin", users.admin);
    const badName = await fetch(`${registry.url}/ui/api/tags?repository=Team/App`, {
      headers: { Cookie: admin },
    });
    assert.equal(badName.status, 400);
    assert.deepEqual(await errorCodes(badName), ["NAME_INVALID"]);
    const unknown = await fetch(`${registry.url}/ui/api/tags?repository=team/none`, {
      headers: { Cookie: admin },
    });
    assert.equal(unknown.status, 404);
    assert.deepEqual(await errorCodes(unknown), ["NAME_UNKNOWN"]);
    const badDigest = await fetch(`${registry.url}/ui/api/manifest?repository=team/app&reference=sha256:zz`, {
      headers: { Cookie: admin },
    });
    assert.equal(badDigest.status, 400);
    assert.deepEqual(await errorCodes(badDigest), ["DIGEST_INVALID"]);
    const missing = await fetch(`${registry.url}/ui/api/manifest?repository=team/app&reference=nope`, {
      headers: { Cookie: admin },
    });
    assert.equal(missing.status, 404);
    assert.deepEqual(await errorCodes(missing), ["MANIFEST_UNKNOWN"]);
  });

  test("logout clears the cookie", async () => {
    const response = await fetch(`${registry.url}/ui/api/logout`, { method: "POST", headers: uiHeader });
    assert.equal(response.status, 200);
    assert.match(
      response.headers.get("set-cookie") ?? "",
      /^berth_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/,
    );
  });

  test("a password change in htpasswd ends the sessions opened with the old one", async () => {
    const cookie = await sessionCookie(registry.url, "outsider", users.outsider);
    assert.equal((await getJson<UiSession>(`${registry.url}/ui/api/session`, cookie)).user, "outsider");
    await writeHtpasswd(dir, { ...users, outsider: "changed-secret" });
    // berth notices a changed htpasswd file within a second or so.
    let user: string | null = "outsider";
    for (let waited = 0; user !== null && waited < 10_000; waited += 200) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      user = (await getJson<UiSession>(`${registry.url}/ui/api/session`, cookie)).user;
    }
    assert.equal(user, null);
    const again = await sessionCookie(registry.url, "outsider", "changed-secret");
    assert.equal((await getJson<UiSession>(`${registry.url}/ui/api/session`, again)).user, "outsider");
  });

  // Last: it locks this client address out for the rest of the window.
  test("failed logins count towards the registry's login limit", async () => {
    let status = 0;
    for (let attempt = 0; attempt < 5 && status !== 429; attempt++) {
      status = (await login(registry.url, "writer", "wrong")).status;
    }
    assert.equal(status, 429);
    const locked = await login(registry.url, "writer", users.writer);
    assert.equal(locked.status, 429, "even the right password waits for the window to end");
    assert.ok(Number(locked.headers.get("retry-after")) > 0);
  });
});

describe("UI API on PostgreSQL metadata with token auth", { skip: postgresSkip }, () => {
  let registry: TestRegistry;
  let dir: string;
  const schema = newSchemaName();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-ui-api-"));
    registry = await startTestRegistry({
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema } },
      auth: {
        mode: "token",
        htpasswd: await writeHtpasswd(dir),
        policy: {
          admins: ["admin"],
          rules: [{ repositories: ["team/**"], users: ["reader"], actions: ["pull"] }],
        },
      },
    });
    const token = await fetchToken(
      `${registry.url}/token`,
      "berth",
      ["repository:team/app:pull,push", "repository:other/app:pull,push"],
      basic("admin", users.admin),
    );
    const { token: bearer } = (await token.json()) as { token: string };
    await withAuthorization(`Bearer ${bearer}`, async () => {
      await pushImage(registry.url, "team/app", "v1");
      await pushImage(registry.url, "other/app", "v1");
    });
  });

  after(async () => {
    await registry?.close();
    await dropSchema(schema);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the UI logs in with the token issuer's credentials and lists what the policy allows", async () => {
    const reader = await sessionCookie(registry.url, "reader", users.reader);
    const page = await getJson<UiRepositoryPage>(`${registry.url}/ui/api/repositories?q=app`, reader);
    assert.deepEqual(
      page.repositories.map((r) => [r.name, r.tagCount]),
      [["team/app", 1]],
    );
    const tags = await getJson<UiTagPage>(`${registry.url}/ui/api/tags?repository=team/app`, reader);
    assert.deepEqual(
      tags.tags.map((t) => t.name),
      ["v1"],
    );
    assert.equal(tags.mayDelete, false);
    const manifest = await getJson<UiManifest>(
      `${registry.url}/ui/api/manifest?repository=team/app&reference=v1`,
      reader,
    );
    assert.equal(manifest.digest, tags.tags[0]?.digest);
    assert.equal(manifest.image?.os, "linux");
    const denied = await fetch(`${registry.url}/ui/api/tags?repository=other/app`, {
      headers: { Cookie: reader },
    });
    assert.equal(denied.status, 403);
    const admin = await sessionCookie(registry.url, "admin", users.admin);
    const all = await getJson<UiRepositoryPage>(`${registry.url}/ui/api/repositories`, admin);
    assert.deepEqual(
      all.repositories.map((r) => r.name),
      ["other/app", "team/app"],
    );
  });
});

describe("UI: bundle, base path and switching it off", () => {
  test("the page and its assets are served with their types and cache headers", async () => {
    const registry = await startTestRegistry();
    try {
      const page = await fetch(`${registry.url}/`);
      assert.equal(page.status, 200);
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      assert.equal(page.headers.get("cache-control"), "no-cache");
      assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
      const html = await page.text();
      const script = /src="(ui\/assets\/app-[A-Z0-9]+\.js)"/.exec(html)?.[1];
      const style = /href="(ui\/assets\/app-[A-Z0-9]+\.css)"/.exec(html)?.[1];
      assert.ok(script && style, html);
      assert.doesNotMatch(html, /https?:\/\//, "nothing is loaded from elsewhere");
      const js = await fetch(`${registry.url}/${script}`);
      assert.equal(js.status, 200);
      assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
      assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
      assert.doesNotMatch(await js.text(), /https?:\/\/(cdn|unpkg|esm\.sh|cdnjs)/);
      const css = await fetch(`${registry.url}/${style}`);
      assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
      const revalidated = await fetch(`${registry.url}/`, {
        headers: { "If-None-Match": page.headers.get("etag") ?? "" },
      });
      assert.equal(revalidated.status, 304);
      const missing = await fetch(`${registry.url}/ui/assets/nope.js`);
      assert.equal(missing.status, 404);
      const session = await getJson<UiSession>(`${registry.url}/ui/api/session`);
      assert.deepEqual(session, { user: null, authEnabled: false, deletesEnabled: true, registryHost: null });
      // The registry API is untouched.
      assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    } finally {
      await registry.close();
    }
  });

  test("under another path, with deletes off and a public URL", async () => {
    const registry = await startTestRegistry({
      ui: { path: "/console" },
      deletes: { enabled: false },
      publicUrl: "https://registry.example:8443",
    });
    try {
      await pushImage(registry.url, "team/app", "v1");
      const redirect = await fetch(`${registry.url}/console`, { redirect: "manual" });
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers.get("location"), "/console/");
      assert.equal((await fetch(`${registry.url}/console/`)).status, 200);
      assert.equal((await fetch(`${registry.url}/`)).status, 404);
      const session = await getJson<UiSession>(`${registry.url}/console/ui/api/session`);
      assert.deepEqual(session, {
        user: null,
        authEnabled: false,
        deletesEnabled: false,
        registryHost: "registry.example:8443",
      });
      const tags = await getJson<UiTagPage>(`${registry.url}/console/ui/api/tags?repository=team/app`);
      assert.equal(tags.mayDelete, false);
      const refused = await fetch(
        `${registry.url}/console/ui/api/manifest?repository=team/app&reference=v1`,
        {
          method: "DELETE",
          headers: uiHeader,
        },
      );
      assert.equal(refused.status, 405);
      assert.deepEqual(await errorCodes(refused), ["UNSUPPORTED"]);
    } finally {
      await registry.close();
    }
  });

  test("turned off, berth serves no UI at all", async () => {
    const registry = await startTestRegistry({ ui: { enabled: false } });
    try {
      assert.equal((await fetch(`${registry.url}/`)).status, 404);
      assert.equal((await fetch(`${registry.url}/ui/api/session`)).status, 404);
      assert.equal((await fetch(`${registry.url}/v2/`)).status, 200);
    } finally {
      await registry.close();
    }
  });

  test("a path overlapping the registry's endpoints is a config error", () => {
    for (const path of ["/v2", "/v2/ui", "/token", "/healthz/", "ui", "/a b"]) {
      assert.throws(() => loadConfig({ file: { ui: { path } }, env: {} }), /ui\.path/, path);
    }
    assert.throws(
      () => loadConfig({ file: { ui: { sessionSecret: "short" } }, env: {} }),
      /ui\.sessionSecret/,
    );
    assert.equal(loadConfig({ env: { BERTH_UI_ENABLED: "false" } }).ui.enabled, false);
  });
});

test("examples/ui.yaml: the UI under /registry/, logins shared by every instance with the same secret", async () => {
  const dir = await mkdtemp(join(tmpdir(), "berth-ui-example-"));
  const example = fileURLToPath(new URL("../../../examples/ui.yaml", import.meta.url));
  const env = {
    BERTH_LISTEN: "127.0.0.1:0",
    BERTH_DATA_DIR: dir,
    BERTH_LOG_LEVEL: "warn",
    BERTH_AUTH_HTPASSWD: await writeHtpasswd(dir, { alice: "alice-secret", bob: "bob-secret" }),
    BERTH_UI_SESSION_SECRET: "0123456789abcdef0123456789abcdef",
  };
  const config = loadConfig({ file: example, env });
  assert.equal(config.ui.sessionSeconds, 28800);
  const [one, two] = [await startBerth(config), await startBerth(config)];
  try {
    const [urlOne, urlTwo] = [`http://${one.address}`, `http://${two.address}`];
    assert.equal((await fetch(`${urlOne}/registry/`)).status, 200);
    const response = await fetch(`${urlOne}/registry/ui/api/login`, {
      method: "POST",
      headers: { ...uiHeader, "Content-Type": "application/json" },
      body: JSON.stringify({ user: "bob", password: "bob-secret" }),
    });
    assert.equal(response.status, 200);
    const setCookie = response.headers.get("set-cookie") ?? "";
    assert.match(setCookie, /Path=\/registry\/;/);
    assert.match(setCookie, /Max-Age=28800;/);
    const cookie = setCookie.split(";", 1)[0] as string;
    // The other instance accepts the login: same secret.
    const session = await getJson<UiSession>(`${urlTwo}/registry/ui/api/session`, cookie);
    assert.equal(session.user, "bob");
  } finally {
    await one.close();
    await two.close();
    await rm(dir, { recursive: true, force: true });
  }
});
