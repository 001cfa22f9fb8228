import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { proxyConfigSchema } from "../proxy/proxy-config.js";
import { authConfigSchema, tlsConfigSchema } from "./auth-config.js";
import { policiesConfigSchema } from "./policy-config.js";

/**
 * Everything a user can set, in one validated schema. Sources, lowest precedence first:
 * defaults, the YAML file, BERTH_* environment variables, command-line flags.
 */

const mebibyte = 1024 * 1024;

const listenAddress = z.string().refine((value) => parseListen(value) !== undefined, {
  message: 'must be "HOST:PORT" or ":PORT" with a port from 0 to 65535, e.g. "0.0.0.0:5000"',
});

const positiveInt = z.number().int().positive();

export const configSchema = z.strictObject({
  /** Address the HTTP server binds. */
  listen: listenAddress.default("0.0.0.0:5000"),
  /** Holds blobs, upload sessions and the metadata database. */
  dataDir: z.string().min(1).default("./data"),
  /** Base URL clients reach berth at, for absolute Location headers; relative when unset. */
  publicUrl: z.url({ protocol: /^https?$/ }).optional(),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      /** auto: human-readable on a terminal, JSON otherwise. */
      format: z.enum(["auto", "json", "pretty"]).default("auto"),
    })
    .prefault({}),
  storage: z
    .strictObject({
      /** filesystem: blobs under dataDir (one instance); s3: an S3-compatible bucket (N instances). */
      driver: z.enum(["filesystem", "s3"]).default("filesystem"),
      s3: z
        .strictObject({
          /** Endpoint URL for S3-compatible stores (Ceph RGW, MinIO, R2); AWS S3 when unset. */
          endpoint: z.url({ protocol: /^https?$/ }).optional(),
          /** Falls back to AWS_REGION, then us-east-1. */
          region: z.string().min(1).optional(),
          bucket: z.string().min(3).max(63).optional(),
          /** Key prefix inside the bucket, so several registries can share one. */
          prefix: z
            .string()
            .regex(/^([A-Za-z0-9._-]+\/)*$/, 'must be empty or end with "/", e.g. "berth/"')
            .default(""),
          /** Path-style URLs (http://host/bucket/key), which most S3-compatible stores need. */
          forcePathStyle: z.boolean().default(false),
          /** Static credentials; when unset the AWS SDK's standard chain (AWS_* env, profiles, roles). */
          accessKeyId: z.string().min(1).optional(),
          secretAccessKey: z.string().min(1).optional(),
          /** Blob GETs answer 307 with a presigned URL of the bucket instead of streaming through berth. */
          redirect: z.boolean().default(false),
          /** Lifetime of those presigned URLs. */
          redirectExpirySeconds: z.number().int().min(1).max(604_800).default(300),
        })
        .prefault({}),
    })
    .superRefine((storage, ctx) => {
      if (storage.driver === "s3" && storage.s3.bucket === undefined)
        ctx.addIssue({ code: "custom", path: ["s3", "bucket"], message: "required when driver is s3" });
      if ((storage.s3.accessKeyId === undefined) !== (storage.s3.secretAccessKey === undefined))
        ctx.addIssue({
          code: "custom",
          path: ["s3", "secretAccessKey"],
          message: "accessKeyId and secretAccessKey are set together or not at all",
        });
    })
    .prefault({}),
  metadata: z
    .strictObject({
      /** sqlite: a file in dataDir (one instance); postgres: a shared database (N instances). */
      driver: z.enum(["sqlite", "postgres"]).default("sqlite"),
      sqlite: z
        .strictObject({
          /** full: every acknowledged write survives power loss; normal: survives a process crash only. */
          synchronous: z.enum(["full", "normal"]).default("full"),
        })
        .prefault({}),
      postgres: z
        .strictObject({
          /** Connection string, e.g. postgres://berth:secret@db:5432/berth. */
          url: z
            .string()
            .regex(/^postgres(ql)?:\/\//, "must be a postgres:// connection string")
            .optional(),
          /** Schema holding berth's tables, created at start if missing. */
          schema: z
            .string()
            .regex(/^[a-z_][a-z0-9_]{0,62}$/, "must be a lower-case SQL identifier")
            .default("public"),
          /** Connections each instance opens at most. */
          poolSize: positiveInt.default(10),
        })
        .prefault({}),
    })
    .superRefine((metadata, ctx) => {
      if (metadata.driver === "postgres" && metadata.postgres.url === undefined)
        ctx.addIssue({
          code: "custom",
          path: ["postgres", "url"],
          message: "required when driver is postgres",
        });
    })
    .prefault({}),
  deletes: z
    .strictObject({
      /** When false, DELETE of manifests, tags and blobs answers 405 UNSUPPORTED. */
      enabled: z.boolean().default(true),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Largest manifest accepted; the spec asks registries to take at least 4 MiB. */
      manifestBytes: positiveInt.default(4 * mebibyte),
      /** Largest page of tags, repositories or referrers one request returns. */
      pageSize: positiveInt.default(1000),
      /** Upload sessions open at once across the registry. */
      uploadSessions: positiveInt.default(1000),
      /** An upload session with no activity for this long is expired. */
      uploadIdleSeconds: positiveInt.default(24 * 3600),
    })
    .prefault({}),
  http: z
    .strictObject({
      /** Time allowed to receive a request's headers. */
      headersTimeoutSeconds: positiveInt.default(60),
      /** A connection that sends and receives nothing for this long is closed, mid-request too. */
      idleTimeoutSeconds: positiveInt.default(120),
      /**
       * A request body must average at least this many bytes per second over each idle-timeout
       * period, or the connection is closed (slow-body attacks); 0 turns the check off.
       */
      minBodyBytesPerSecond: z.number().int().nonnegative().default(1024),
      /** Idle keep-alive connections are closed after this. */
      keepAliveTimeoutSeconds: positiveInt.default(75),
      /** On SIGTERM, requests in flight get this long to finish. */
      shutdownTimeoutSeconds: positiveInt.default(30),
    })
    .prefault({}),
  /**
   * gc: online garbage collection (src/gc/). Upload sessions idle past `limits.uploadIdleSeconds` are
   * collected too.
   */
  gc: z
    .strictObject({
      /** Runs a pass every `intervalSeconds` inside `berth serve`; `berth gc` runs one on demand either way. */
      enabled: z.boolean().default(true),
      intervalSeconds: positiveInt.default(3600),
      /**
       * Only what has been unreferenced for longer than this is removed. It must exceed the time a client
       * takes between pushing a blob and the manifest that references it.
       */
      graceSeconds: z.number().nonnegative().default(3600),
      /** Delete manifests no tag and no index of their repository reference (referrers stay with their subject). */
      deleteUntagged: z.boolean().default(false),
      /** Delete untagged manifests whose `subject` is no longer in the repository. */
      deleteOrphanReferrers: z.boolean().default(true),
      /** Scheduled passes only log what they would remove. */
      dryRun: z.boolean().default(false),
    })
    .prefault({}),
  /** Authentication and access policy; `mode: none` (the default) leaves the registry open. */
  auth: authConfigSchema,
  /** HTTPS, and optionally client certificates. */
  tls: tlsConfigSchema,
  /** Pull-through caches: repository prefixes served read-only from upstream registries. */
  proxy: proxyConfigSchema,
  /** The web UI berth serves itself: browse, search and delete, behind the same credentials. */
  ui: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Where the page lives; its assets and JSON API live under `<path>ui/`. Never under /v2. */
      path: z
        .string()
        .regex(/^\/([A-Za-z0-9._~-]+\/)*([A-Za-z0-9._~-]+)?$/, 'must be "/" or a path such as "/registry/"')
        .refine(
          (path) => !/^\/(v2|token|healthz|readyz)(\/|$)/.test(path),
          "must not overlap the registry's own endpoints (/v2, /token, /healthz, /readyz)",
        )
        .default("/"),
      /** Key for the login session cookies; every instance behind one load balancer needs the same one. */
      sessionSecret: z.string().min(32, "must be at least 32 characters").optional(),
      /** A UI login lasts this long. */
      sessionSeconds: positiveInt.default(12 * 3600),
    })
    .prefault({}),
  /** Retention, immutable tags and quotas per repository pattern; first matching rule wins. */
  policies: policiesConfigSchema,
  // observe: metrics, tracing and notifications.
  metrics: z
    .strictObject({
      /** Serves Prometheus metrics at `path`. */
      enabled: z.boolean().default(true),
      path: z
        .string()
        .regex(/^\/[A-Za-z0-9._/-]*$/, "must be an absolute path")
        .refine(
          (path) =>
            path !== "/v2" && !path.startsWith("/v2/") && !["/healthz", "/readyz", "/token"].includes(path),
          "must not be under /v2 nor another endpoint's path",
        )
        .default("/metrics"),
      /** A separate address (like Distribution's debug server) that serves only metrics and health. */
      listen: listenAddress.optional(),
      /** When set, scrapes must send `Authorization: Bearer <token>`. */
      bearerToken: z.string().min(16).optional(),
    })
    .prefault({}),
  tracing: z
    .strictObject({
      /** OpenTelemetry spans for requests and store calls; nothing is loaded or sent when false. */
      enabled: z.boolean().default(false),
      /** OTLP/HTTP traces endpoint; the exporter's own default (OTEL_EXPORTER_OTLP_*) when unset. */
      endpoint: z.url({ protocol: /^https?$/ }).optional(),
      serviceName: z.string().min(1).default("berth"),
      /** Fraction of requests traced. */
      sampleRatio: z.number().min(0).max(1).default(1),
    })
    .prefault({}),
  notifications: z
    .strictObject({
      endpoints: z
        .array(
          z.strictObject({
            name: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, "letters, digits, '.', '_' or '-'"),
            url: z.url({ protocol: /^https?$/ }),
            /** Extra request headers, e.g. Authorization. */
            headers: z.record(z.string(), z.string()).default({}),
            /** Actions this endpoint receives. */
            events: z
              .array(z.enum(["push", "pull", "delete"]))
              .min(1)
              .default(["push", "delete"]),
            /** Repository globs (`*` within a path segment, `**` across); every repository when empty. */
            repositories: z.array(z.string().min(1)).default([]),
            /** distribution: Distribution's `{"events":[...]}` envelope; cloudevents: one structured CloudEvent per request. */
            format: z.enum(["distribution", "cloudevents"]).default("distribution"),
            timeoutSeconds: positiveInt.default(5),
            /** Events per request (distribution format). */
            batchSize: positiveInt.max(1000).default(50),
            /** Retry delays double from `initial` up to `max`. */
            backoff: z
              .strictObject({
                initialSeconds: z.number().positive().default(1),
                maxSeconds: z.number().positive().default(300),
              })
              .prefault({}),
            /** Undelivered events kept; past it the oldest are dropped (and counted). */
            maxBacklog: positiveInt.default(100_000),
          }),
        )
        .default([])
        .superRefine((endpoints, ctx) => {
          const names = new Set<string>();
          for (const [index, endpoint] of endpoints.entries()) {
            if (names.has(endpoint.name))
              ctx.addIssue({ code: "custom", path: [index, "name"], message: "duplicate endpoint name" });
            names.add(endpoint.name);
          }
        }),
      /** How often idle delivery workers look for new events written by other instances. */
      pollIntervalSeconds: z.number().positive().default(1),
    })
    .prefault({}),
});

