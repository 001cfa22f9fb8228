import { compileGlob } from "../auth/access-policy.js";
import type { BerthConfig } from "../config/config.js";
import { type PoliciesConfig, parseByteSize, parseDuration } from "../config/policy-config.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import { type LimitViolation, LimitViolationError, type WriteLimits } from "../metadata/write-limits.js";
import { RegistryError } from "../oci/errors.js";

/** A configured rule, compiled: globs as regular expressions, sizes and durations as numbers. */
export interface RepositoryPolicy {
  /** How messages and events name the rule: `rule "releases"` or `rule 2 (team/*)`. */
  label: string;
  repositories: RegExp[];
  immutableTags: { glob: string; pattern: RegExp }[];
  quota: { bytes?: number; tags?: number } | undefined;
  retention: { keepNewest?: number; tagPattern: RegExp; olderThanMs?: number; protect: RegExp[] } | undefined;
}

const compiled = new WeakMap<PoliciesConfig, RepositoryPolicy[]>();

/** The compiled rules of a config, in order; compiled once per config object. */
export function compilePolicies(config: PoliciesConfig): RepositoryPolicy[] {
  let rules = compiled.get(config);
  if (!rules) {
    rules = config.rules.map((rule, index) => ({
      label:
        rule.name !== undefined
          ? `rule "${rule.name}"`
          : `rule ${index + 1} (${rule.repositories.join(", ")})`,
      repositories: rule.repositories.map(compileGlob),
      immutableTags: rule.immutableTags.map((glob) => ({ glob, pattern: compileGlob(glob) })),
      quota: rule.quota && {
        ...(rule.quota.bytes !== undefined ? { bytes: parseByteSize(rule.quota.bytes) } : {}),
        ...(rule.quota.tags !== undefined ? { tags: rule.quota.tags } : {}),
      },
      retention: rule.retention && {
        ...(rule.retention.keepNewest !== undefined ? { keepNewest: rule.retention.keepNewest } : {}),
        tagPattern: compileGlob(rule.retention.tagPattern),
        ...(rule.retention.olderThan !== undefined
          ? { olderThanMs: parseDuration(rule.retention.olderThan) }
          : {}),
        protect: rule.retention.protect.map(compileGlob),
      },
    }));
    compiled.set(config, rules);
  }
  return rules;
}

/** First rule whose repository globs match wins; later rules are not consulted. */
export function policyFor(rules: RepositoryPolicy[], repository: string): RepositoryPolicy | undefined {
  return rules.find((rule) => rule.repositories.some((pattern) => pattern.test(repository)));
}

export function immutableGlob(policy: RepositoryPolicy | undefined, tag: string): string | undefined {
  return policy?.immutableTags.find((t) => t.pattern.test(tag))?.glob;
}

/**
 * Immutable tags and quotas at the registry's write paths. Each write is checked twice: once before any
 * bytes are stored (so a refused push leaves nothing behind), and again by the metadata store inside the
 * transaction that records it (so concurrent pushes cannot both slip under a limit).
 */
export class PolicyGate {
  /** The rules' globs, compiled once: every push consults them. */
  private readonly rules: RepositoryPolicy[];

  constructor(
    private readonly metadata: MetadataStore,
    config: BerthConfig,
  ) {
    this.rules = compilePolicies(config.policies);
  }

  policy(repository: string): RepositoryPolicy | undefined {
    return policyFor(this.rules, repository);
  }

  /** Limits on linking a blob into the repository; undefined when none apply. */
  blobLimits(repository: string): WriteLimits | undefined {
    const bytes = this.policy(repository)?.quota?.bytes;
    return bytes === undefined ? undefined : { maxBytes: bytes };
  }

  /** Limits on recording a manifest (and tag); undefined when none apply. */
  manifestLimits(repository: string, tag: string | undefined): WriteLimits | undefined {
    const policy = this.policy(repository);
    if (!policy) return undefined;
    const limits: WriteLimits = {};
    if (tag !== undefined && immutableGlob(policy, tag) !== undefined) limits.immutableTag = true;
    if (policy.quota?.bytes !== undefined) limits.maxBytes = policy.quota.bytes;
    if (tag !== undefined && policy.quota?.tags !== undefined) limits.maxTags = policy.quota.tags;
    return Object.keys(limits).length > 0 ? limits : undefined;
  }

  /** The early check of a blob about to be published; throws DENIED past the byte quota. */
  async checkBlob(repository: string, digest: string, size: number, limits: WriteLimits): Promise<void> {
    if (limits.maxBytes === undefined) return;
    const { metadata } = this;
    if (
      (await metadata.getRepositoryBlob(repository, digest)) ||
      (await metadata.getManifest(repository, digest))
    )
      return;
    const usedBytes = (await metadata.repositoryUsage(repository)).bytes;
    if (usedBytes + size > limits.maxBytes)
      throw this.refusal(repository, {
        kind: "bytes",
        usedBytes,
        addedBytes: size,
        maxBytes: limits.maxBytes,
      });
  }

