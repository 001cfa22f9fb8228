import { z } from "zod";

/** The `auth:` and `tls:` sections of the config; off by default, so an unconfigured berth is open. */

const positiveInt = z.number().int().positive();
const action = z.enum(["pull", "push", "delete"]);

const grant = z.strictObject({
  /** Globs over repository names: `*` matches within one path component, `**` across components. */
  repositories: z.array(z.string().min(1)).min(1),
  actions: z.array(action).min(1),
});

const rule = grant.extend({
  users: z.array(z.string().min(1)).default([]),
  groups: z.array(z.string().min(1)).default([]),
});

export const accessPolicySchema = z
  .strictObject({
    /** Users allowed everything, everywhere, the catalog included. */
    admins: z.array(z.string().min(1)).default([]),
    /** Group name -> member user names. */
    groups: z.record(z.string(), z.array(z.string().min(1))).default({}),
    /** What callers without credentials may do, e.g. pull of `public/**`. */
    anonymous: z.array(grant).default([]),
    /** What any user with valid credentials may do (on top of the anonymous grants). */
    authenticated: z.array(grant).default([]),
    /** Grants to named users and groups. */
    rules: z.array(rule).default([]),
  })
  .prefault({});

export const authConfigSchema = z
  .strictObject({
    /** none: no checks at all; basic: HTTP basic against the htpasswd file; token: Bearer JWTs. */
    mode: z.enum(["none", "basic", "token"]).default("none"),
    /** htpasswd file with bcrypt entries (`htpasswd -B`, or `berth user add`). */
    htpasswd: z.string().min(1).optional(),
    /** Realm named in the Basic challenge. */
    basicRealm: z.string().min(1).default("berth"),
    policy: accessPolicySchema,
    token: z
      .strictObject({
        /** Token endpoint URL in the Bearer challenge; default `<publicUrl or request origin>/token`. */
        realm: z.url({ protocol: /^https?$/ }).optional(),
        /** `service` in the challenge, and the audience tokens must carry. */
        service: z.string().min(1).default("berth"),
        /** `iss` of tokens the built-in endpoint issues. */
        issuer: z.string().min(1).default("berth"),
        /** PEM private key (EC P-256 for ES256, RSA for RS256); a key made at start-up when unset. */
        signingKey: z.string().min(1).optional(),
        lifetimeSeconds: positiveInt.default(300),
        /** Leeway for exp/nbf/iat when checking tokens. */
        clockSkewSeconds: z.number().int().nonnegative().default(60),
        /** Trust tokens from an existing token service instead of the built-in endpoint. */
        external: z
          .strictObject({
            issuer: z.string().min(1),
            audience: z.string().min(1),
            /** PEM public keys or certificates (SPKI or X.509). */
            publicKeys: z.array(z.string().min(1)).default([]),
            /** A local JWKS file. */
            jwks: z.string().min(1).optional(),
            /** A JWKS URL, fetched and cached. */
            jwksUrl: z.url({ protocol: /^https?$/ }).optional(),
          })
          .optional(),
      })
      .prefault({}),
    rateLimit: z
      .strictObject({
        /** Failed logins from one client address allowed per window; 0 turns the limit off. */
        failures: z.number().int().nonnegative().default(10),
        windowSeconds: positiveInt.default(60),
      })
      .prefault({}),
  })
  .prefault({})
  .superRefine((auth, context) => {
    if (auth.mode === "basic" && !auth.htpasswd) {
      context.addIssue({ code: "custom", path: ["htpasswd"], message: "basic auth needs an htpasswd file" });
    }
    const external = auth.token.external;
    if (external) {
      if (external.publicKeys.length === 0 && !external.jwks && !external.jwksUrl) {
        context.addIssue({
          code: "custom",
          path: ["token", "external"],
          message: "an external issuer needs publicKeys, jwks or jwksUrl",
        });
      }
      if (!auth.token.realm) {
        context.addIssue({
          code: "custom",
          path: ["token", "realm"],
          message: "with an external issuer, realm must name its token endpoint",
        });
      }
    }
  });

export const tlsConfigSchema = z
  .strictObject({
    /** PEM certificate chain and key; HTTPS is served when both are set. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** PEM CA bundle; client certificates it signed authenticate as the subject's common name. */
    clientCa: z.string().min(1).optional(),
    /** Refuse connections without a valid client certificate. */
    requireClientCert: z.boolean().default(false),
  })
  .prefault({})
  .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), {
    message: "cert and key must be set together",
  })
  .refine((tls) => tls.clientCa === undefined || tls.cert !== undefined, {
    message: "clientCa needs cert and key",
  });

export type AuthConfig = z.infer<typeof authConfigSchema>;
export type AccessPolicyConfig = z.infer<typeof accessPolicySchema>;
export type TlsConfig = z.infer<typeof tlsConfigSchema>;
