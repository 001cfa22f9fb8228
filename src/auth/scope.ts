/**
 * Access scopes of the Docker token protocol (distribution docs/spec/auth/scope.md):
 * `repository:team-a/app:pull,push`, `registry:catalog:*`.
 */

export type Action = "pull" | "push" | "delete";
export const actions: readonly Action[] = ["pull", "push", "delete"];

export interface Scope {
  /** `repository` or `registry`. */
  type: string;
  /** Repository name, or `catalog` for the registry type. */
  name: string;
  /** Actions asked for or granted; `*` stands for everything on the registry type. */
  actions: string[];
}

/** Parses one scope string; the name may hold a `host:port/` prefix, so the actions follow the last colon. */
export function parseScope(value: string): Scope | undefined {
  const first = value.indexOf(":");
  const last = value.lastIndexOf(":");
  if (first <= 0 || last === first) return undefined;
  const type = value.slice(0, first);
  const name = value.slice(first + 1, last);
  const list = value
    .slice(last + 1)
    .split(",")
    .filter((action) => action !== "");
  if (!/^[a-z0-9]+(\([a-z0-9]+\))?$/.test(type) || name === "") return undefined;
  return { type, name, actions: [...new Set(list)] };
}

/** `scope` query values may each hold several space-separated scopes. */
export function parseScopes(values: string[]): Scope[] {
  const out: Scope[] = [];
  for (const value of values) {
    for (const part of value.split(" ")) {
      if (part === "") continue;
      const scope = parseScope(part);
      if (scope) out.push(scope);
    }
  }
  return out;
}

export function formatScope(scope: Scope): string {
  return `${scope.type}:${scope.name}:${scope.actions.join(",")}`;
}

export const catalogScope: Scope = { type: "registry", name: "catalog", actions: ["*"] };

export function repositoryScope(name: string, needed: Action[]): Scope {
  return { type: "repository", name, actions: needed };
}

/** True when the granted scopes cover every action the needed one asks for. */
export function covers(granted: readonly Scope[], needed: Scope): boolean {
  return needed.actions.every((action) =>
    granted.some(
      (scope) =>
        scope.type === needed.type &&
        scope.name === needed.name &&
        (scope.actions.includes(action) || scope.actions.includes("*")),
    ),
  );
}
