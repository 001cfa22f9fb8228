import type {
  UiErrorBody,
  UiManifest,
  UiRepositoryPage,
  UiSession,
  UiTagPage,
} from "../../src/http/ui-api.js";

export type {
  DescriptorView,
  ImageConfigView,
  PlatformView,
  ReferrerGroupView,
  RepositoryView,
  TagView,
} from "../../src/registry/browse-view.js";
export type { UiManifest, UiRepositoryPage, UiSession, UiTagPage };

/** An error answer of the UI API, with the registry's error code (UNAUTHORIZED, DENIED, ...). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Params = Record<string, string | undefined>;

/** Calls `ui/api/<path>` relative to the page, so the UI works under any configured base path. */
async function call<T>(method: string, path: string, params: Params = {}, body?: unknown): Promise<T> {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) search.set(key, value);
  const query = search.toString();
  const headers: Record<string, string> = { Accept: "application/json" };
  // Required on every change: the server refuses mutating requests without it (CSRF).
  if (method !== "GET") headers["X-Berth-UI"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`ui/api/${path}${query ? `?${query}` : ""}`, {
    method,
    headers,
    credentials: "same-origin",
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  if (!response.ok) {
    let code = "UNKNOWN";
    let message = `${response.status} ${response.statusText}`;
    try {
      const error = (JSON.parse(text) as UiErrorBody).errors[0];
      if (error) ({ code, message } = error);
    } catch {
      // not a registry error body; keep the status line
    }
    throw new ApiError(response.status, code, message);
  }
  return JSON.parse(text) as T;
}

export const api = {
  session: () => call<UiSession>("GET", "session"),
  login: (user: string, password: string) => call<{ user: string }>("POST", "login", {}, { user, password }),
  logout: () => call<{ user: null }>("POST", "logout"),
  repositories: (q: string, last?: string) => call<UiRepositoryPage>("GET", "repositories", { q, last }),
  tags: (repository: string, last?: string) => call<UiTagPage>("GET", "tags", { repository, last }),
  manifest: (repository: string, reference: string) =>
    call<UiManifest>("GET", "manifest", { repository, reference }),
  deleteManifest: (repository: string, reference: string) =>
    call<{ deleted: true }>("DELETE", "manifest", { repository, reference }),
};
