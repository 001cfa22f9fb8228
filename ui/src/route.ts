import { useEffect, useState } from "preact/hooks";

/**
 * Pages live in the URL's fragment (`#/repository?name=team/app`), so the server only ever serves one
 * page and repository names, which contain slashes, never need path escaping.
 */
export type Route =
  | { page: "repositories"; q: string }
  | { page: "repository"; name: string }
  | { page: "manifest"; repository: string; reference: string }
  | { page: "login"; back: string };

export function parseRoute(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path = "/", query = ""] = raw.split("?", 2);
  const params = new URLSearchParams(query);
  switch (path) {
    case "/repository":
      return { page: "repository", name: params.get("name") ?? "" };
    case "/manifest":
      return {
        page: "manifest",
        repository: params.get("repository") ?? "",
        reference: params.get("reference") ?? "",
      };
    case "/login":
      return { page: "login", back: params.get("back") ?? "#/" };
    default:
      return { page: "repositories", q: params.get("q") ?? "" };
  }
}

export const href = {
  repositories: (q = "") => (q ? `#/?${new URLSearchParams({ q })}` : "#/"),
  repository: (name: string) => `#/repository?${new URLSearchParams({ name })}`,
  manifest: (repository: string, reference: string) =>
    `#/manifest?${new URLSearchParams({ repository, reference })}`,
  login: (back: string) => `#/login?${new URLSearchParams({ back })}`,
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const update = () => setRoute(parseRoute(location.hash));
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

export function navigate(target: string, replace = false): void {
  if (replace) history.replaceState(null, "", target);
  else location.hash = target.replace(/^#/, "");
  if (replace) dispatchEvent(new HashChangeEvent("hashchange"));
}
