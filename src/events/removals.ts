import type { GcBlob, GcDeletedManifest, NewOutboxEvent } from "../metadata/metadata-store.js";
import type { Notifier } from "./notifier.js";

/**
 * Garbage collection's removals as `delete` events (actor "gc"), built inside the transaction that removes
 * them, so they reach the outbox exactly when the removal commits. Removals without a repository (a blob's
 * bytes, store leftovers, upload scratch) have no place in Distribution's envelope and are only logged.
 */
export interface GcRemovalEvents {
  manifests(repository: string, deleted: GcDeletedManifest[]): NewOutboxEvent[];
  links(repository: string, unlinked: GcBlob[]): NewOutboxEvent[];
}

export function gcRemovalEvents(notifier: Notifier | undefined): GcRemovalEvents | undefined {
  if (!notifier) return undefined;
  return {
    manifests: (repository, deleted) =>
      deleted.flatMap((manifest) =>
        notifier.eventsFor(
          "delete",
          { repository, digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size },
          { actor: "gc", kind: "manifests" },
        ),
      ),
    links: (repository, unlinked) =>
      unlinked.flatMap((blob) =>
        notifier.eventsFor(
          "delete",
          { repository, digest: blob.digest, size: blob.size },
          { actor: "gc", kind: "blobs" },
        ),
      ),
  };
}
