import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Principal } from "../../auth/access-policy.js";
import type { Authenticator } from "../../auth/authenticator.js";
import type { Action } from "../../auth/scope.js";
import type { BerthConfig } from "../../config/config.js";
import { RegistryError } from "../../oci/errors.js";
import { parseReference } from "../../oci/reference.js";
import { isRepositoryName, isTag, parseRepositoryName } from "../../oci/repository-name.js";
import { BrowseService } from "../../registry/browse.js";
import type { Registry } from "../../registry/registry.js";
import { requestCredentials } from "../credentials.js";
import { type UiRouteName, uiRoutePaths } from "../route-table.js";
import type { UiManifest, UiRepositoryPage, UiSession, UiTagPage } from "../ui-api.js";
import { readCookie, sessionCookieName, UiSessions } from "../ui-session.js";

/** Where `npm run build` puts the bundled UI: dist/ui, next to dist/src. */
const bundleDir = fileURLToPath(new URL("../../../ui/", import.meta.url));

/** Mutating UI requests must carry this header: a cross-site form cannot, and a cross-site fetch needs CORS. */
export const uiRequestHeader = "x-berth-ui";

const contentTypes: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

const pageHeaders = {
  "Content-Security-Policy":
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

interface Asset {
  bytes: Buffer;
  type: string;
  etag: string;
}

/** Who is looking: a user from the session cookie (or a client certificate), or nobody. */
interface Viewer {
  user: string | undefined;
  may(repository: string, action: Action): boolean;
  /** Sees every repository without a per-name check (auth off, or an admin). */
  seesEverything: boolean;
}

interface UiContext {
  request: FastifyRequest;
  reply: FastifyReply;
  query: URLSearchParams;
  viewer: Viewer;
}

type UiHandler = (ctx: UiContext) => Promise<void>;

/**
 * The web UI: the bundled single page at `ui.path`, its assets, and a small JSON API over the browse
 * use cases. Logins use the registry's own credentials and access policy.
 */
export function registerUi(
  app: FastifyInstance,
  registry: Registry,
  config: BerthConfig,
  authenticator: Authenticator | undefined,
): void {
  const base = config.ui.path.endsWith("/") ? config.ui.path : `${config.ui.path}/`;
  const paths = uiRoutePaths(base);
  const browse = new BrowseService(registry.ctx, registry.manifests, registry.discovery);
  const sessions = new UiSessions(config.ui.sessionSecret, config.ui.sessionSeconds);
  const bundle = loadBundle(app);
  const pageLimit = Math.min(100, config.limits.pageSize);

  const viewerOf = (request: FastifyRequest): Viewer => {
    if (!authenticator) return { user: undefined, may: () => true, seesEverything: true };
    const user =
      sessions.verify(readCookie(request.headers.cookie, sessionCookieName), (name) =>
        authenticator.credentialStamp(name),
      ) ?? requestCredentials(request).certificateUser;
    const principal: Principal = user === undefined ? {} : { user };
    return {
      user,
      may: (repository, action) => authenticator.policy.allows(principal, repository, action),
      seesEverything: authenticator.policy.isAdmin(principal),
    };
  };

  const cookie = (request: FastifyRequest, value: string, maxAge: number): string => {
    const secure = request.protocol === "https" || config.publicUrl?.startsWith("https:") === true;
    return `${sessionCookieName}=${value}; Path=${base}; Max-Age=${maxAge}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
  };

  const session: UiHandler = async ({ reply, viewer }) => {
    const body: UiSession = {
      user: viewer.user ?? null,
      authEnabled: authenticator !== undefined,
      deletesEnabled: config.deletes.enabled,
      registryHost: config.publicUrl ? new URL(config.publicUrl).host : null,
    };
    sendJson(reply, body);
  };

  const login: UiHandler = async ({ request, reply }) => {
    requireUiRequest(request);
    if (!authenticator)
      throw new RegistryError("UNSUPPORTED", "authentication is off: there is nothing to log in to");
    const body = await readJson(request.raw, 4096);
    const user = typeof body.user === "string" ? body.user : "";
    const password = typeof body.password === "string" ? body.password : "";
    if (user === "" || password === "" || user.includes(":"))
      throw new RegistryError("UNAUTHORIZED", "user name and password are required");
    const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    // The same check as every registry request: htpasswd, bcrypt, and the failed-login limit.
    const principal = await authenticator
      .login({ ...requestCredentials(request), authorization })
      .catch((error: unknown) => {
        // No WWW-Authenticate here: a browser would answer it with its own login dialog.
        if (error instanceof RegistryError && error.code === "UNAUTHORIZED")
          throw new RegistryError("UNAUTHORIZED", "invalid user name or password");
        throw error;
      });
    const stamp = authenticator.credentialStamp(user);
    if (principal.user !== user || stamp === undefined)
      throw new RegistryError("UNAUTHORIZED", "invalid user name or password");
    reply.header("Set-Cookie", cookie(request, sessions.issue(user, stamp), sessions.lifetimeSeconds));
    sendJson(reply, { user });
  };

  const logout: UiHandler = async ({ request, reply }) => {
    requireUiRequest(request);
    reply.header("Set-Cookie", cookie(request, "", 0));
    sendJson(reply, { user: null });
  };

  const repositories: UiHandler = async ({ reply, query, viewer }) => {
    const q = query.get("q") ?? "";
    if (q.length > 255) throw badRequest("q must be at most 255 characters");
    const last = query.get("last") || undefined;
    if (last !== undefined && !isRepositoryName(last)) throw badRequest("last must be a repository name");
    const n = pageSize(query, pageLimit);
    const visible = viewer.seesEverything ? undefined : (name: string) => viewer.may(name, "pull");
    const found = await browse.repositories(q, n, last, visible);
    const body: UiRepositoryPage = { repositories: found.items, next: found.next ?? null };
    sendJson(reply, body);
  };

  const tags: UiHandler = async ({ reply, query, viewer }) => {
    const repository = parseRepositoryName(query.get("repository") ?? "");
    requireAccess(viewer, repository, "pull");
    const last = query.get("last") || undefined;
    if (last !== undefined && !isTag(last)) throw badRequest("last must be a tag");
    const found = await browse.tags(repository, pageSize(query, pageLimit), last);
    const body: UiTagPage = {
      repository,
      tags: found.items,
      next: found.next ?? null,
      mayDelete: config.deletes.enabled && viewer.may(repository, "delete"),
    };
    sendJson(reply, body);
  };

  const manifest: UiHandler = async ({ reply, query, viewer }) => {
    const repository = parseRepositoryName(query.get("repository") ?? "");
    requireAccess(viewer, repository, "pull");
    const view = await browse.manifest(repository, reference(query));
    const body: UiManifest = {
      ...view,
      mayDelete: config.deletes.enabled && viewer.may(repository, "delete"),
    };
    sendJson(reply, body);
  };

  /** A tag removes only the tag; a digest the manifest and every tag on it (distribution-spec end-9). */
  const deleteManifest: UiHandler = async ({ request, reply, query, viewer }) => {
    requireUiRequest(request);
    const repository = parseRepositoryName(query.get("repository") ?? "");
    requireAccess(viewer, repository, "delete");
    await registry.manifests.delete(repository, reference(query));
    request.log.info(
      { repository, reference: query.get("reference"), user: viewer.user },
      "deleted from the UI",
    );
    sendJson(reply, { deleted: true });
  };

  const page: UiHandler = async ({ request, reply }) => {
    if (!bundle.page) throw bundleMissing();
    const asset = bundle.page;
    reply.headers(pageHeaders).header("Cache-Control", "no-cache").header("ETag", asset.etag);
    if (request.headers["if-none-match"] === asset.etag) {
      reply.code(304).send();
      return;
    }
    reply.code(200).header("Content-Type", asset.type).send(asset.bytes);
  };

  const asset: UiHandler = async ({ request, reply }) => {
    if (!bundle.page) throw bundleMissing();
    const file = (request.params as { file?: string }).file ?? "";
    const found = bundle.assets.get(file);
    if (!found) throw new RegistryError("NAME_UNKNOWN", "no such file", { status: 404 });
    // Names carry a hash of their content, so a browser may keep them for good.
    reply
      .code(200)
      .header("Content-Type", found.type)
      .header("Cache-Control", "public, max-age=31536000, immutable")
      .header("X-Content-Type-Options", "nosniff")
      .send(found.bytes);
  };

  const dispatchers: Record<UiRouteName, Partial<Record<string, UiHandler>>> = {
    "ui-page": { GET: page, HEAD: page },
    "ui-asset": { GET: asset, HEAD: asset },
    "ui-session": { GET: session },
    "ui-login": { POST: login },
    "ui-logout": { POST: logout },
    "ui-repositories": { GET: repositories },
    "ui-tags": { GET: tags },
    "ui-manifest": { GET: manifest, DELETE: deleteManifest },
  };

  for (const [route, url] of Object.entries(paths) as [UiRouteName, string][]) {
    app.route({
      method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
      url,
      handler: async (request, reply) => {
        const handler = dispatchers[route][request.method];
        if (!handler)
          throw new RegistryError("UNSUPPORTED", `${request.method} is not supported here`, { status: 405 });
        const rawUrl = request.raw.url ?? "";
        const queryStart = rawUrl.indexOf("?");
        const query = new URLSearchParams(queryStart < 0 ? "" : rawUrl.slice(queryStart + 1));
        await handler({ request, reply, query, viewer: viewerOf(request) });
        return reply;
      },
    });
  }
  // `/registry` without its slash would resolve the page's relative asset URLs against `/`.
  if (base !== "/") app.get(base.slice(0, -1), (_request, reply) => reply.redirect(base, 308));
}

function loadBundle(app: FastifyInstance): { page: Asset | undefined; assets: Map<string, Asset> } {
  const assets = new Map<string, Asset>();
  const indexPath = join(bundleDir, "index.html");
  if (!existsSync(indexPath)) {
    app.log.warn({ bundleDir }, "the web UI is enabled but not built (npm run build bundles it)");
    return { page: undefined, assets };
  }
  const assetDir = join(bundleDir, "assets");
  for (const name of existsSync(assetDir) ? readdirSync(assetDir) : []) {
    const type = contentTypes[extname(name)];
    if (type) assets.set(name, asset(readFileSync(join(assetDir, name)), type));
  }
  return { page: asset(readFileSync(indexPath), "text/html; charset=utf-8"), assets };
}

function asset(bytes: Buffer, type: string): Asset {
  return { bytes, type, etag: `"${createHash("sha256").update(bytes).digest("base64url").slice(0, 27)}"` };
}

function bundleMissing(): RegistryError {
  return new RegistryError("UNAVAILABLE", "the web UI was not built; run npm run build", { status: 503 });
}

function sendJson(reply: FastifyReply, body: unknown): void {
  // A Buffer, so Fastify does not append a charset; never cached, since answers depend on the login.
  reply
    .code(200)
    .header("Content-Type", "application/json")
    .header("Cache-Control", "no-store")
    .send(Buffer.from(JSON.stringify(body)));
}

function requireUiRequest(request: FastifyRequest): void {
  const origin = request.headers.origin;
  let sameOrigin = true;
  if (origin !== undefined) {
    try {
      sameOrigin = new URL(origin).host === request.host;
    } catch {
      sameOrigin = false;
    }
  }
  if (request.headers[uiRequestHeader] !== "1" || !sameOrigin)
    throw new RegistryError("DENIED", "cross-site request refused");
}

function requireAccess(viewer: Viewer, repository: string, action: Action): void {
  if (viewer.may(repository, action)) return;
  if (viewer.user === undefined)
    throw new RegistryError(
      "UNAUTHORIZED",
      action === "pull" ? "log in to see this repository" : "log in first",
    );
  throw new RegistryError("DENIED", `${viewer.user} may not ${action} ${repository}`);
}

function reference(query: URLSearchParams) {
  const value = query.get("reference") ?? "";
  if (!value.includes(":") && !isTag(value))
    throw new RegistryError("MANIFEST_UNKNOWN", undefined, { detail: { reference: value.slice(0, 200) } });
  return parseReference(value);
}

function pageSize(query: URLSearchParams, max: number): number {
  const raw = query.get("n");
  if (raw === null || raw === "") return Math.min(50, max);
  if (!/^\d{1,4}$/.test(raw) || Number(raw) === 0) throw badRequest(`n must be an integer from 1 to ${max}`);
  return Math.min(Number(raw), max);
}

function badRequest(message: string): RegistryError {
  return new RegistryError("UNSUPPORTED", message, { status: 400 });
}

async function readJson(raw: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw new RegistryError("UNSUPPORTED", "request body too large", { status: 413 });
    chunks.push(chunk);
  }
  try {
    const json: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (typeof json === "object" && json !== null && !Array.isArray(json))
      return json as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw badRequest("body must be a JSON object");
}
