import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import { Agent, fetch, type Response } from "undici";
import type { UpstreamConfig } from "./proxy-config.js";
import type { ProxyMetrics } from "./proxy-metrics.js";

/** The upstream could not be asked (network, TLS, timeout) or answered with a server error. */
export class UpstreamUnavailableError extends Error {
  constructor(
    readonly upstream: string,
    reason: string,
  ) {
    super(`upstream registry ${upstream} is unavailable: ${reason}`);
    this.name = "UpstreamUnavailableError";
  }
}

interface CachedAuthorization {
  header: string;
  /** ms since epoch after which the token must not be used again. */
  expiresAt: number;
}

/** Tokens without `expires_in` last 60 s (distribution token spec); refreshed a little early. */
const defaultTokenSeconds = 60;
const tokenRefreshMarginMs = 5_000;

/**
 * HTTP to one upstream registry, with its authentication: basic auth, or the Bearer challenge dance
 * (anonymous or with credentials) with tokens cached per scope until they expire.
 */
export class UpstreamClient {
  readonly origin: string;
  private readonly dispatcher: Agent;
  private readonly basicCredentials: string | undefined;
  /** Keyed by scope: a token for `repository:a:pull` says nothing about `repository:b:pull`. */
  private readonly tokens = new Map<string, CachedAuthorization>();
  private readonly pendingTokens = new Map<string, Promise<CachedAuthorization>>();
  /** Set once the upstream asked for Basic: later requests send it right away. */
  private usesBasic = false;

  constructor(
    private readonly config: UpstreamConfig,
    private readonly metrics: ProxyMetrics,
  ) {
    this.origin = new URL(config.url).origin;
    const password =
      config.passwordFile !== undefined ? readFileSync(config.passwordFile, "utf8").trim() : config.password;
    this.basicCredentials =
      config.username !== undefined && password !== undefined
        ? `Basic ${Buffer.from(`${config.username}:${password}`).toString("base64")}`
        : undefined;
    const timeout = config.timeoutSeconds * 1000;
    this.dispatcher = new Agent({
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connectTimeout: timeout,
      connect: {
        rejectUnauthorized: !config.tls.insecureSkipVerify,
        // Added to the system's roots, not instead: upstreams often redirect blob GETs to a public CDN.
        ...(config.tls.caFile !== undefined
          ? { ca: [...rootCertificates, readFileSync(config.tls.caFile, "utf8")] }
          : {}),
      },
    });
  }

