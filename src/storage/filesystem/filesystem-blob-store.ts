import { randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open, opendir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { GroupSync } from "../../group-sync.js";
import { type Digest, digestAlgorithms, parseDigest } from "../../oci/digest.js";
import type { ByteRange } from "../../oci/range.js";
import {
  BlobNotFoundError,
  type BlobReader,
  type BlobStore,
  type StoredBlob,
  type StoredUpload,
} from "../blob-store.js";

const uploadIdGrammar = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Blobs as content-addressed files: `<root>/blobs/<algorithm>/<hex>`, the OCI image layout's shape. One
 * directory per algorithm lets concurrent publishes share the directory flush that makes a rename durable.
 * Uploads are files under `<root>/uploads`, on the same filesystem so publishing is one rename.
 * Paths are built only from parsed digests and UUIDs, never from raw request text.
 */
export class FilesystemBlobStore implements BlobStore {
  private readonly blobsDir: string;
  private readonly uploadsDir: string;
  private readonly tmpDir: string;
  /** Grouped fsyncs of each algorithm's directory, after renames into it. */
  private readonly directorySyncs = new Map<string, GroupSync>();

  private constructor(root: string) {
    this.blobsDir = join(root, "blobs");
    this.uploadsDir = join(root, "uploads");
    this.tmpDir = join(root, "tmp");
  }

  static async open(root: string): Promise<FilesystemBlobStore> {
    const store = new FilesystemBlobStore(root);
    for (const dir of [store.blobsDir, store.uploadsDir, store.tmpDir]) await mkdir(dir, { recursive: true });
    for (const algorithm of digestAlgorithms) {
      const dir = join(store.blobsDir, algorithm);
      await mkdir(dir, { recursive: true });
      store.directorySyncs.set(dir, new GroupSync(() => syncDirectory(dir)));
    }
    await syncDirectory(store.blobsDir);
    // Leftovers of writes a crash interrupted; nothing points at them.
    await rm(store.tmpDir, { recursive: true, force: true });
    await mkdir(store.tmpDir, { recursive: true });
    return store;
  }

  private uploadPath(uploadId: string): string {
    if (!uploadIdGrammar.test(uploadId)) throw new Error(`invalid upload id ${JSON.stringify(uploadId)}`);
    return join(this.uploadsDir, uploadId);
  }

  private blobPath(digest: Digest): string {
    return join(this.blobsDir, digest.algorithm, digest.encoded);
  }

  async createUpload(uploadId: string): Promise<void> {
    // The scratch file is created by the first write (at offset 0), not here: two thread-pool round trips
    // fewer per push, which the event loop pays for in a workload of many small blobs.
    this.uploadPath(uploadId);
  }

  async writeUpload(
    uploadId: string,
    offset: number,
    source: AsyncIterable<Buffer>,
    durable = true,
  ): Promise<number> {
    const handle =
      offset === 0 ? await open(this.uploadPath(uploadId), "w") : await this.openUpload(uploadId);
    try {
      const written = await writeAt(handle, offset, source);
      if (durable) await handle.sync();
      return written;
    } finally {
      await handle.close();
    }
  }

  async writeAndCommitUpload(
    uploadId: string,
    offset: number,
    source: AsyncIterable<Buffer>,
    digest: Digest,
    admit: (written: number) => Promise<void>,
  ): Promise<number> {
    // One open for the last bytes and the publish: the scratch file is opened once instead of twice. At
    // offset 0 it is created, or emptied of an earlier attempt's bytes, so nothing can lie past the end.
    const path = this.uploadPath(uploadId);
    const handle = offset === 0 ? await open(path, "w") : await this.openUpload(uploadId);
    let written: number;
    try {
      written = await writeAt(handle, offset, source);
      await admit(written);
      const size = offset + written;
      // A failed chunk may have left bytes past the acknowledged size.
      if (offset > 0 && (await handle.stat()).size !== size) await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.publish(path, this.blobPath(digest));
    return written;
  }

  private async openUpload(uploadId: string): Promise<FileHandle> {
    return open(this.uploadPath(uploadId), "r+").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") throw new BlobNotFoundError(`upload ${uploadId}`);
      throw error;
    });
  }

  async readUpload(uploadId: string, length: number): Promise<Readable> {
    const path = this.uploadPath(uploadId);
    // Nothing written yet may mean no file yet.
    if (length === 0) return Readable.from([]);
    const handle = await open(path, "r").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") throw new BlobNotFoundError(`upload ${uploadId}`);
      throw error;
    });
    return createReadStream("", { fd: handle, start: 0, end: length - 1, highWaterMark: 1 << 20 });
  }

  async commitUpload(uploadId: string, size: number, digest: Digest): Promise<void> {
    const source = this.uploadPath(uploadId);
    // An empty blob may never have had a write to create its file.
    const handle = size === 0 ? await open(source, "w") : await this.openUpload(uploadId);
    try {
      // A failed chunk may have left bytes past the acknowledged size.
      if ((await handle.stat()).size !== size) await handle.truncate(size);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await this.publish(source, this.blobPath(digest));
  }

  async deleteUpload(uploadId: string): Promise<void> {
    await rm(this.uploadPath(uploadId), { force: true });
  }

  async putBlob(digest: Digest, bytes: Buffer): Promise<void> {
    const target = this.blobPath(digest);
    if (await exists(target)) return;
    const temporary = join(this.tmpDir, randomUUID());
    const handle = await open(temporary, "wx");
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } catch (error) {
      // A half-written file must not linger (until the next restart) holding the space it failed to get.
      await handle.close().catch(() => undefined);
      await rm(temporary, { force: true });
      throw error;
    } finally {
      await handle.close();
    }
    await this.publish(temporary, target);
  }

  /** Rename into place, then fsync the directory so the new name survives a power loss. */
  private async publish(source: string, target: string): Promise<void> {
    await rename(source, target);
    const directorySync = this.directorySyncs.get(dirname(target));
    if (!directorySync) throw new Error(`no directory for ${target}`);
    await directorySync.sync();
  }

  async readBlob(digest: Digest, range?: ByteRange): Promise<Readable> {
    const handle = await open(this.blobPath(digest), "r").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") throw new BlobNotFoundError(digest.value);
      throw error;
    });
    // fs.createReadStream over the handle, not handle.createReadStream(): piped into a Fastify reply, the
    // latter left the keep-alive connection marked busy, so a graceful close waited for its deadline.
    return createReadStream("", {
      fd: handle,
      start: range?.start ?? 0,
      end: range?.end,
      highWaterMark: 1 << 19,
    });
  }

  async openBlobReader(digest: Digest): Promise<BlobReader> {
    const handle = await open(this.blobPath(digest), "r").catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") throw new BlobNotFoundError(digest.value);
      throw error;
    });
    return {
      read: async (buffer, length, position) => (await handle.read(buffer, 0, length, position)).bytesRead,
      close: () => handle.close(),
    };
  }

  async readBlobBytes(digest: Digest): Promise<Buffer> {
    try {
      return await readFile(this.blobPath(digest));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") throw new BlobNotFoundError(digest.value);
      throw error;
    }
  }

  async statBlob(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async deleteBlob(digest: Digest): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  // gc: listings for garbage collection, scrub and fsck.

  async *listBlobs(): AsyncIterable<StoredBlob> {
    for (const algorithm of digestAlgorithms) {
      const dir = join(this.blobsDir, algorithm);
      for await (const entry of await opendir(dir)) {
        if (!entry.isFile()) continue;
        let digest: Digest;
        try {
          digest = parseDigest(`${algorithm}:${entry.name}`);
        } catch {
          continue;
        }
        const info = await stat(join(dir, entry.name)).catch(() => undefined);
        if (info) yield { digest, size: info.size, modifiedAt: info.mtimeMs };
      }
    }
  }

  async *listUploads(): AsyncIterable<StoredUpload> {
    for await (const entry of await opendir(this.uploadsDir)) {
      if (!entry.isFile() || !uploadIdGrammar.test(entry.name)) continue;
      const info = await stat(join(this.uploadsDir, entry.name)).catch(() => undefined);
      if (info) yield { id: entry.name, modifiedAt: info.mtimeMs };
    }
  }

  async ping(): Promise<void> {
    const probe = join(this.tmpDir, `ping-${randomUUID()}`);
    const handle = await open(probe, "wx");
    await handle.close();
    await rm(probe, { force: true });
    // observe: published blobs live elsewhere than the probe; a lost or replaced blobs directory fails too.
    for (const dir of [this.blobsDir, this.uploadsDir])
      if (!(await stat(dir)).isDirectory()) throw new Error(`${dir} is not a directory`);
  }
}

