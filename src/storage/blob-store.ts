import type { Readable } from "node:stream";
import type { Digest } from "../oci/digest.js";
import type { ByteRange } from "../oci/range.js";

/**
 * Where blob bytes live. Content is addressed by digest and immutable once published; uploads are
 * private scratch objects until `commitUpload` publishes them. Metadata (which repository may see
 * what) lives in the MetadataStore, never here.
 */
export interface BlobStore {
  /**
   * Prepares the scratch object of an upload session. A store may create it only at the first write (at
   * offset 0); until then it reads as empty.
   */
  createUpload(uploadId: string): Promise<void>;
  /**
   * Writes `source` into the upload starting at `offset` and resolves with the number of bytes written,
   * made durable unless `durable` is false (the caller commits the upload next, which syncs anyway).
   * Bytes past `offset` from an earlier failed write are overwritten. Rejects with BlobNotFoundError when
   * the scratch object is gone and `offset` is past 0.
   */
  writeUpload(
    uploadId: string,
    offset: number,
    source: AsyncIterable<Buffer>,
    durable?: boolean,
  ): Promise<number>;
  /** Reads the first `length` bytes of an upload, to rebuild a running hash on another process. */
  readUpload(uploadId: string, length: number): Promise<Readable>;
  /** Publishes the first `size` bytes of the upload as blob `digest`, durably and atomically. */
  commitUpload(uploadId: string, size: number, digest: Digest): Promise<void>;
  /**
   * `writeUpload` of a request's closing bytes, then `commitUpload` of the whole upload as `digest`, in
   * one pass where that saves work (the filesystem opens the scratch file once, not twice). `admit` runs
   * with the number of bytes written, before anything is published: the caller checks the digest and
   * prepares the publish there, and a rejection publishes nothing. At offset 0 the scratch object is
   * created if there is none (a single-request push has no session). Optional: callers fall back to the
   * two calls.
   */
  writeAndCommitUpload?(
    uploadId: string,
    offset: number,
    source: AsyncIterable<Buffer>,
    digest: Digest,
    admit: (written: number) => Promise<void>,
  ): Promise<number>;
  deleteUpload(uploadId: string): Promise<void>;

  /** Durably stores small content whose digest the caller has verified (manifests). */
  putBlob(digest: Digest, bytes: Buffer): Promise<void>;
  /** Streams a blob or a byte range of it; rejects with BlobNotFoundError when absent. */
  readBlob(digest: Digest, range?: ByteRange): Promise<Readable>;
  /**
   * Opens a blob for positioned reads into the caller's buffers, so a response can reuse two buffers
   * instead of allocating one per chunk (the garbage collector's work dominated pulls otherwise).
   * Optional: stores without random access (S3) stream with readBlob. Rejects with BlobNotFoundError.
   */
  openBlobReader?(digest: Digest): Promise<BlobReader>;
  readBlobBytes(digest: Digest): Promise<Buffer>;
  /** Size in bytes, or undefined when the store does not hold it. */
  statBlob(digest: Digest): Promise<number | undefined>;
  deleteBlob(digest: Digest): Promise<void>;
  /**
   * A URL from which a client can GET the blob's bytes directly (it honours the client's Range header),
   * or undefined when they must be streamed through berth. Optional: stores without direct access
   * (filesystem) omit it. Rejects with BlobNotFoundError when absent.
   */
  redirectUrl?(digest: Digest): Promise<string | undefined>;
  /** Cheap check that the store can be read and written, for readiness probes. */
  ping(): Promise<void>;

  // gc: listings for garbage collection, scrub and fsck. They walk the store, so they cost O(store).

  /** Every published blob, in no particular order. */
  listBlobs(): AsyncIterable<StoredBlob>;
  /** Every upload scratch area; after a crash some belong to no session. */
  listUploads(): AsyncIterable<StoredUpload>;
  /**
   * Store-internal leftovers that no published blob points at and that were last written before `before`
   * (S3: data objects of a publish a crash interrupted); deleted unless `dryRun`. Stores without such
   * internals omit it.
   */
  collectLeftovers?(before: number, dryRun: boolean): Promise<{ key: string; size: number }[]>;
}

export interface StoredBlob {
  digest: Digest;
  /** Undefined when the listing cannot tell without another request (S3 links); statBlob can. */
  size: number | undefined;
  /** Last write, ms since epoch. */
  modifiedAt: number;
}

export interface StoredUpload {
  id: string;
  /** Last write, ms since epoch. */
  modifiedAt: number;
}

/** Positioned reads of one blob; the caller closes it. */
export interface BlobReader {
  /** Reads up to `length` bytes at `position` into the start of `buffer`; 0 at the end of the blob. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(what: string) {
    super(`not found in blob store: ${what}`);
    this.name = "BlobNotFoundError";
  }
}
