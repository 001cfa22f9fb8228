import { z } from "zod";

/** The `proxy:` section: repository prefixes served as pull-through caches of upstream registries. */

const positiveInt = z.number().int().positive();

export const upstreamSchema = z
  .strictObject({
    /**
     * Repository prefix clients pull through, without slashes at either end: `hub` serves `hub/<path>`
     * from the upstream's `<path>`. One path component or more (`mirrors/ghcr`).
     */
    prefix: z
      .string()
      .regex(
        /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/,
        'must be a repository name prefix such as "hub" or "mirrors/ghcr"',
      ),
    /** Base URL of the upstream registry, e.g. https://registry-1.docker.io. */
    url: z.url({ protocol: /^https?$/ }),
    /** Docker Hub's rule for official images: a one-component path `alpine` is `library/alpine` upstream. */
    libraryPrefix: z.boolean().default(false),
    /** Credentials for the upstream (basic auth, or exchanged at its token endpoint); anonymous when unset. */
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** File holding the password (a mounted secret), read at start-up; instead of `password`. */
    passwordFile: z.string().min(1).optional(),
    tls: z
      .strictObject({
        /** PEM file with the CA certificates that sign the upstream's certificate, instead of the system's. */
        caFile: z.string().min(1).optional(),
        /** Accepts any certificate; for test setups only. */
        insecureSkipVerify: z.boolean().default(false),
      })
      .prefault({}),
    /** A cached tag is served without asking the upstream for this long; then a HEAD re-checks it. */
    tagTtlSeconds: z.number().int().nonnegative().default(300),
    /** When the upstream fails, serve what is cached (tags past their TTL included) instead of an error. */
    serveStale: z.boolean().default(true),
    /** Limit for the upstream to answer with headers; bodies may take longer but not stall this long. */
    timeoutSeconds: positiveInt.default(30),
  })
  .superRefine((upstream, ctx) => {
    if (upstream.password !== undefined && upstream.passwordFile !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["passwordFile"],
        message: "set password or passwordFile, not both",
      });
    if ((upstream.password ?? upstream.passwordFile) !== undefined && upstream.username === undefined)
      ctx.addIssue({ code: "custom", path: ["username"], message: "required with password or passwordFile" });
  });

export const proxyConfigSchema = z
  .strictObject({
    upstreams: z
      .array(upstreamSchema)
      .default([])
      .superRefine((upstreams, ctx) => {
        const prefixes = upstreams.map((u) => u.prefix);
        for (const [i, prefix] of prefixes.entries()) {
          const overlap = prefixes.find(
            (other, j) => j !== i && (other === prefix || prefix.startsWith(`${other}/`)),
          );
          if (overlap !== undefined)
            ctx.addIssue({
              code: "custom",
              path: [i, "prefix"],
              message: `prefix "${prefix}" overlaps "${overlap}"; each repository must have one upstream`,
            });
        }
      }),
  })
  .prefault({});

export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type ProxyConfig = z.infer<typeof proxyConfigSchema>;
