import { z } from "zod";

/**
 * The `policies:` section: retention, immutable tags and quotas per repository pattern. Rules are tried in
 * order and the first whose `repositories` matches a repository is its whole policy (later rules are not
 * consulted), so specific rules go first and a catch-all `**` last; a rule that sets nothing exempts.
 */

/** Repository globs: lower-case name characters plus `*` (one path component), `**` (any) and `?`. */
const repositoryGlob = z
  .string()
  .min(1)
  .max(255)
  .regex(
    /^[a-z0-9._\-/*?]+$/,
    'must be a repository glob: lower-case letters, digits, ".", "_", "-", "/" and the wildcards "*", "**", "?" (e.g. "team/*" or "**")',
  );

/** Tag globs: the tag grammar's characters plus `*` and `?` (tags never contain "/"). */
const tagGlob = z
  .string()
  .min(1)
  .max(128)
  .regex(
    /^[A-Za-z0-9_.\-*?]+$/,
    'must be a tag glob: letters, digits, "_", ".", "-" and the wildcards "*", "?" (e.g. "v*" or "latest")',
  );

const byteUnits: Record<string, number> = {
  "": 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "10GiB", "500MB", "1.5TiB" or a plain number of bytes. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = match ? byteUnits[(match[2] ?? "").toLowerCase()] : undefined;
  if (!match || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : undefined;
}

const durationUnits: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** "30d", "12h", "90m", "45s", "2w" as milliseconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+)(s|m|h|d|w)$/.exec(value.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * (durationUnits[match[2] as string] as number) * 1000;
  return Number.isSafeInteger(ms) && ms > 0 ? ms : undefined;
}

// Kept as written (parsed where used), so a parsed config is valid input again.
const byteSize = z.union([z.number(), z.string()]).refine((value) => parseByteSize(value) !== undefined, {
  message: 'must be a positive byte size such as "500MiB", "10GiB", "2GB" or 1073741824',
});

const duration = z.string().refine((value) => parseDuration(value) !== undefined, {
  message: 'must be a positive duration: a whole number and a unit s, m, h, d or w (e.g. "30d", "12h")',
});

const retention = z
  .strictObject({
    /** Keep this many tags (among those matching tagPattern and not protected), newest first. */
    keepNewest: z.number().int().positive().optional(),
    /** Only tags matching this glob are candidates for deletion. */
    tagPattern: tagGlob.default("*"),
    /** Only tags not pushed for this long are candidates ("30d"). */
    olderThan: duration.optional(),
    /** Tags matching any of these globs are never deleted (nor counted in keepNewest). */
    protect: z.array(tagGlob).default([]),
  })
  .superRefine((value, ctx) => {
    if (value.keepNewest === undefined && value.olderThan === undefined)
      ctx.addIssue({
        code: "custom",
        message: "set keepNewest, olderThan or both: without either, retention would delete nothing",
      });
  });

const rule = z.strictObject({
  /** Named in error messages and retention events; "rule N" (1-based) when unset. */
  name: z.string().min(1).max(100).optional(),
  repositories: z.array(repositoryGlob).min(1, "must list at least one repository glob"),
  retention: retention.optional(),
  /** Tags matching these globs, once pushed, never point at another digest nor get deleted. */
  immutableTags: z.array(tagGlob).default([]),
  quota: z
    .strictObject({
      /** Most bytes of distinct blobs and manifests the repository may hold. */
      bytes: byteSize.optional(),
      /** Most tags the repository may hold. */
      tags: z.number().int().positive().optional(),
    })
    .optional(),
});

export const policiesConfigSchema = z
  .strictObject({
    rules: z.array(rule).default([]),
    /** The server applies retention this often; 0 only on `berth retention`. */
    retentionIntervalSeconds: z.number().int().nonnegative().default(3600),
  })
  .prefault({});

export type PoliciesConfig = z.infer<typeof policiesConfigSchema>;
export type PolicyRuleConfig = PoliciesConfig["rules"][number];
