import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** Name of the web UI's login cookie. */
export const sessionCookieName = "berth_session";

/**
 * The web UI's login sessions: a cookie holding the user name and an expiry, signed with HMAC-SHA256.
 * Nothing is stored on the server, so any instance holding the same secret accepts it; without a
 * configured secret one is made at start and logins end with the process.
 */
export class UiSessions {
  private readonly key: Buffer;

  constructor(
    secret: string | undefined,
    readonly lifetimeSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    // Derived, so the configured secret is never used directly as a MAC key for anything else.
    this.key = createHmac("sha256", secret ?? randomBytes(32))
      .update("berth ui session")
      .digest();
  }

  /** The cookie value for a fresh login of `user`. */
  issue(user: string): string {
    const payload = Buffer.from(
      JSON.stringify({ u: user, e: Math.floor(this.now() / 1000) + this.lifetimeSeconds }),
    ).toString("base64url");
    return `${payload}.${this.sign(payload)}`;
  }

  /** The user a cookie value vouches for, or undefined when it is forged, malformed or expired. */
  verify(value: string | undefined): string | undefined {
    if (value === undefined || value.length > 1024) return undefined;
    const dot = value.indexOf(".");
    if (dot < 0) return undefined;
    const payload = value.slice(0, dot);
    const given = Buffer.from(value.slice(dot + 1), "base64url");
    const expected = Buffer.from(this.sign(payload), "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as {
        u?: unknown;
        e?: unknown;
      };
      if (typeof claims.u !== "string" || typeof claims.e !== "number") return undefined;
      return claims.e * 1000 > this.now() ? claims.u : undefined;
    } catch {
      return undefined;
    }
  }

  private sign(payload: string): string {
    return createHmac("sha256", this.key).update(payload).digest("base64url");
  }
}

/** One cookie's value from a `Cookie` header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