/** Bytes gathered before one write system call. */
const writeBatchBytes = 4 * 1024 * 1024;
/** Bytes written between background flushes to disk during an upload. */
const flushEveryBytes = 8 * 1024 * 1024;

/**
 * Writes `source` at `offset` and resolves with the bytes written. Plain positioned writes, not an fs
 * stream over handle.fd: a destroyed fs stream closes its fd whatever autoClose says, and closing that
 * number again could close a file that another request has opened since (and it masked the real error,
 * e.g. ENOSPC, with EBADF). Chunks are batched into one writev of a few MiB, issued while the next batch
 * arrives, and the disk is flushed as the upload goes, so the final sync has little left to wait for. On
 * failure the bytes past `offset` are dropped: they are never served, and dropping them frees a full disk.
 */
async function writeAt(handle: FileHandle, offset: number, source: AsyncIterable<Buffer>): Promise<number> {
  let position = offset;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let writing: Promise<void> = Promise.resolve();
  let flushing: Promise<void> | undefined;
  let unflushed = 0;
  const issue = async (buffers: Buffer[], at: number) => {
    await writing;
    writing = writeFully(handle, buffers, at);
    writing.catch(() => undefined);
  };
  try {
    for await (const chunk of source) {
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= writeBatchBytes) {
        await issue(batch, position);
        position += batchBytes;
        unflushed += batchBytes;
        batch = [];
        batchBytes = 0;
        if (unflushed >= flushEveryBytes && flushing === undefined) {
          unflushed = 0;
          flushing = writing
            .then(() => handle.datasync())
            .finally(() => {
              flushing = undefined;
            });
          flushing.catch(() => undefined);
        }
      }
    }
    if (batchBytes > 0) {
      await issue(batch, position);
      position += batchBytes;
    }
    await writing;
    await flushing;
    return position - offset;
  } catch (error) {
    await writing.catch(() => undefined);
    await handle.truncate(offset).catch(() => undefined);
    throw error;
  }
}

async function writeFully(handle: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  let at = position;
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, at);
    at += bytesWritten;
    pending = dropWritten(pending, bytesWritten);
  }
}

/** What is left of `buffers` after a short write of `written` bytes. */
function dropWritten(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  let index = 0;
  while (index < buffers.length && skip >= (buffers[index]?.length ?? 0)) {
    skip -= buffers[index]?.length ?? 0;
    index++;
  }
  const rest = buffers.slice(index);
  const first = rest[0];
  if (first && skip > 0) rest[0] = first.subarray(skip);
  return rest;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
