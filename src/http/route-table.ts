/**
 * The named routes of the distribution API (distribution-spec "Endpoints"), matched against the raw,
 * undecoded path: a valid name, tag or digest never contains '%', so nothing encoded can sneak through.
 */
export type RouteName =
  | "base"
  | "catalog"
  | "tags"
  | "manifest"
  | "blob"
  | "blob-upload"
  | "blob-upload-chunk"
  | "referrers";

export interface RouteMatch {
  route: RouteName;
  /** The repository `<name>`, still unvalidated. */
  name: string;
  /** The last path segment: reference, digest or upload id, still unvalidated. */
  target: string;
}

// Ordered: "uploads" must win over a blob digest; names are greedy because they contain slashes.
const patterns: [RouteName, RegExp][] = [
  ["tags", /^\/v2\/(.+)\/tags\/list$/],
  ["manifest", /^\/v2\/(.+)\/manifests\/([^/]+)$/],
  ["blob-upload", /^\/v2\/(.+)\/blobs\/uploads\/?()$/],
  ["blob-upload-chunk", /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/],
  ["blob", /^\/v2\/(.+)\/blobs\/([^/]+)$/],
  ["referrers", /^\/v2\/(.+)\/referrers\/([^/]+)$/],
];

export function matchRoute(path: string): RouteMatch | undefined {
  if (path === "/v2/" || path === "/v2") return { route: "base", name: "", target: "" };
  if (path === "/v2/_catalog") return { route: "catalog", name: "", target: "" };
  for (const [route, pattern] of patterns) {
    const match = pattern.exec(path);
    if (match) return { route, name: match[1] ?? "", target: match[2] ?? "" };
  }
  return undefined;
}

/** Methods each route answers; anything else is 405. HEAD is listed explicitly where it is served. */
export const routeMethods: Record<RouteName, readonly string[]> = {
  base: ["GET", "HEAD"],
  catalog: ["GET"],
  tags: ["GET"],
  manifest: ["GET", "HEAD", "PUT", "DELETE"],
  blob: ["GET", "HEAD", "DELETE"],
  "blob-upload": ["POST"],
  "blob-upload-chunk": ["GET", "PATCH", "PUT", "DELETE"],
  referrers: ["GET"],
};

/** The web UI's named routes, under its base path (`ui.path`, ending in "/"); none is under /v2/. */
export type UiRouteName =
  | "ui-page"
  | "ui-asset"
  | "ui-session"
  | "ui-login"
  | "ui-logout"
  | "ui-repositories"
  | "ui-tags"
  | "ui-manifest";

export function uiRoutePaths(base: string): Record<UiRouteName, string> {
  return {
    "ui-page": base,
    "ui-asset": `${base}ui/assets/:file`,
    "ui-session": `${base}ui/api/session`,
    "ui-login": `${base}ui/api/login`,
    "ui-logout": `${base}ui/api/logout`,
    "ui-repositories": `${base}ui/api/repositories`,
    "ui-tags": `${base}ui/api/tags`,
    "ui-manifest": `${base}ui/api/manifest`,
  };
}
