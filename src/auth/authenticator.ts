import { createHash } from "node:crypto";
import type { AuthConfig } from "../config/auth-config.js";
import { RegistryError } from "../oci/errors.js";
import { AccessPolicy, type Principal } from "./access-policy.js";
import { Htpasswd } from "./htpasswd.js";
import { LoginLimiter } from "./login-limiter.js";
import { type Action, covers, formatScope, type Scope } from "./scope.js";
import { TokenService } from "./token-service.js";

/** What a request needs: any valid identity (the base endpoint), or a scope. */
export type Need = { kind: "authenticated" } | { kind: "scope"; scope: Scope };

/** The parts of a request authentication looks at. */
export interface Credentials {
  authorization: string | undefined;
  /** Client address, for the failed-login limit. */
  address: string;
  /** User named by a verified TLS client certificate. */
  certificateUser: string | undefined;
  /** `scheme://host` the client reached, for the default token realm. */
  origin: string;
}

/** The caller of an authorized request, for checks a handler makes on other repositories. */
export interface Caller {
  user: string | undefined;
  /** May the caller pull this repository (cross-repository mount, listings)? */
  mayPull(repository: string): boolean;
  /** Should listings (catalog) show this repository to the caller? */
  mayList(repository: string): boolean;
}

export class Authenticator {
  readonly policy: AccessPolicy;
  private readonly limiter: LoginLimiter;

  private constructor(
    private readonly config: AuthConfig,
    private readonly publicUrl: string | undefined,
    private readonly htpasswd: Htpasswd | undefined,
    readonly tokens: TokenService | undefined,
  ) {
    this.policy = new AccessPolicy(config.policy);
    this.limiter = new LoginLimiter(config.rateLimit.failures, config.rateLimit.windowSeconds * 1000);
  }

  /** Undefined when auth is off (`mode: none`). */
  static async create(config: AuthConfig, publicUrl?: string): Promise<Authenticator | undefined> {
    if (config.mode === "none") return undefined;
    const htpasswd = config.htpasswd ? new Htpasswd(config.htpasswd) : undefined;
    const tokens = config.mode === "token" ? await TokenService.create(config.token) : undefined;
    return new Authenticator(config, publicUrl, htpasswd, tokens);
  }

  get mode(): "basic" | "token" {
    return this.config.mode === "token" ? "token" : "basic";
  }

  /**
   * Checks user name and password (Basic) or a client certificate; anonymous without either.
   * Wrong credentials are 401 with a Basic challenge, too many failures 429.
   */
  async login(credentials: Credentials): Promise<Principal> {
    const basic = parseBasic(credentials.authorization);
    // containers/image answers a Basic challenge with empty credentials when it has none: anonymous.
    if (basic && (basic.user !== "" || basic.password !== "")) {
      const wait = this.limiter.retryAfter(credentials.address);
      if (wait !== undefined) {
        throw new RegistryError("TOOMANYREQUESTS", "too many failed logins; try again later", {
          headers: { "Retry-After": String(wait) },
        });
      }
      if (this.htpasswd && (await this.htpasswd.verify(basic.user, basic.password)))
        return { user: basic.user };
      this.limiter.recordFailure(credentials.address);
      throw new RegistryError("UNAUTHORIZED", "invalid user name or password", {
        headers: { "WWW-Authenticate": `Basic realm="${quote(this.config.basicRealm)}"` },
      });
    }
    if (credentials.certificateUser !== undefined) return { user: credentials.certificateUser };
    return {};
  }

  /**
   * Changes whenever the user's password changes, and is undefined once the user is removed: web UI
   * sessions are bound to it, so they end with the credentials they were opened with.
   */
  credentialStamp(user: string): string | undefined {
    const entry = this.htpasswd?.entry(user);
    // A digest of the entry, so the bcrypt hash itself never leaves the htpasswd module.
    return entry === undefined ? undefined : createHash("sha256").update(entry).digest("base64url");
  }

  /** Authorizes one registry request, or throws the spec's 401/403/429 with the right challenge. */
  async authorize(credentials: Credentials, need: Need): Promise<Caller> {
    return this.mode === "token"
      ? this.authorizeToken(credentials, need)
      : this.authorizeBasic(credentials, need);
  }

