import { createPrivateKey, createPublicKey, randomBytes, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  exportJWK,
  generateKeyPair,
  importPKCS8,
  importSPKI,
  importX509,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
  SignJWT,
} from "jose";
import type { AuthConfig } from "../config/auth-config.js";
import type { Scope } from "./scope.js";

/**
 * JWTs per distribution's docs/spec/auth/jwt.md: `iss`, `sub`, `aud` (the service), `exp`, `nbf`,
 * `iat`, `jti`, and `access`, the list of granted scopes. Signed with ES256 or RS256.
 */

export const acceptedAlgorithms = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"];

export interface IssuedToken {
  token: string;
  expiresIn: number;
  issuedAt: string;
}

export interface VerifiedToken {
  /** Empty for an anonymous token. */
  subject: string;
  access: Scope[];
}

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

export class TokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TokenError";
  }
}

export class TokenService {
  private constructor(
    private readonly config: AuthConfig["token"],
    private readonly signing: { key: SigningKey; algorithm: string; kid: string } | undefined,
    private readonly keys: JWTVerifyGetKey[],
    private readonly issuer: string,
    private readonly audience: string,
  ) {}

  /** True when berth issues tokens itself (no external issuer configured). */
  get issues(): boolean {
    return this.signing !== undefined;
  }

  static async create(config: AuthConfig["token"]): Promise<TokenService> {
    const external = config.external;
    if (external) {
      return new TokenService(
        config,
        undefined,
        await externalKeys(external),
        external.issuer,
        external.audience,
      );
    }
    let key: SigningKey;
    let publicJwk: Awaited<ReturnType<typeof exportJWK>>;
    let algorithm: string;
    if (config.signingKey) {
      const pem = readFileSync(config.signingKey, "utf8");
      // The key's type picks the algorithm: EC P-256 signs ES256, RSA signs RS256.
      const nodeKey = createPrivateKey(pem);
      algorithm = nodeKey.asymmetricKeyType === "ec" ? "ES256" : "RS256";
      if (nodeKey.asymmetricKeyType === "ec" && nodeKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
        throw new Error("auth.token.signingKey: an EC key must be on curve P-256 (ES256)");
      }
      if (nodeKey.asymmetricKeyType !== "ec" && nodeKey.asymmetricKeyType !== "rsa") {
        throw new Error("auth.token.signingKey: must be an EC P-256 or RSA private key");
      }
      key = await importPKCS8(nodeKey.export({ type: "pkcs8", format: "pem" }).toString(), algorithm);
      publicJwk = await exportJWK(createPublicKey(nodeKey));
    } else {
      algorithm = "ES256";
      const pair = await generateKeyPair("ES256", { extractable: true });
      key = pair.privateKey;
      publicJwk = await exportJWK(pair.publicKey);
    }
    const kid = randomBytes(8).toString("hex");
    const keys = [createLocalJWKSet({ keys: [{ ...publicJwk, kid, alg: algorithm }] })];
    return new TokenService(config, { key, algorithm, kid }, keys, config.issuer, config.service);
  }

  async issue(subject: string, access: Scope[]): Promise<IssuedToken> {
    if (!this.signing) throw new TokenError("this registry does not issue tokens");
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ access })
      .setProtectedHeader({ alg: this.signing.algorithm, typ: "JWT", kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(subject)
      .setAudience(this.audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + this.config.lifetimeSeconds)
      .setJti(randomBytes(16).toString("hex"))
      .sign(this.signing.key);
    return { token, expiresIn: this.config.lifetimeSeconds, issuedAt: new Date(now * 1000).toISOString() };
  }

  /** Checks signature, algorithm, issuer, audience and times; throws TokenError on any failure. */
  async verify(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload | undefined;
    let failure = "invalid token";
    // Each configured key in turn: a team's issuer may rotate keys and publish more than one.
    for (const keys of this.keys) {
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: this.issuer,
          audience: this.audience,
          algorithms: this.signing ? [this.signing.algorithm] : acceptedAlgorithms,
          clockTolerance: this.config.clockSkewSeconds,
          requiredClaims: ["exp"],
        }));
        break;
      } catch (error) {
        failure = (error as { code?: string }).code ?? failure;
      }
    }
    if (!payload) throw new TokenError(failure);
    return {
      subject: typeof payload.sub === "string" ? payload.sub : "",
      access: parseAccess(payload.access),
    };
  }
}

function parseAccess(value: unknown): Scope[] {
  if (!Array.isArray(value)) return [];
  const out: Scope[] = [];
  for (const entry of value) {
    if (typeof entry !== "object" || entry === null) continue;
    const { type, name, actions } = entry as Record<string, unknown>;
    if (typeof type !== "string" || typeof name !== "string" || !Array.isArray(actions)) continue;
    out.push({ type, name, actions: actions.filter((a): a is string => typeof a === "string") });
  }
  return out;
}

async function externalKeys(
  external: NonNullable<AuthConfig["token"]["external"]>,
): Promise<JWTVerifyGetKey[]> {
  const getters: JWTVerifyGetKey[] = [];
  if (external.jwks) getters.push(createLocalJWKSet(JSON.parse(readFileSync(external.jwks, "utf8"))));
  if (external.jwksUrl) getters.push(createRemoteJWKSet(new URL(external.jwksUrl)));
  for (const path of external.publicKeys) {
    const pem = readFileSync(path, "utf8");
    const certificate = pem.includes("BEGIN CERTIFICATE");
    const publicKey = certificate ? new X509Certificate(pem).publicKey : createPublicKey(pem);
    const spki = publicKey.export({ type: "spki", format: "pem" }).toString();
    const type = publicKey.asymmetricKeyType;
    const curve = publicKey.asymmetricKeyDetails?.namedCurve;
    const algorithms =
      type === "ec"
        ? [curve === "secp384r1" ? "ES384" : "ES256"]
        : type === "ed25519"
          ? ["EdDSA"]
          : ["RS256", "RS384", "RS512", "PS256"];
    const byAlgorithm = new Map<string, Awaited<ReturnType<typeof importSPKI>>>();
    for (const algorithm of algorithms) {
      byAlgorithm.set(
        algorithm,
        certificate ? await importX509(pem, algorithm) : await importSPKI(spki, algorithm),
      );
    }
    getters.push(async (header) => {
      const key = header.alg === undefined ? undefined : byAlgorithm.get(header.alg);
      if (!key) throw new TokenError("the token's algorithm does not match the key");
      return key;
    });
  }
  return getters;
}
