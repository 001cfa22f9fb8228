import type { DigestAlgorithm } from "../oci/digest.js";
import type { ManifestReference } from "../oci/manifest.js";
import type { RepositoryUsage, TagRecord, WriteLimits } from "./write-limits.js";

/**
 * What the registry knows about its content: repositories, which blobs and manifests each may serve,
 * tags, referrers and upload sessions. Every method is one atomic step; implementations must keep
 * the invariants of DESIGN.md (a manifest is recorded only if its references are present, a tag
 * update is one transaction).
 */
export interface MetadataStore {
  /** Size of a blob the repository may serve, or undefined. */
  getRepositoryBlob(repository: string, digest: string): Promise<{ size: number } | undefined>;
  /** Up to `limit` repositories that hold the blob (for a mount without `from`). */
  repositoriesWithBlob(digest: string, limit: number): Promise<string[]>;
  /** Links a blob the store holds into a repository; false when the registry does not know the blob. */
  linkBlob(repository: string, digest: string): Promise<boolean>;
  /** Records a published blob and links it into the repository, closing the upload session if given. */
  recordBlob(
    repository: string,
    digest: string,
    size: number,
    uploadId?: string,
    events?: NewOutboxEvent[],
  ): Promise<void>;
  /** Removes the blob from the repository; false when it was not there (and no event is written). */
  unlinkBlob(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean>;

  /**
   * Records a new session unless `limit` sessions are open already; false then. The count and the
   * insert are one step, so a burst of starts cannot overshoot the limit.
   */
  createUploadSession(session: NewUploadSession, limit: number): Promise<boolean>;
  countUploadSessions(): Promise<number>;
  getUploadSession(id: string): Promise<UploadSession | undefined>;
  /**
   * Compare-and-set of the received byte count, so two writers can never both advance it. `durable`
   * waits until the change is on disk (a PATCH acknowledges it); a closing PUT need not wait.
   */
  advanceUploadSession(id: string, from: number, to: number, now: number, durable: boolean): Promise<boolean>;
  deleteUploadSession(id: string): Promise<void>;
  /** Sessions idle since before `before` (ms since epoch). */
  listIdleUploadSessions(before: number, limit: number): Promise<UploadSession[]>;

  getManifest(repository: string, digest: string): Promise<ManifestRecord | undefined>;
  getTaggedManifest(repository: string, tag: string): Promise<ManifestRecord | undefined>;
  /**
   * Records a manifest (and the tag, if any) in one transaction after checking that every reference
   * is present in the repository. Returns the references that are missing; nothing is written then.
   */
  /** The same check putManifest makes, without writing: lets a refused manifest's bytes never be stored. */
  missingReferences(repository: string, references: ManifestReference[]): Promise<MissingReference[]>;
  putManifest(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]>;
  /** Deletes a manifest and every tag pointing at it; false when absent. */
  deleteManifest(repository: string, digest: string, events?: NewOutboxEvent[]): Promise<boolean>;
  deleteTag(repository: string, tag: string, events?: NewOutboxEvent[]): Promise<boolean>;

  repositoryExists(repository: string): Promise<boolean>;
  /** Tags in lexical order after `last`; undefined when the repository is unknown. */
  listTags(repository: string, limit: number, last: string | undefined): Promise<string[] | undefined>;
  listRepositories(limit: number, last: string | undefined): Promise<string[]>;
  /** Manifests whose subject is `subject`, ordered by digest, after `last`. */
  listReferrers(
    repository: string,
    subject: string,
    options: { artifactType?: string; limit: number; last?: string },
  ): Promise<ManifestRecord[]>;

  /**
   * Repositories whose name contains `query` (every one when empty), in byte order after `last`, with
   * their tag counts: the web UI's server-side search. Costs O(page) when matches are dense.
   */
  searchRepositories(query: string, limit: number, last: string | undefined): Promise<RepositorySummary[]>;
  /** Tags as listTags orders them, each with its manifest; undefined when the repository is unknown. */
  listTagDetails(
    repository: string,
    limit: number,
    last: string | undefined,
  ): Promise<TagDetail[] | undefined>;

  /**
   * A value that changes whenever any metadata changes, written by this process or another one; listings
   * are cached only while it stays the same. Undefined when the store cannot tell cheaply (no caching).
   */
  changeToken(): Promise<string | undefined>;

  ping(): Promise<void>;
  close(): Promise<void>;

  // --- policies: quotas, immutable tags, retention (src/metadata/write-limits.ts) ---
  /**
   * recordBlob and linkBlob under limits (only maxBytes applies): when linking the blob would take the
   * repository past it, throws LimitViolationError and writes nothing (the upload session stays open).
   */
  recordBlobWithin(
    repository: string,
    digest: string,
    size: number,
    uploadId: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<void>;
  linkBlobWithin(repository: string, digest: string, limits: WriteLimits): Promise<boolean>;
  /** putManifest under limits: throws LimitViolationError (nothing written) when the write breaks one. */
  putManifestWithin(
    repository: string,
    manifest: NewManifest,
    tag: string | undefined,
    limits: WriteLimits,
    events?: NewOutboxEvent[],
  ): Promise<MissingReference[]>;
  /**
   * deleteManifest, unless a tag pointing at the manifest matches `isProtectedTag`: then throws
   * LimitViolationError (kind immutable-tag) and deletes nothing.
   */
  deleteManifestUnlessTagged(
    repository: string,
    digest: string,
    isProtectedTag: (tag: string) => boolean,
    events?: NewOutboxEvent[],
  ): Promise<boolean>;
  repositoryUsage(repository: string): Promise<RepositoryUsage>;
  /** Every tag of the repository, in no particular order; undefined when the repository is unknown. */
  listTagRecords(repository: string): Promise<TagRecord[] | undefined>;
  /**
   * Deletes the tag only while it still points at `digest` and was last pushed at `updatedAt`, so retention
   * never removes a tag pushed again after it looked. False when absent or changed.
   */
  deleteTagIfUnchanged(
    repository: string,
    tag: string,
    digest: string,
    updatedAt: number,
    events?: NewOutboxEvent[],
  ): Promise<boolean>;
  // observe: the notification outbox. The write methods above take `events` to append in the same
  // transaction as their change (written only when the change happens); these deliver them.
  /** Appends events outside any other change (pulls, garbage collection). */
  appendEvents(events: NewOutboxEvent[]): Promise<void>;
  /**
   * Leases up to `limit` events of the endpoint that are due (`availableAt <= now`), oldest first: they
   * become due again at `now + leaseMs` unless acknowledged or rescheduled, so a worker that dies loses
   * nothing. Concurrent claimers (other instances) never receive the same event while its lease runs.
   */
  claimEvents(endpoint: string, limit: number, now: number, leaseMs: number): Promise<OutboxEvent[]>;
  /** Removes delivered events. */
  ackEvents(ids: number[]): Promise<void>;
  /** Counts a failed attempt and makes the events due again at `availableAt`. */
  retryEvents(ids: number[], availableAt: number): Promise<void>;
  /** Drops the endpoint's oldest events beyond `keep`; returns how many were dropped. */
  trimEvents(endpoint: string, keep: number): Promise<number>;

  // gc: garbage collection, scrub and fsck (src/gc/). Every method that removes something re-checks,
  // inside its own transaction, that it is still unreferenced and older than `before`; a plan made from a
  // snapshot only narrows the candidates. See src/gc/garbage-collector.ts for the race argument.

  /**
   * Called by every push before it publishes bytes for `digest` (blob or manifest): from now on GC leaves
   * the digest alone for a grace period. False while GC holds a tombstone on the digest (it is deleting the
   * bytes): the caller waits and pins again, then publishes the bytes afresh.
   */
  pinBlob(digest: string, now: number): Promise<boolean>;
  /** Everything one repository holds that GC plans with; undefined when the repository is unknown. */
  gcRepositorySnapshot(repository: string): Promise<GcRepositorySnapshot | undefined>;
  /**
   * Deletes those of `candidates` that the rules still allow, and repeats while a deletion frees another
   * candidate (an untagged index, then its children). One transaction, which also appends the outbox
   * events `eventsFor` makes of what was deleted; returns what was deleted.
   */
  gcDeleteManifests(
    repository: string,
    candidates: string[],
    rules: GcManifestRules,
    eventsFor?: (deleted: GcDeletedManifest[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcDeletedManifest[]>;
  /**
   * Unlinks those of `digests` no manifest of the repository references, linked before `before`, with the
   * outbox events `eventsFor` makes of them, in one transaction.
   */
  gcUnlinkBlobs(
    repository: string,
    digests: string[],
    before: number,
    eventsFor?: (unlinked: GcBlob[]) => NewOutboxEvent[] | undefined,
  ): Promise<GcBlob[]>;
  /** Blob rows no repository links and no manifest names, created before `before`, after `after` by digest. */
  gcUnreferencedBlobs(before: number, after: string, limit: number): Promise<GcBlob[]>;
  /** Which of `digests` have a blob row. */
  gcRecordedBlobs(digests: string[]): Promise<Set<string>>;
  /**
   * Tombstones those of `digests` that are still unreferenced (or have no row at all) and not pinned since
   * `before`, and deletes their blob rows, in one transaction. The caller deletes the bytes next, then
   * clears the tombstones. Returns the tombstoned digests with the size their row had.
   */
  gcTombstoneBlobs(
    digests: string[],
    before: number,
    now: number,
  ): Promise<{ digest: string; size?: number }[]>;
  gcClearTombstones(digests: string[]): Promise<void>;
  /** Tombstones set before `before`: an interrupted pass left them (a running pass clears its own in seconds). */
  gcListTombstones(before: number, limit: number): Promise<string[]>;
  /** Forgets pins older than `before`; returns how many. */
  gcPrunePins(before: number): Promise<number>;
  /** Blob rows in digest order after `after`, for scrub and fsck. */
  listBlobRecords(after: string, limit: number): Promise<GcBlob[]>;
  /** Manifests of every repository, ordered by (repository, digest) after the cursor, for scrub. */
  listManifestRecords(
    after: { repository: string; digest: string } | undefined,
    limit: number,
  ): Promise<{ repository: string; digest: string; size: number; mediaType: string }[]>;
  /**
   * Where content is used: repositories that link or hold `digest`, each with the tags that reach it
   * (a tag on the manifest itself, on a manifest referencing it, or on an index over such a manifest).
   */
  contentUsage(digest: string): Promise<{ repository: string; tags: string[] }[]>;
  /** Pointers whose target metadata does not have: links, manifests, tags and references, for fsck. */
  danglingPointers(limit: number): Promise<DanglingPointer[]>;
}

/** One event for one endpoint, as written to the outbox. */
export interface NewOutboxEvent {
  endpoint: string;
  /** The serialized event (Distribution's event object). */
  payload: string;
  createdAt: number;
}

export interface OutboxEvent extends NewOutboxEvent {
  id: number;
  /** Failed delivery attempts so far. */
  attempts: number;
}

export interface GcRepositorySnapshot {
  manifests: {
    digest: string;
    mediaType: string;
    size: number;
    subject: string | undefined;
    createdAt: number;
  }[];
  /** Digests that tags point at. */
  taggedDigests: string[];
  references: { manifest: string; child: string; kind: ManifestReference["kind"] }[];
  links: { digest: string; size: number; linkedAt: number }[];
}

export interface GcManifestRules {
  /** Only manifests created before this (ms since epoch) are removed. */
  before: number;
  /** Untagged manifests no index of the repository references (and whose subject, if any, is gone). */
  untagged: boolean;
  /** Untagged manifests whose subject is not in the repository. */
  orphanReferrers: boolean;
}

export interface GcDeletedManifest {
  digest: string;
  mediaType: string;
  size: number;
  reason: "untagged" | "orphan-referrer";
}

export interface GcBlob {
  digest: string;
  size: number;
}

export interface DanglingPointer {
  kind: "link-without-blob" | "manifest-without-blob" | "tag-without-manifest" | "reference-missing";
  repository: string;
  digest: string;
  /** The tag, for tag-without-manifest; the referencing manifest, for reference-missing. */
  from?: string;
}

export interface NewUploadSession {
  id: string;
  repository: string;
  /** Algorithm the running hash uses, chosen from a digest known at POST, sha256 otherwise. */
  hashAlgorithm: DigestAlgorithm;
  now: number;
}

export interface UploadSession {
  id: string;
  repository: string;
  receivedBytes: number;
  hashAlgorithm: DigestAlgorithm;
  startedAt: number;
  updatedAt: number;
}

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | undefined;
  subject: string | undefined;
  annotations: Record<string, string> | undefined;
  createdAt: number;
}

export interface NewManifest {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | undefined;
  subject: string | undefined;
  annotations: Record<string, string> | undefined;
  references: ManifestReference[];
  now: number;
  /**
   * Pull-through cache: recorded without checking that the references are present, since they are
   * fetched from the upstream when a client asks for them (the manifest's digest was verified).
   */
  referencesFetchedOnDemand?: boolean;
}

export interface MissingReference {
  digest: string;
  kind: ManifestReference["kind"];
  /** Present but with another size than the descriptor says. */
  actualSize?: number;
}

export interface RepositorySummary {
  name: string;
  tagCount: number;
  /** Latest tag update (ms since epoch), or when the repository was created if it has no tags. */
  updatedAt: number;
}

export interface TagDetail {
  name: string;
  /** When the tag last moved (ms since epoch): its push time. */
  updatedAt: number;
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | undefined;
}
