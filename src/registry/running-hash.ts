import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import type { DigestAlgorithm } from "../oci/digest.js";

/**
 * The hash of an upload's bytes so far, kept in memory between chunks. It is valid only for the
 * offset it was computed up to; whoever finds it stale or missing (after a restart, on another
 * instance, after a failed chunk) rebuilds it from the stored bytes.
 */
export interface RunningHash {
  algorithm: DigestAlgorithm;
  hash: Hash;
  offset: number;
}

export class RunningHashes {
  private readonly hashes = new Map<string, RunningHash>();

  /** The hash at exactly `offset`, or undefined when it must be rebuilt. */
  take(uploadId: string, offset: number, algorithm: DigestAlgorithm): RunningHash | undefined {
    const running = this.hashes.get(uploadId);
    this.hashes.delete(uploadId);
    if (!running || running.offset !== offset || running.algorithm !== algorithm) return undefined;
    return running;
  }

  keep(uploadId: string, running: RunningHash): void {
    this.hashes.set(uploadId, running);
  }

  forget(uploadId: string): void {
    this.hashes.delete(uploadId);
  }

  get size(): number {
    return this.hashes.size;
  }
}

export function newRunningHash(algorithm: DigestAlgorithm): RunningHash {
  return { algorithm, hash: createHash(algorithm), offset: 0 };
}

/** Passes bytes through unchanged while feeding them to the hash and counting them. */
export class HashingPassThrough extends Transform {
  bytes = 0;
  constructor(private readonly hash: Hash) {
    super({ highWaterMark: 1 << 20 });
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }
}