  /**
   * Sends a bodiless request to `path` (under /v2/), authenticating for `scope` as the upstream asks.
   * Resolves with any response the upstream gave below 500 (the caller reads 404 and friends);
   * rejects with UpstreamUnavailableError when there was no usable answer.
   */
  async request(method: "GET" | "HEAD", path: string, scope: string, accept?: string): Promise<Response> {
    // Identity encoding: Content-Length and the digest must describe the bytes as the upstream stores them.
    const headers: Record<string, string> = { "Accept-Encoding": "identity" };
    if (accept !== undefined) headers.Accept = accept;
    const cached = this.cachedAuthorization(scope);
    if (cached !== undefined) headers.Authorization = cached;
    let response = await this.send(method, path, headers);
    if (response.status === 401) {
      const challenge = response.headers.get("www-authenticate");
      await response.body?.cancel();
      const authorization = await this.answerChallenge(challenge, scope);
      // A challenge we cannot meet: the caller sees the 401 (its body is already discarded).
      if (authorization === undefined) return response;
      response = await this.send(method, path, { ...headers, Authorization: authorization });
    }
    if (response.status >= 500 || response.status === 429) {
      await response.body?.cancel();
      throw new UpstreamUnavailableError(this.origin, `${method} ${path} answered ${response.status}`);
    }
    return response;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  private async send(method: string, path: string, headers: Record<string, string>): Promise<Response> {
    this.metrics.add(this.config.prefix, "upstreamRequests");
    try {
      return await fetch(`${this.origin}${path}`, { method, headers, dispatcher: this.dispatcher });
    } catch (error) {
      throw new UpstreamUnavailableError(this.origin, describeNetworkError(error));
    }
  }

  private cachedAuthorization(scope: string): string | undefined {
    const token = this.tokens.get(scope);
    if (token !== undefined && token.expiresAt > Date.now()) return token.header;
    if (token !== undefined) this.tokens.delete(scope);
    return this.usesBasic ? this.basicCredentials : undefined;
  }

  /** The Authorization header the challenge asks for, or undefined when it cannot be met. */
  private async answerChallenge(header: string | null, scope: string): Promise<string | undefined> {
    const challenge = parseChallenge(header);
    if (challenge === undefined) return undefined;
    if (challenge.scheme === "basic") {
      if (this.basicCredentials === undefined) return undefined;
      this.usesBasic = true;
      return this.basicCredentials;
    }
    if (challenge.scheme !== "bearer" || challenge.params.realm === undefined) return undefined;
    const realm = challenge.params.realm;
    const service = challenge.params.service;
    // Concurrent misses in one repository share a single token request.
    let pending = this.pendingTokens.get(scope);
    if (pending === undefined) {
      pending = this.fetchToken(realm, service, challenge.params.scope ?? scope).finally(() =>
        this.pendingTokens.delete(scope),
      );
      this.pendingTokens.set(scope, pending);
    }
    const token = await pending;
    this.tokens.set(scope, token);
    return token.header;
  }

  private async fetchToken(
    realm: string,
    service: string | undefined,
    scope: string,
  ): Promise<CachedAuthorization> {
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new UpstreamUnavailableError(this.origin, "its Bearer challenge names an invalid realm");
    }
    if (service !== undefined) url.searchParams.set("service", service);
    url.searchParams.set("scope", scope);
    const headers: Record<string, string> = {};
    if (this.basicCredentials !== undefined) headers.Authorization = this.basicCredentials;
    this.metrics.add(this.config.prefix, "tokenFetches");
    let response: Response;
    try {
      response = await fetch(url, { headers, dispatcher: this.dispatcher });
    } catch (error) {
      throw new UpstreamUnavailableError(this.origin, `token endpoint: ${describeNetworkError(error)}`);
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      // Wrong credentials are a configuration problem of this registry, not the client's.
      throw new UpstreamUnavailableError(this.origin, `token endpoint answered ${response.status}`);
    }
    const body = (await response.json().catch(() => ({}))) as {
      token?: unknown;
      access_token?: unknown;
      expires_in?: unknown;
      issued_at?: unknown;
    };
    const token = typeof body.token === "string" ? body.token : body.access_token;
    if (typeof token !== "string" || token === "")
      throw new UpstreamUnavailableError(this.origin, "token endpoint answered without a token");
    const lifetime =
      typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : defaultTokenSeconds;
    // Counted from our clock, not issued_at: the upstream's clock may be skewed.
    const expiresAt = Date.now() + lifetime * 1000 - Math.min(tokenRefreshMarginMs, (lifetime * 1000) / 2);
    return { header: `Bearer ${token}`, expiresAt };
  }
}

/** `Bearer realm="...",service="...",scope="..."` (RFC 7235 auth-params, quoted or token values). */
export function parseChallenge(
  header: string | null,
): { scheme: string; params: Record<string, string> } | undefined {
  if (header === null) return undefined;
  const match = /^\s*([A-Za-z]+)(?:\s+(.*))?$/.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  for (const param of (match[2] ?? "").matchAll(/([A-Za-z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
    const value = param[2] !== undefined ? param[2].replace(/\\(.)/g, "$1") : (param[3] ?? "");
    params[(param[1] as string).toLowerCase()] = value;
  }
  return { scheme: (match[1] as string).toLowerCase(), params };
}

function describeNetworkError(error: unknown): string {
  // fetch reports "fetch failed"; the cause says what failed (ECONNREFUSED, a certificate problem...).
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause === undefined) return (error as Error).message;
  return [cause.code, cause.message].filter((part) => part !== undefined && part !== "").join(": ");
}