export type BerthConfig = z.infer<typeof configSchema>;
/** The config as a user writes it: every field optional. */
export type BerthConfigInput = z.input<typeof configSchema>;

export interface ListenAddress {
  host: string;
  port: number;
}

export function parseListen(value: string): ListenAddress | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2] ?? "";
  return { host: host === "" ? "0.0.0.0" : host, port };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export interface ConfigSources {
  /** Path of a YAML file, or an already parsed object. */
  file?: string | BerthConfigInput;
  /** Environment variables; only BERTH_* are read. */
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, as a partial config. */
  flags?: BerthConfigInput;
}

export function loadConfig(sources: ConfigSources = {}): BerthConfig {
  const problems: string[] = [];
  let fromFile: Record<string, unknown> = {};
  if (typeof sources.file === "string") {
    const path = resolve(sources.file);
    try {
      const parsed: unknown = parseYaml(readFileSync(path, "utf8"));
      if (parsed !== null && parsed !== undefined) {
        if (typeof parsed !== "object" || Array.isArray(parsed))
          problems.push(`${path}: must be a YAML mapping`);
        else fromFile = parsed as Record<string, unknown>;
      }
    } catch (error) {
      problems.push(`${path}: ${(error as Error).message}`);
    }
  } else if (sources.file) {
    fromFile = sources.file as Record<string, unknown>;
  }
  const fromEnv = configFromEnvironment(sources.env ?? {}, problems);
  const merged = deepMerge(deepMerge(fromFile, fromEnv), (sources.flags ?? {}) as Record<string, unknown>);
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.join(".");
      // Lists are set in the file only: no BERTH_* variable names an entry of one.
      const envName =
        path && issue.path.every((part) => typeof part === "string")
          ? environmentName(issue.path.map(String))
          : "";
      problems.push(
        `${path || "(root)"}: ${issue.message}${envName ? ` (file key ${path}, or ${envName})` : ""}`,
      );
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(problems);
  return result.data;
}

