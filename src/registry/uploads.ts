import { randomUUID } from "node:crypto";
import { pinForPublish } from "../gc/publish-pin.js";
import type { UploadSession } from "../metadata/metadata-store.js";
import type { WriteLimits } from "../metadata/write-limits.js";
import type { Digest, DigestAlgorithm } from "../oci/digest.js";
import { RegistryError } from "../oci/errors.js";
import type { ByteRange } from "../oci/range.js";
import { BlobNotFoundError } from "../storage/blob-store.js";
import type { RegistryContext } from "./context.js";
import { KeyedLock } from "./keyed-lock.js";
import { PolicyGate } from "./policies.js";
import { newRunningHash, type RunningHash, RunningHashes } from "./running-hash.js";

/** Where an upload stands: `offset` bytes received so far (the spec's `Range: 0-<offset-1>`). */
export interface UploadStatus {
  id: string;
  repository: string;
  offset: number;
}

/** A chunk as the client described it with `Content-Range` and `Content-Length`. */
export interface ChunkHeaders {
  range?: ByteRange;
  length?: number;
}

const uploadIdGrammar = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Blob uploads: distribution-spec "Pushing blobs" (monolithic, POST then PUT, chunked PATCH).
 * Bytes go to the blob store's scratch object and are hashed while they stream; the session's
 * received-byte count in the metadata store is the acknowledged truth.
 */
export class UploadService {
  private readonly hashes = new RunningHashes();
  private readonly locks = new KeyedLock();
  private readonly policies: PolicyGate;

  constructor(private readonly ctx: RegistryContext) {
    this.policies = new PolicyGate(ctx.metadata, ctx.config);
  }

  async start(repository: string, hashAlgorithm: DigestAlgorithm = "sha256"): Promise<UploadStatus> {
    const { metadata, blobStore, config } = this.ctx;
    const id = randomUUID();
    await blobStore.createUpload(id);
    const session = { id, repository, hashAlgorithm, now: Date.now() };
    const limit = config.limits.uploadSessions;
    // At the limit, sessions past their idle time (swept only every few minutes) make room first.
    if (
      !(await metadata.createUploadSession(session, limit)) &&
      ((await this.purgeIdle()) === 0 || !(await metadata.createUploadSession(session, limit)))
    ) {
      await blobStore.deleteUpload(id);
      throw new RegistryError("TOOMANYREQUESTS", "too many upload sessions in progress; retry later", {
        headers: { "Retry-After": "30" },
      });
    }
    return { id, repository, offset: 0 };
  }

  async status(repository: string, id: string): Promise<UploadStatus> {
    const session = await this.session(repository, id);
    return { id, repository, offset: session.receivedBytes };
  }

  async append(
    repository: string,
    id: string,
    body: AsyncIterable<Buffer>,
    chunk: ChunkHeaders,
  ): Promise<UploadStatus> {
    return this.locks.run(id, async () => {
      const session = await this.session(repository, id);
      const running = await this.write(session, body, chunk).catch(async (error: unknown) => {
        if (error instanceof BlobTooLarge) await this.discard(id);
        if (!(error instanceof UploadBytesMissing)) throw error;
        await this.discard(id);
        throw error.toRegistryError();
      });
      this.hashes.keep(id, running);
      return { id, repository, offset: running.offset };
    });
  }

