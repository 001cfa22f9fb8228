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