/** `limits.manifestBytes` <-> `BERTH_LIMITS_MANIFEST_BYTES`. */
export function environmentName(path: string[]): string {
  return `BERTH_${path.map((part) => part.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()).join("_")}`;
}

function configFromEnvironment(env: NodeJS.ProcessEnv, problems: string[]): Record<string, unknown> {
  const known = new Map<string, string[]>();
  for (const path of leafPaths(configSchema)) known.set(environmentName(path), path);
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("BERTH_") || raw === undefined) continue;
    if (name === "BERTH_CONFIG") continue;
    const path = known.get(name);
    if (!path) {
      problems.push(`${name}: unknown setting (known: ${[...known.keys()].join(", ")})`);
      continue;
    }
    setPath(out, path, parseScalar(raw));
  }
  return out;
}

/** Environment values are YAML scalars, so `5`, `true` and `"a:b"` mean what they would in the file. */
function parseScalar(raw: string): unknown {
  try {
    const value: unknown = parseYaml(raw);
    return typeof value === "object" && value !== null ? raw : (value ?? raw);
  } catch {
    return raw;
  }
}

type SchemaNode = { def: { type: string }; unwrap?: () => SchemaNode; shape?: Record<string, SchemaNode> };

function leafPaths(schema: unknown, prefix: string[] = []): string[][] {
  let node = schema as SchemaNode;
  while (typeof node.unwrap === "function" && node.def.type !== "object" && node.def.type !== "array")
    node = node.unwrap();
  if (node.def.type === "object" && node.shape) {
    return Object.entries(node.shape).flatMap(([key, child]) => leafPaths(child, [...prefix, key]));
  }
  return [prefix];
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    const existing = out[key];
    out[key] =
      isPlainObject(existing) && isPlainObject(value)
        ? deepMerge(existing as Record<string, unknown>, value as Record<string, unknown>)
        : value;
  }
  return out;
}

function isPlainObject(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
