import type { AccessPolicyConfig } from "../config/auth-config.js";
import type { Action } from "./scope.js";

/** Who is asking: a user name, or nobody (anonymous). */
export interface Principal {
  user?: string;
}

interface CompiledGrant {
  patterns: RegExp[];
  actions: Set<Action>;
}

/**
 * Compiles a repository glob: `*` matches within one path component, `**` any number of components
 * (`team-a/**` matches `team-a/x` and `team-a/x/y`, not `team-a` itself), `?` one character.
 */
export function compileGlob(glob: string): RegExp {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] as string;
    if (char === "*" && glob[i + 1] === "*") {
      source += ".*";
      i++;
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/** Answers "may user U do A on repository R?" from the configured rules; grants add up, nothing denies. */
export class AccessPolicy {
  private readonly admins: Set<string>;
  private readonly anonymous: CompiledGrant[];
  private readonly authenticated: CompiledGrant[];
  private readonly byUser = new Map<string, CompiledGrant[]>();

  constructor(config: AccessPolicyConfig) {
    const compile = (grant: { repositories: string[]; actions: Action[] }): CompiledGrant => ({
      patterns: grant.repositories.map(compileGlob),
      actions: new Set(grant.actions),
    });
    this.admins = new Set(config.admins);
    this.anonymous = config.anonymous.map(compile);
    this.authenticated = config.authenticated.map(compile);
    for (const rule of config.rules) {
      const compiled = compile(rule);
      const users = new Set(rule.users);
      for (const group of rule.groups) for (const member of config.groups[group] ?? []) users.add(member);
      for (const user of users) {
        const list = this.byUser.get(user) ?? [];
        list.push(compiled);
        this.byUser.set(user, list);
      }
    }
  }

  isAdmin(principal: Principal): boolean {
    return principal.user !== undefined && this.admins.has(principal.user);
  }

  /** The actions the principal holds on a repository. */
  allowedActions(principal: Principal, repository: string): Set<Action> {
    const out = new Set<Action>();
    if (this.isAdmin(principal)) return new Set(["pull", "push", "delete"]);
    const grants = [...this.anonymous];
    if (principal.user !== undefined) {
      grants.push(...this.authenticated, ...(this.byUser.get(principal.user) ?? []));
    }
    for (const grant of grants) {
      if (!grant.patterns.some((pattern) => pattern.test(repository))) continue;
      for (const action of grant.actions) out.add(action);
    }
    return out;
  }

  allows(principal: Principal, repository: string, action: Action): boolean {
    return this.allowedActions(principal, repository).has(action);
  }

  /** The catalog is open to anyone who may pull something at all; its content is filtered per repository. */
  mayListCatalog(principal: Principal): boolean {
    if (principal.user !== undefined) return true;
    return this.anonymous.some((grant) => grant.actions.has("pull"));
  }
}
