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

  /**
   * The cookie value for a fresh login of `user`. `stamp` (the user's credential stamp) is signed but not
   * written into the cookie: when it changes, every cookie issued before stops verifying.
   */
  issue(user: string, stamp: string): string {
    const payload = Buffer.from(
      JSON.stringify({ u: user, e: Math.floor(this.now() / 1000) + this.lifetimeSeconds }),
    ).toString("base64url");
    return `${payload}.${this.sign(payload, stamp)}`;
  }

  /**
   * The user a cookie value vouches for, or undefined when it is forged, malformed, expired, or its
   * user's credentials changed since (`stampOf` answers the current stamp, undefined for a removed user).
   */
  verify(value: string | undefined, stampOf: (user: string) => string | undefined): string | undefined {
    if (value === undefined || value.length > 1024) return undefined;
    const dot = value.indexOf(".");
    if (dot < 0) return undefined;
    const payload = value.slice(0, dot);
    let claims: { u?: unknown; e?: unknown };
    try {
      claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as typeof claims;
    } catch {
      return undefined;
    }
    if (typeof claims.u !== "string" || typeof claims.e !== "number") return undefined;
    const stamp = stampOf(claims.u);
    if (stamp === undefined) return undefined;
    const given = Buffer.from(value.slice(dot + 1), "base64url");
    const expected = Buffer.from(this.sign(payload, stamp), "base64url");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    return claims.e * 1000 > this.now() ? claims.u : undefined;
  }

  private sign(payload: string, stamp: string): string {
    return createHmac("sha256", this.key).update(`${payload}\0${stamp}`).digest("base64url");
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