  /**
   * Closes the session: appends the final chunk if there is one, checks the digest of the whole blob,
   * publishes it and links it into the repository. On a digest mismatch the session is discarded.
   */
  async finish(
    repository: string,
    id: string,
    digest: Digest,
    body: AsyncIterable<Buffer> | undefined,
    chunk: ChunkHeaders,
  ): Promise<{ size: number }> {
    return this.locks.run(id, async () => {
      const session = await this.session(repository, id);
      if (body && this.ctx.blobStore.writeAndCommitUpload)
        return { size: await this.closeWithBytes(session, body, chunk, digest) };
      let running: RunningHash;
      try {
        running = body
          ? await this.write(session, body, chunk, false)
          : (this.hashes.take(id, session.receivedBytes, session.hashAlgorithm) ??
            (await this.rebuild(session)));
      } catch (error) {
        if (error instanceof BlobTooLarge) await this.discard(id);
        if (!(error instanceof UploadBytesMissing)) throw error;
        // A crash between publishing the blob and recording it leaves the session without its bytes and
        // the verified blob in place (only verified content is ever published): the retried PUT completes,
        // linking the blob and closing the session in one transaction so no later crash can split them.
        if (body === undefined && (await this.ctx.blobStore.statBlob(digest)) === session.receivedBytes) {
          // gc: pinned, then checked again, so the bytes cannot be collected between the stat and the record.
          await pinForPublish(this.ctx.metadata, digest.value);
        }
        if (body === undefined && (await this.ctx.blobStore.statBlob(digest)) === session.receivedBytes) {
          const limits = this.policies.blobLimits(repository);
          await this.record(repository, id, session.receivedBytes, digest, true, limits);
          return { size: session.receivedBytes };
        }
        await this.discard(id);
        throw error.toRegistryError();
      }
      const size = running.offset;
      await this.verify(id, digest, running).catch(async (error: unknown) => {
        await this.discard(id);
        throw error;
      });
      await this.publish(repository, id, size, digest, true);
      return { size };
    });
  }

  /**
   * finish() with the closing bytes in the request, on a store that writes and publishes them in one
   * pass: the length and the digest are checked and the publish admitted between the two.
   */
  private async closeWithBytes(
    session: UploadSession,
    body: AsyncIterable<Buffer>,
    chunk: ChunkHeaders,
    digest: Digest,
  ): Promise<number> {
    const { id, repository } = session;
    const offset = session.receivedBytes;
    const writeAndCommit = this.ctx.blobStore.writeAndCommitUpload?.bind(this.ctx.blobStore);
    if (!writeAndCommit) throw new Error("the blob store cannot write and commit in one pass");
    try {
      const running = await this.runningHash(session, chunk);
      let limits: WriteLimits | undefined;
      const written = await writeAndCommit(
        id,
        offset,
        this.hashedBody(session, body, running),
        digest,
        async (count) => {
          // The session is not advanced: recording the blob closes it, and until then a failed publish
          // leaves it at its acknowledged offset, where a retry starts again.
          checkLength(chunk, count);
          await this.verify(id, digest, running);
          limits = await this.admit(repository, id, running.offset, digest, true);
        },
      ).catch((error: unknown) => {
        throw error instanceof BlobNotFoundError ? new UploadBytesMissing() : error;
      });
      await this.record(repository, id, offset + written, digest, true, limits);
      return offset + written;
    } catch (error) {
      if (error instanceof BlobTooLarge || error instanceof DigestMismatch) await this.discard(id);
      if (!(error instanceof UploadBytesMissing)) throw error;
      await this.discard(id);
      throw error.toRegistryError();
    }
  }