  private async authorizeBasic(credentials: Credentials, need: Need): Promise<Caller> {
    const principal = await this.login(credentials);
    const caller: Caller = {
      user: principal.user,
      mayPull: (repository) => this.policy.allows(principal, repository, "pull"),
      mayList: (repository) => this.policy.allows(principal, repository, "pull"),
    };
    const challenge = () => `Basic realm="${quote(this.config.basicRealm)}"`;
    if (need.kind === "authenticated") {
      if (principal.user === undefined) throw unauthorized(challenge(), undefined);
      return caller;
    }
    if (this.policyGrants(principal, need.scope)) return caller;
    if (principal.user === undefined) throw unauthorized(challenge(), need.scope);
    throw denied(need.scope, {});
  }

  private async authorizeToken(credentials: Credentials, need: Need): Promise<Caller> {
    const scope = need.kind === "scope" ? need.scope : undefined;
    const bearer = parseBearer(credentials.authorization);
    if (bearer === undefined) throw unauthorized(this.bearerChallenge(credentials, scope), scope);
    const tokens = this.tokens as TokenService;
    let verified: Awaited<ReturnType<TokenService["verify"]>>;
    try {
      verified = await tokens.verify(bearer);
    } catch {
      throw unauthorized(this.bearerChallenge(credentials, scope, "invalid_token"), scope, "invalid token");
    }
    const user = verified.subject === "" ? undefined : verified.subject;
    const caller: Caller = {
      user,
      mayPull: (repository) =>
        covers(verified.access, { type: "repository", name: repository, actions: ["pull"] }),
      // berth's own policy filters listings for its own tokens; an external issuer's grant stands as given.
      mayList: (repository) =>
        !tokens.issues || this.policy.allows(user === undefined ? {} : { user }, repository, "pull"),
    };
    if (scope === undefined || covers(verified.access, scope)) return caller;
    const challenge = this.bearerChallenge(credentials, scope, "insufficient_scope");
    if (user === undefined) throw unauthorized(challenge, scope);
    throw denied(scope, { "WWW-Authenticate": challenge });
  }

  /** The actions of a requested scope the principal's policy allows, for the token endpoint. */
  grant(principal: Principal, requested: Scope): Scope | undefined {
    if (requested.type === "registry" && requested.name === "catalog") {
      return this.policy.mayListCatalog(principal) ? { ...requested, actions: ["*"] } : undefined;
    }
    if (requested.type !== "repository") return undefined;
    const allowed = this.policy.allowedActions(principal, requested.name);
    const wanted = requested.actions.includes("*") ? ["pull", "push", "delete"] : requested.actions;
    const granted = wanted.filter((action) => allowed.has(action as Action));
    return granted.length > 0 ? { type: "repository", name: requested.name, actions: granted } : undefined;
  }

  private policyGrants(principal: Principal, scope: Scope): boolean {
    const granted = this.grant(principal, scope);
    return granted !== undefined && covers([granted], scope);
  }

  private bearerChallenge(credentials: Credentials, scope: Scope | undefined, error?: string): string {
    const realm =
      this.config.token.realm ?? `${(this.publicUrl ?? credentials.origin).replace(/\/+$/, "")}/token`;
    let challenge = `Bearer realm="${quote(realm)}",service="${quote(this.config.token.service)}"`;
    if (scope) challenge += `,scope="${quote(formatScope(scope))}"`;
    if (error) challenge += `,error="${error}"`;
    return challenge;
  }
}

function accessDetail(scope: Scope | undefined): unknown {
  if (!scope) return undefined;
  return scope.actions.map((action) => ({ type: scope.type, name: scope.name, action }));
}

function unauthorized(challenge: string, scope: Scope | undefined, message?: string): RegistryError {
  return new RegistryError("UNAUTHORIZED", message, {
    detail: accessDetail(scope),
    headers: { "WWW-Authenticate": challenge },
  });
}

function denied(scope: Scope, headers: Record<string, string>): RegistryError {
  return new RegistryError("DENIED", undefined, { detail: accessDetail(scope), headers });
}

function quote(value: string): string {
  return value.replace(/["\\]/g, "\\$&");
}

export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function parseBearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+([A-Za-z0-9._~+/=-]+)\s*$/i.exec(header);
  return match?.[1];
}