  /** The early check of a manifest push, before its bytes are stored. */
  async checkManifest(
    repository: string,
    tag: string | undefined,
    digest: string,
    size: number,
    limits: WriteLimits,
  ): Promise<void> {
    const { metadata } = this;
    const current = tag === undefined ? undefined : await metadata.getTaggedManifest(repository, tag);
    if (tag !== undefined && limits.immutableTag && current && current.digest !== digest)
      throw this.refusal(repository, { kind: "immutable-tag", tag, currentDigest: current.digest });
    if (limits.maxTags === undefined && limits.maxBytes === undefined) return;
    const usage = await metadata.repositoryUsage(repository);
    if (tag !== undefined && limits.maxTags !== undefined && !current && usage.tags + 1 > limits.maxTags)
      throw this.refusal(repository, { kind: "tags", tagCount: usage.tags, maxTags: limits.maxTags });
    if (
      limits.maxBytes !== undefined &&
      usage.bytes + size > limits.maxBytes &&
      !(await metadata.getManifest(repository, digest)) &&
      !(await metadata.getRepositoryBlob(repository, digest))
    )
      throw this.refusal(repository, {
        kind: "bytes",
        usedBytes: usage.bytes,
        addedBytes: size,
        maxBytes: limits.maxBytes,
      });
  }

  /** DELETE of a tag: immutable tags cannot be deleted (as in Harbor); they would otherwise move by delete + push. */
  checkTagDelete(repository: string, tag: string): void {
    const policy = this.policy(repository);
    const glob = immutableGlob(policy, tag);
    if (glob !== undefined && policy)
      throw new RegistryError(
        "DENIED",
        `tag "${tag}" of repository "${repository}" is immutable (${policy.label}, immutableTags "${glob}") and cannot be deleted`,
        { detail: { repository, tag, rule: policy.label } },
      );
  }

  /** Predicate for deleteManifestUnlessTagged, or undefined when the repository has no immutable tags. */
  immutableTagPredicate(repository: string): ((tag: string) => boolean) | undefined {
    const policy = this.policy(repository);
    if (!policy || policy.immutableTags.length === 0) return undefined;
    return (tag) => immutableGlob(policy, tag) !== undefined;
  }

  /** An upload already larger than the repository's whole byte quota. */
  blobTooLarge(repository: string, maxBytes: number): RegistryError {
    const rule = this.policy(repository)?.label ?? "a policy rule";
    return new RegistryError(
      "DENIED",
      `quota exceeded for repository "${repository}" (${rule}): the blob is larger than the repository's whole quota of ${formatBytes(maxBytes)}`,
      { detail: { repository, rule, quotaBytes: maxBytes } },
    );
  }

  /** Turns a store's LimitViolationError into the DENIED the client sees; other errors pass through. */
  refused(error: unknown, repository: string, action: "push" | "delete" = "push"): unknown {
    return error instanceof LimitViolationError ? this.refusal(repository, error.violation, action) : error;
  }

  private refusal(
    repository: string,
    violation: LimitViolation,
    action: "push" | "delete" = "push",
  ): RegistryError {
    const policy = this.policy(repository);
    const rule = policy?.label ?? "a policy rule";
    switch (violation.kind) {
      case "immutable-tag": {
        const glob = immutableGlob(policy, violation.tag) ?? violation.tag;
        const message =
          action === "delete"
            ? `manifest ${violation.currentDigest} is tagged "${violation.tag}", an immutable tag of repository "${repository}" (${rule}, immutableTags "${glob}"), and cannot be deleted`
            : `tag "${violation.tag}" of repository "${repository}" is immutable (${rule}, immutableTags "${glob}") and already points at ${violation.currentDigest}; push under a new tag instead`;
        return new RegistryError("DENIED", message, {
          detail: { repository, tag: violation.tag, digest: violation.currentDigest, rule },
        });
      }
      case "bytes":
        return new RegistryError(
          "DENIED",
          `quota exceeded for repository "${repository}" (${rule}): storing ${formatBytes(violation.addedBytes)} more would bring it to ${formatBytes(violation.usedBytes + violation.addedBytes)}, past its quota of ${formatBytes(violation.maxBytes)} (${formatBytes(violation.usedBytes)} used)`,
          {
            detail: {
              repository,
              rule,
              usedBytes: violation.usedBytes,
              addedBytes: violation.addedBytes,
              quotaBytes: violation.maxBytes,
            },
          },
        );
      case "tags":
        return new RegistryError(
          "DENIED",
          `quota exceeded for repository "${repository}" (${rule}): it already has ${violation.tagCount} tags and its quota is ${violation.maxTags}; delete a tag first`,
          { detail: { repository, rule, tags: violation.tagCount, quotaTags: violation.maxTags } },
        );
    }
  }
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
