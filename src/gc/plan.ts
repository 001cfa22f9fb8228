import type { GcDeletedManifest, GcManifestRules, GcRepositorySnapshot } from "../metadata/metadata-store.js";

export interface RepositoryPlan {
  /** In deletion order: an index before the children it frees, a subject before the referrers it orphans. */
  manifests: GcDeletedManifest[];
  /** Blob links no remaining manifest references. */
  links: { digest: string; size: number }[];
}

/**
 * What GC would remove from one repository, computed from a snapshot. The plan only narrows the
 * candidates: the metadata store re-checks every rule inside the transaction that deletes (a push may
 * have tagged or referenced a candidate since the snapshot), so a stale plan deletes less, never more.
 *
 * Rules, for manifests created before `rules.before`, never a tagged one, never one an index of the
 * repository references (the children of an index pushed to the same repository):
 * - untagged: a manifest with no subject, or whose subject is gone (a referrer whose subject is present
 *   belongs to it: signatures and SBOMs are pushed untagged);
 * - orphanReferrers: a manifest whose subject is not in the repository.
 * Deletions cascade: an untagged index frees its children, a deleted subject orphans its referrers.
 */
export function planRepository(snapshot: GcRepositorySnapshot, rules: GcManifestRules): RepositoryPlan {
  const live = new Map(snapshot.manifests.map((m) => [m.digest, m]));
  const tagged = new Set(snapshot.taggedDigests);
  const parents = new Map<string, Set<string>>();
  for (const reference of snapshot.references) {
    if (reference.kind !== "manifest") continue;
    const set = parents.get(reference.child) ?? new Set<string>();
    set.add(reference.manifest);
    parents.set(reference.child, set);
  }
  const deleted: GcDeletedManifest[] = [];
  for (;;) {
    const round: GcDeletedManifest[] = [];
    for (const manifest of live.values()) {
      if (manifest.createdAt >= rules.before || tagged.has(manifest.digest)) continue;
      if ([...(parents.get(manifest.digest) ?? [])].some((parent) => live.has(parent))) continue;
      const orphan = manifest.subject !== undefined && !live.has(manifest.subject);
      const allowed = orphan
        ? rules.untagged || rules.orphanReferrers
        : manifest.subject === undefined && rules.untagged;
      if (!allowed) continue;
      round.push({
        digest: manifest.digest,
        mediaType: manifest.mediaType,
        size: manifest.size,
        reason: orphan ? "orphan-referrer" : "untagged",
      });
    }
    if (round.length === 0) break;
    for (const manifest of round) live.delete(manifest.digest);
    deleted.push(...round);
  }
  const referenced = new Set(
    snapshot.references.filter((r) => live.has(r.manifest)).map((reference) => reference.child),
  );
  const links = snapshot.links
    .filter((link) => link.linkedAt < rules.before && !referenced.has(link.digest))
    .map((link) => ({ digest: link.digest, size: link.size }));
  return { manifests: deleted, links };
}
