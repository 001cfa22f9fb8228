import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { basic, users, withAuthorization, writeHtpasswd } from "../helpers/auth.js";
import { launchChromium, requireChromium, screenshot } from "../helpers/browser.js";
import { requireClients } from "../helpers/clients.js";
import { type ContainersSandbox, createContainersSandbox } from "../helpers/containers-sandbox.js";
import { descriptorOf, digestOf, imageManifest, pushBlob, putManifest, types } from "../helpers/oci.js";
import { buildOciLayout, type OciLayoutFixture } from "../helpers/oci-layout.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/**
 * The web UI end to end, in a real headless chromium against a real berth with basic auth on: images
 * pushed with skopeo, referrers pushed over HTTP (distribution-spec "Pushing Manifests with Subject"),
 * then search, tags, manifest details, referrers, pull command, delete, login and logout as a person
 * would click through them. Every step leaves a screenshot in test-artifacts/ui/.
 */

const sbomType = "application/spdx+json";
const signatureType = "application/vnd.dev.cosign.artifact.sig.v1+json";
const admin = basic("admin", users.admin);

/** The text a locator's element holds (its DOM text, as rendered text depends on layout). */
async function text(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? "";
}

const skip = requireChromium().skip ?? requireClients("skopeo").skip;

describe("web UI in a browser", { skip, timeout: 300_000 }, () => {
  let registry: TestRegistry;
  let dir: string;
  let layout: OciLayoutFixture;
  let sandbox: ContainersSandbox;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let imageDigest: string;
  const referrers: Record<string, string> = {};
  const pageErrors: string[] = [];
  let shot = 0;
  const snap = (name: string) => screenshot(page, `browser-${String(++shot).padStart(2, "0")}`, name);
  /** A step of the walk-through; when it fails, the page as it was then is kept as a screenshot too. */
  const step = (name: string, body: () => Promise<void>) =>
    test(name, async () => {
      try {
        await body();
      } catch (error) {
        const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
        await screenshot(page, "browser-failed", slug).catch(() => undefined);
        throw error;
      }
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-ui-"));
    const htpasswd = await writeHtpasswd(dir);
    registry = await startTestRegistry({
      auth: {
        mode: "basic",
        htpasswd,
        policy: {
          admins: ["admin"],
          anonymous: [{ repositories: ["public/**"], actions: ["pull"] }],
          rules: [{ repositories: ["team/**"], users: ["reader"], actions: ["pull"] }],
        },
      },
    });
    layout = await buildOciLayout("ui");
    sandbox = await createContainersSandbox();
    const copy = (source: string, target: string) =>
      sandbox.skopeo([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        `admin:${users.admin}`,
        source,
        `docker://${registry.host}/${target}`,
      ]);
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/web-app:v1");
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/web-app:v2");
    await copy(`oci:${layout.dir}:${layout.multiarch.tag}`, "team/web-app:multi");
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "team/worker:latest");
    await copy(`oci:${layout.dir}:${layout.image.tag}`, "public/hello:latest");

    const head = await fetch(`${registry.url}/v2/team/web-app/manifests/v1`, {
      method: "HEAD",
      headers: { Authorization: admin, Accept: types.ociManifest },
    });
    assert.equal(head.status, 200);
    imageDigest = head.headers.get("docker-content-digest") ?? "";
    const imageSize = Number(head.headers.get("content-length"));

    // An SBOM and a signature that refer to v1 (image-spec manifest.md "subject").
    await withAuthorization(admin, async () => {
      const empty = Buffer.from("{}");
      await pushBlob(registry.url, "team/web-app", empty);
      for (const [artifactType, content] of [
        [sbomType, JSON.stringify({ spdxVersion: "SPDX-2.3", name: "web-app" })],
        [signatureType, JSON.stringify({ critical: { image: { "docker-manifest-digest": imageDigest } } })],
      ] as const) {
        await pushBlob(registry.url, "team/web-app", content);
        const body = imageManifest(
          descriptorOf(types.ociEmpty, empty),
          [descriptorOf(artifactType, content)],
          {
            artifactType,
            subject: { mediaType: types.ociManifest, digest: imageDigest, size: imageSize },
            annotations: { "org.opencontainers.image.created": "2024-05-01T12:00:00Z" },
          },
        );
        const response = await putManifest(registry.url, "team/web-app", digestOf(body), body);
        assert.equal(response.status, 201, await response.text());
        referrers[artifactType] = digestOf(body);
      }
    });

    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: registry.url });
    page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
  });

  after(async () => {
    await browser?.close();
    await registry?.close();
    await sandbox?.remove();
    await layout?.remove();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  step("anonymous visitors see only what the anonymous grants allow", async () => {
    await page.goto(`${registry.url}/`);
    const list = page.getByTestId("repositories");
    await list.getByRole("link", { name: "public/hello" }).waitFor();
    assert.deepEqual(await list.getByRole("link").allTextContents(), ["public/hello"]);
    await snap("anonymous-repositories");
  });

  step("a wrong password is refused, the right one logs in", async () => {
    await page.getByRole("link", { name: "Log in", exact: true }).click();
    await page.getByLabel("User name").fill("admin");
    await page.getByLabel("Password").fill("not-the-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("alert").filter({ hasText: "invalid user name or password" }).waitFor();
    await snap("login-refused");
    await page.getByLabel("Password").fill(users.admin);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("user").filter({ hasText: "admin" }).waitFor();
    const cookies = await context.cookies(registry.url);
    const session = cookies.find((cookie) => cookie.name === "berth_session");
    assert.ok(session, "a session cookie is set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    await page.getByTestId("repositories").getByRole("link", { name: "team/web-app" }).waitFor();
    await snap("logged-in-repositories");
  });

  step("the search filters repositories on the server", async () => {
    const requests: string[] = [];
    const listen = (request: { url(): string }) => requests.push(request.url());
    page.on("request", listen);
    await page.getByRole("searchbox", { name: "Search repositories" }).fill("web");
    const list = page.getByTestId("repositories");
    await page.waitForFunction(() => {
      const links = [...document.querySelectorAll("[data-testid=repositories] a")];
      return links.length === 1 && links[0]?.textContent === "team/web-app";
    });
    page.off("request", listen);
    assert.ok(
      requests.some((url) => /\/ui\/api\/repositories\?q=web/.test(url)),
      `the query went to the server: ${requests.join(", ")}`,
    );
    assert.deepEqual(await list.getByRole("link").allTextContents(), ["team/web-app"]);
    await snap("search-web");
  });

  step("a repository lists its tags with digest, size, push time and an index's platforms", async () => {
    await page.getByTestId("repositories").getByRole("link", { name: "team/web-app" }).click();
    const tags = page.getByTestId("tags");
    await tags.waitFor();
    assert.deepEqual(
      await tags.locator("tbody tr").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-tag"))),
      ["multi", "v1", "v2"],
    );
    const multi = tags.locator('tr[data-tag="multi"]');
    const multiText = await text(multi);
    assert.match(multiText, /index/);
    assert.match(multiText, /linux\/amd64/);
    assert.match(multiText, /linux\/arm64\/v8/);
    const v1 = await text(tags.locator('tr[data-tag="v1"]'));
    assert.ok(v1.includes(imageDigest.slice(0, 19)), `v1 shows its digest: ${v1}`);
    // Config plus layers, what a pull downloads; the fixture's image is a little over 1 KiB.
    const expectedSize = layout.image.config.size + layout.image.layers.reduce((sum, l) => sum + l.size, 0);
    assert.ok(expectedSize > 1024 && expectedSize < 10 * 1024, `fixture size ${expectedSize}`);
    assert.ok(v1.includes(`${(expectedSize / 1024).toFixed(1)} KiB`), `v1 shows its size: ${v1}`);
    assert.match(v1, /just now|minute/);
    await snap("repository-tags");
  });

  step("a tag shows its config, layers, referrers by artifactType and a pull command to copy", async () => {
    await page.getByTestId("tags").getByRole("link", { name: "v1", exact: true }).click();
    const overview = page.getByTestId("overview");
    await overview.waitFor();
    assert.match(await text(overview), new RegExp(imageDigest));

    const config = await text(page.getByTestId("config"));
    assert.match(config, /linux\/amd64/);
    assert.match(config, /PATH=\/usr\/local\/bin:\/usr\/bin:\/bin/);
    assert.match(config, /\/usr\/local\/bin\/hello/);
    assert.match(config, /org\.example\.berth\.fixture/);
    assert.match(config, /\/app/);
    const layers = page.getByTestId("layers");
    assert.equal(await layers.locator("tbody tr").count(), layout.image.layers.length);
    const history = await text(page.getByTestId("history"));
    assert.match(history, /berth fixture: hello/);

    const referrersSection = page.getByTestId("referrers");
    const sboms = referrersSection.locator(`[data-artifact-type="${sbomType}"]`);
    const signatures = referrersSection.locator(`[data-artifact-type="${signatureType}"]`);
    assert.match(await text(sboms), /SPDX SBOMs/);
    assert.match(await text(sboms), new RegExp((referrers[sbomType] ?? "").slice(0, 19)));
    assert.match(await text(signatures), /Cosign signatures/);
    assert.match(await text(signatures), new RegExp((referrers[signatureType] ?? "").slice(0, 19)));

    const pull = page.getByTestId("pull-command").first();
    assert.equal(await text(pull), `docker pull ${registry.host}/team/web-app:v1`);
    await page.getByRole("button", { name: "Copy pull command" }).first().click();
    await page
      .getByRole("button", { name: "Copy pull command" })
      .first()
      .filter({ hasText: "Copied" })
      .waitFor();
    assert.equal(
      await page.evaluate(() => navigator.clipboard.readText()),
      `docker pull ${registry.host}/team/web-app:v1`,
    );
    await snap("manifest-v1");

    // A referrer opens like any manifest and links back to its subject.
    await sboms.getByRole("link").first().click();
    await page.getByTestId("overview").filter({ hasText: sbomType }).waitFor();
    assert.match(await text(page.getByTestId("overview")), /Refers to/);
    await snap("referrer-sbom");
  });

  step("an index shows its platforms", async () => {
    await page.goto(`${registry.url}/#/manifest?repository=team/web-app&reference=multi`);
    const platforms = page.getByTestId("platforms");
    await platforms.waitFor();
    const shown = await text(platforms);
    assert.match(shown, /linux\/amd64/);
    assert.match(shown, /linux\/arm64\/v8/);
    await snap("manifest-index");
  });

  step("deleting a tag removes it from the registry", async () => {
    await page.goto(`${registry.url}/#/repository?name=team/web-app`);
    const row = page.locator('tr[data-tag="v2"]');
    await row.getByRole("button", { name: "Delete" }).click();
    await snap("delete-confirm");
    await row.getByRole("button", { name: "Delete tag v2?" }).click();
    await row.waitFor({ state: "detached" });
    const listed = await fetch(`${registry.url}/v2/team/web-app/tags/list`, {
      headers: { Authorization: admin },
    });
    assert.deepEqual(((await listed.json()) as { tags: string[] }).tags, ["multi", "v1"]);
    // Only the tag went: the manifest it pointed at is still there under v1.
    const v1 = await fetch(`${registry.url}/v2/team/web-app/manifests/${imageDigest}`, {
      method: "HEAD",
      headers: { Authorization: admin, Accept: types.ociManifest },
    });
    assert.equal(v1.status, 200);
    await snap("tag-deleted");
  });

  step("logging out returns to the anonymous view", async () => {
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("link", { name: "Log in", exact: true }).waitFor();
    const list = page.getByTestId("repositories");
    await list.getByRole("link", { name: "public/hello" }).waitFor();
    assert.deepEqual(await list.getByRole("link").allTextContents(), ["public/hello"]);
    const cookies = await context.cookies(registry.url);
    assert.equal(
      cookies.find((cookie) => cookie.name === "berth_session"),
      undefined,
    );
    // A private repository now asks for a login instead of showing anything.
    await page.goto(`${registry.url}/#/repository?name=team/web-app`);
    await page.getByRole("alert").filter({ hasText: "log in" }).waitFor();
    await snap("logged-out");
  });

  step("a user without delete rights sees no delete buttons", async () => {
    await page.getByRole("alert").getByRole("link", { name: "Log in" }).click();
    await page.getByLabel("User name").fill("reader");
    await page.getByLabel("Password").fill(users.reader);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByTestId("user").filter({ hasText: "reader" }).waitFor();
    // Back where the login started.
    const tags = page.getByTestId("tags");
    await tags.waitFor();
    assert.equal(await tags.getByRole("button", { name: "Delete" }).count(), 0);
    await page.getByRole("link", { name: "Repositories" }).click();
    const list = page.getByTestId("repositories");
    await list.getByRole("link", { name: "team/web-app" }).waitFor();
    assert.deepEqual(await list.getByRole("link").allTextContents(), [
      "public/hello",
      "team/web-app",
      "team/worker",
    ]);
    await snap("reader-view");
    assert.deepEqual(pageErrors, [], "no script errors in the page");
  });
});
