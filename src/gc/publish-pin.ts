import { setTimeout as sleep } from "node:timers/promises";
import type { MetadataStore } from "../metadata/metadata-store.js";
import { RegistryError } from "../oci/errors.js";

/** How long a push waits for garbage collection to finish deleting the bytes of the digest it publishes. */
const tombstoneWaitMs = 30_000;
const pollMs = 25;

/**
 * Pins `digest` before a push publishes its bytes, so GC leaves it alone for the grace period (see
 * src/gc/garbage-collector.ts). When GC is deleting that very digest (a tombstone), waits until the
 * tombstone is cleared (the old bytes are gone) and then pins: the caller publishes the bytes afresh.
 */
export async function pinForPublish(metadata: MetadataStore, digest: string): Promise<void> {
  const deadline = Date.now() + tombstoneWaitMs;
  while (!(await metadata.pinBlob(digest, Date.now()))) {
    if (Date.now() > deadline) {
      throw new RegistryError("UNAVAILABLE", `garbage collection is deleting ${digest}; retry shortly`, {
        status: 503,
        headers: { "Retry-After": "5" },
      });
    }
    await sleep(pollMs);
  }
}
