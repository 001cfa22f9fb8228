/**
 * Limits a write must respect, checked by the metadata store inside the transaction that makes the write,
 * so concurrent writers cannot both pass a check that only one of them may pass. The registry resolves
 * them from the configured policies; the store knows nothing of patterns.
 */
export interface WriteLimits {
  /** The tag written may be created, or re-pointed at the digest it already has, but not moved. */
  immutableTag?: boolean;
  /** Most bytes of distinct blobs and manifests the repository may hold after the write. */
  maxBytes?: number;
  /** Most tags the repository may hold after the write. */
  maxTags?: number;
}

export type LimitViolation =
  | { kind: "immutable-tag"; tag: string; currentDigest: string }
  | { kind: "bytes"; usedBytes: number; addedBytes: number; maxBytes: number }
  | { kind: "tags"; tagCount: number; maxTags: number };

/** Thrown by a metadata store when a write would break its WriteLimits; nothing was written. */
export class LimitViolationError extends Error {
  constructor(readonly violation: LimitViolation) {
    super(`write refused: ${violation.kind} limit`);
    this.name = "LimitViolationError";
  }
}

/** What a repository holds, as quotas count it. */
export interface RepositoryUsage {
  /** Sum of the sizes of the distinct blobs and manifests linked in the repository. */
  bytes: number;
  tags: number;
}

/** A tag with what retention orders and checks it by. */
export interface TagRecord {
  name: string;
  digest: string;
  updatedAt: number;
}