  /** Single-request upload (`POST ?digest=` with a body, or a PUT that carries the whole blob). */
  async pushMonolithic(
    repository: string,
    digest: Digest,
    body: AsyncIterable<Buffer>,
  ): Promise<{ size: number }> {
    const { blobStore } = this.ctx;
    const id = randomUUID();
    try {
      const running = newRunningHash(digest.algorithm);
      const source = hashed(this.capped(repository, body, 0), running);
      if (blobStore.writeAndCommitUpload) {
        let limits: WriteLimits | undefined;
        const size = await blobStore.writeAndCommitUpload(id, 0, source, digest, async (count) => {
          await this.verify(id, digest, running);
          limits = await this.admit(repository, id, count, digest, false);
        });
        await this.record(repository, id, size, digest, false, limits);
        return { size };
      }
      await blobStore.createUpload(id);
      // Not synced here: commitUpload syncs the file before publishing it.
      const bytes = await blobStore.writeUpload(id, 0, source, false);
      await this.verify(id, digest, running);
      await this.publish(repository, id, bytes, digest, false);
      return { size: bytes };
    } catch (error) {
      await blobStore.deleteUpload(id).catch(() => undefined);
      throw error;
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.locks.run(id, async () => {
      await this.session(repository, id);
      await this.discard(id);
    });
  }

  /** Removes sessions idle longer than the configured limit, with their bytes. */
  async purgeIdle(now = Date.now()): Promise<number> {
    const before = now - this.ctx.config.limits.uploadIdleSeconds * 1000;
    let purged = 0;
    for (;;) {
      const idle = await this.ctx.metadata.listIdleUploadSessions(before, 100);
      for (const session of idle) {
        await this.locks.run(session.id, () => this.discard(session.id));
        purged++;
      }
      if (idle.length < 100) return purged;
    }
  }

  private async session(repository: string, id: string): Promise<UploadSession> {
    const unknown = () =>
      new RegistryError("BLOB_UPLOAD_UNKNOWN", undefined, { detail: { uuid: id.slice(0, 64) } });
    if (!uploadIdGrammar.test(id)) throw unknown();
    const session = await this.ctx.metadata.getUploadSession(id);
    if (!session || session.repository !== repository) throw unknown();
    if (Date.now() - session.updatedAt > this.ctx.config.limits.uploadIdleSeconds * 1000) {
      await this.discard(id);
      throw unknown();
    }
    return session;
  }

  /**
   * Appends a chunk and advances the session. `acknowledged`: the chunk is answered 202 on its own, so it
   * must be on disk first; the last chunk of a closing PUT is made durable by the commit that follows.
   */
  private async write(
    session: UploadSession,
    body: AsyncIterable<Buffer>,
    chunk: ChunkHeaders,
    acknowledged = true,
  ): Promise<RunningHash> {
    const running = await this.runningHash(session, chunk);
    // From here the running hash is consumed: on any failure it is simply not kept, and rebuilt next time.
    const written = await this.ctx.blobStore
      .writeUpload(session.id, session.receivedBytes, this.hashedBody(session, body, running), acknowledged)
      .catch((error: unknown) => {
        throw error instanceof BlobNotFoundError ? new UploadBytesMissing() : error;
      });
    await this.advance(session, chunk, written, acknowledged);
    return running;
  }

  /** The hash of the bytes acknowledged so far, once the chunk is known to continue them. */
  private async runningHash(session: UploadSession, chunk: ChunkHeaders): Promise<RunningHash> {
    const offset = session.receivedBytes;
    if (chunk.range) {
      // distribution-spec "Pushing a blob in chunks": out-of-order chunks are answered 416.
      if (chunk.range.start !== offset)
        throw rangeNotSatisfiable(session, "chunk does not start where the upload ends");
      if (chunk.length !== undefined && chunk.range.end - chunk.range.start + 1 !== chunk.length) {
        throw rangeNotSatisfiable(session, "Content-Range does not match Content-Length");
      }
    }
    // At offset 0 (POST, then a PUT or PATCH with the bytes) there is nothing to read back; the write
    // itself finds out if the upload's scratch object is gone.
    return (
      this.hashes.take(session.id, offset, session.hashAlgorithm) ??
      (offset === 0 ? newRunningHash(session.hashAlgorithm) : await this.rebuild(session))
    );
  }

  private hashedBody(session: UploadSession, body: AsyncIterable<Buffer>, running: RunningHash) {
    return hashed(this.capped(session.repository, body, session.receivedBytes), running);
  }

  /** Records `written` more bytes in the session, if nobody else moved it meanwhile. */
  private async advance(
    session: UploadSession,
    chunk: ChunkHeaders,
    written: number,
    acknowledged: boolean,
  ): Promise<void> {
    checkLength(chunk, written);
    const offset = session.receivedBytes;
    const advanced = await this.ctx.metadata.advanceUploadSession(
      session.id,
      offset,
      offset + written,
      Date.now(),
      acknowledged,
    );
    if (!advanced) {
      throw new RegistryError(
        "BLOB_UPLOAD_INVALID",
        "the upload was modified concurrently; query its status and retry",
        { status: 416 },
      );
    }
  }

  private async rebuild(session: UploadSession): Promise<RunningHash> {
    const running = newRunningHash(session.hashAlgorithm);
    try {
      const stored = await this.ctx.blobStore.readUpload(session.id, session.receivedBytes);
      await hashAll(stored, running);
    } catch (error) {
      if (error instanceof BlobNotFoundError) throw new UploadBytesMissing();
      throw error;
    }
    // Fewer bytes than acknowledged only after a power cut lost a closing PUT's unsynced last chunk.
    if (running.offset !== session.receivedBytes) throw new UploadBytesMissing();
    return running;
  }

  private async hashStored(id: string, size: number, algorithm: DigestAlgorithm): Promise<string> {
    const running = newRunningHash(algorithm);
    await hashAll(await this.ctx.blobStore.readUpload(id, size), running);
    return running.hash.digest("hex");
  }

  /** Rejects with DigestMismatch unless the bytes written hash to `digest`. */
  private async verify(id: string, digest: Digest, running: RunningHash): Promise<void> {
    const actual =
      digest.algorithm === running.algorithm
        ? running.hash.digest("hex")
        : await this.hashStored(id, running.offset, digest.algorithm);
    if (actual !== digest.encoded) throw new DigestMismatch(digest, `${digest.algorithm}:${actual}`);
  }

  private async publish(repository: string, id: string, size: number, digest: Digest, hasSession: boolean) {
    const limits = await this.admit(repository, id, size, digest, hasSession);
    await this.ctx.blobStore.commitUpload(id, size, digest);
    await this.record(repository, id, size, digest, hasSession, limits);
  }

  /**
   * What must hold before verified bytes are published: pinned against garbage collection (content
   * before pointers holds against GC too), and within the byte quota, checked now so a refused upload
   * stores nothing. The store checks the quota again as it records the blob (a race lost there leaves an
   * unlinked blob for GC). Resolves with the repository's limits, for `record`.
   */
  private async admit(
    repository: string,
    id: string,
    size: number,
    digest: Digest,
    hasSession: boolean,
  ): Promise<WriteLimits | undefined> {
    this.hashes.forget(id);
    await pinForPublish(this.ctx.metadata, digest.value);
    const limits = this.policies.blobLimits(repository);
    if (limits)
      await this.policies
        .checkBlob(repository, digest.value, size, limits)
        .catch((error: unknown) => this.refuse(error, repository, id, hasSession));
    return limits;
  }

  /** Links the published blob into the repository and closes the session, in one transaction. */
  private async record(
    repository: string,
    id: string,
    size: number,
    digest: Digest,
    hasSession: boolean,
    limits: WriteLimits | undefined,
  ): Promise<void> {
    const session = hasSession ? id : undefined;
    const events = blobPushEvents(this.ctx, repository, digest.value, size);
    if (limits)
      await this.ctx.metadata
        .recordBlobWithin(repository, digest.value, size, session, limits, events)
        .catch((error: unknown) => this.refuse(error, repository, id, hasSession));
    else await this.ctx.metadata.recordBlob(repository, digest.value, size, session, events);
  }

  private async refuse(error: unknown, repository: string, id: string, hasSession: boolean): Promise<never> {
    if (hasSession) await this.discard(id);
    throw this.policies.refused(error, repository);
  }

  /**
   * With a byte quota, an upload larger than the whole quota can never be committed: the bytes past it are
   * read (so the client gets the answer) but not stored, and the write fails with BlobTooLarge.
   */
  private capped(repository: string, body: AsyncIterable<Buffer>, offset: number): AsyncIterable<Buffer> {
    const maxBytes = this.policies.blobLimits(repository)?.maxBytes;
    if (maxBytes === undefined) return body;
    return capBytes(
      body,
      maxBytes - offset,
      () => new BlobTooLarge(this.policies.blobTooLarge(repository, maxBytes)),
    );
  }

  private async discard(id: string): Promise<void> {
    this.hashes.forget(id);
    await this.ctx.metadata.deleteUploadSession(id);
    await this.ctx.blobStore.deleteUpload(id);
  }
}

/**
 * The session is recorded but its bytes are gone (a crash before they were durable, or after they were
 * published). Callers decide whether the session can still complete before answering BLOB_UPLOAD_UNKNOWN.
 */
class UploadBytesMissing extends Error {
  toRegistryError(): RegistryError {
    return new RegistryError("BLOB_UPLOAD_UNKNOWN", "the upload's data is gone; start the upload again");
  }
}

/** distribution-spec DIGEST_INVALID: the uploaded bytes do not hash to the digest the client gave. */
class DigestMismatch extends RegistryError {
  constructor(expected: Digest, actual: string) {
    super("DIGEST_INVALID", "provided digest did not match uploaded content", {
      detail: { expected: expected.value, actual },
    });
  }
}

/** The DENIED answer for an upload that grew past its repository's whole byte quota. */
class BlobTooLarge extends RegistryError {
  constructor(denied: RegistryError) {
    super(denied.code, denied.message, { detail: denied.detail });
  }
}

async function* capBytes(
  source: AsyncIterable<Buffer>,
  room: number,
  tooLarge: () => Error,
): AsyncGenerator<Buffer> {
  let seen = 0;
  for await (const chunk of source) {
    seen += chunk.length;
    if (seen <= room) yield chunk;
  }
  if (seen > room) throw tooLarge();
}

/** distribution-spec SIZE_INVALID unless the body was as long as Content-Range or Content-Length said. */
function checkLength(chunk: ChunkHeaders, written: number): void {
  const expected = chunk.range ? chunk.range.end - chunk.range.start + 1 : (chunk.length ?? written);
  if (written !== expected) {
    throw new RegistryError("SIZE_INVALID", `received ${written} bytes, the request announced ${expected}`);
  }
}

function rangeNotSatisfiable(session: UploadSession, message: string): RegistryError {
  return new RegistryError("BLOB_UPLOAD_INVALID", message, {
    status: 416,
    detail: { expectedStart: session.receivedBytes },
    headers: {
      Range: uploadRange(session.receivedBytes),
      Location: uploadLocation(session.repository, session.id),
      "Docker-Upload-UUID": session.id,
    },
  });
}

/** The spec's `Range: 0-<end-of-range>`; an empty upload reports `0-0`, as Distribution does. */
export function uploadRange(offset: number): string {
  return `0-${Math.max(0, offset - 1)}`;
}

export function uploadLocation(repository: string, id: string): string {
  return `/v2/${repository}/blobs/uploads/${id}`;
}

async function* hashed(source: AsyncIterable<Buffer>, running: RunningHash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    running.hash.update(chunk);
    running.offset += chunk.length;
    yield chunk;
  }
}

async function hashAll(source: AsyncIterable<Buffer>, running: RunningHash): Promise<void> {
  for await (const chunk of source) {
    running.hash.update(chunk);
    running.offset += chunk.length;
  }
}

/** observe: the push event of a published blob, written with it (none when no endpoint wants pushes). */
function blobPushEvents(ctx: RegistryContext, repository: string, digest: string, size: number) {
  return ctx.notifier?.eventsFor(
    "push",
    { repository, mediaType: "application/octet-stream", digest, size },
    { kind: "blobs" },
  );
}
