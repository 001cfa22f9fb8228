import { type Logger, pino } from "pino";
import type { PoliciesConfig } from "../config/policy-config.js";
import type { MetadataStore, NewOutboxEvent } from "../metadata/metadata-store.js";
import type { TagRecord } from "../metadata/write-limits.js";
import { compilePolicies, immutableGlob, policyFor, type RepositoryPolicy } from "./policies.js";

/** One tag retention deleted (or, in a dry run, would delete). */
export interface RetentionEvent {
  action: "delete";
  repository: string;
  tag: string;
  /** The manifest the tag pointed at; it stays in the repository, untagged, for garbage collection. */
  digest: string;
  /** When the tag was last pushed (ms since epoch). */
  updatedAt: number;
  rule: string;
  reason: string;
  dryRun: boolean;
}

export interface RetentionOptions {
  dryRun?: boolean;
  /** Called once per removal; by default a structured log line through `logger`. */
  onRemoved?: (event: RetentionEvent) => void;
  logger?: Logger;
  /** Outbox events for a tag deletion, written in its transaction (webhooks); none when undefined. */
  eventsFor?: (repository: string, tag: string, digest: string) => NewOutboxEvent[] | undefined;
}

const repositoryPage = 1000;

/**
 * Applies the retention of every policy rule to the repositories it governs and returns what it removed.
 * Only tags are deleted; the manifests they named stay until garbage collection. Each delete is a
 * compare-and-delete on the tag's digest and push time, so a tag pushed again while retention runs is kept,
 * and several instances running retention at once report each removal once.
 */
export async function applyRetention(
  metadata: MetadataStore,
  policies: PoliciesConfig,
  now: number,
  options: RetentionOptions = {},
): Promise<RetentionEvent[]> {
  const rules = compilePolicies(policies);
  const removed: RetentionEvent[] = [];
  if (!rules.some((rule) => rule.retention)) return removed;
  const dryRun = options.dryRun ?? false;
  const report = options.onRemoved ?? logRemoval(options.logger ?? pino());
  let last: string | undefined;
  for (;;) {
    const repositories = await metadata.listRepositories(repositoryPage, last);
    for (const repository of repositories) {
      const policy = policyFor(rules, repository);
      if (!policy?.retention) continue;
      const tags = await metadata.listTagRecords(repository);
      if (!tags) continue;
      for (const { tag, reason } of tagsToRemove(policy, tags, now)) {
        if (
          !dryRun &&
          !(await metadata.deleteTagIfUnchanged(
            repository,
            tag.name,
            tag.digest,
            tag.updatedAt,
            options.eventsFor?.(repository, tag.name, tag.digest),
          ))
        )
          continue;
        const event: RetentionEvent = {
          action: "delete",
          repository,
          tag: tag.name,
          digest: tag.digest,
          updatedAt: tag.updatedAt,
          rule: policy.label,
          reason,
          dryRun,
        };
        removed.push(event);
        report(event);
      }
    }
    if (repositories.length < repositoryPage) return removed;
    last = repositories[repositories.length - 1];
  }
}

/**
 * The tags a rule's retention removes from a repository. Candidates are the tags matching tagPattern that
 * are neither protected nor immutable, newest push first (ties by name); a candidate goes when it is past
 * the newest `keepNewest` AND not pushed within `olderThan` (a condition left unset always holds).
 */
export function tagsToRemove(
  policy: RepositoryPolicy,
  tags: TagRecord[],
  now: number,
): { tag: TagRecord; reason: string }[] {
  const retention = policy.retention;
  if (!retention) return [];
  const candidates = tags
    .filter(
      (tag) =>
        retention.tagPattern.test(tag.name) &&
        !retention.protect.some((pattern) => pattern.test(tag.name)) &&
        immutableGlob(policy, tag.name) === undefined,
    )
    .sort((a, b) => b.updatedAt - a.updatedAt || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: { tag: TagRecord; reason: string }[] = [];
  candidates.forEach((tag, rank) => {
    const reasons: string[] = [];
    if (retention.keepNewest !== undefined) {
      if (rank < retention.keepNewest) return;
      reasons.push(`not among the newest ${retention.keepNewest}`);
    }
    if (retention.olderThanMs !== undefined) {
      if (tag.updatedAt >= now - retention.olderThanMs) return;
      reasons.push(`last pushed ${age(now - tag.updatedAt)} ago`);
    }
    out.push({ tag, reason: reasons.join(" and ") });
  });
  return out;
}

function age(ms: number): string {
  for (const [unit, size] of [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
  ] as const)
    if (ms >= size) return `${Math.floor(ms / size)}${unit}`;
  return `${Math.floor(ms / 1000)}s`;
}

/** The default report: one structured log line per removal (a webhook will deliver these later). */
export function logRemoval(logger: Logger): (event: RetentionEvent) => void {
  return (event) =>
    logger.info(
      { event: "retention.delete", ...event },
      event.dryRun ? "retention would delete tag" : "retention deleted tag",
    );
}
