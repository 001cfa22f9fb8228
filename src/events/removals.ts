import type { Logger } from "pino";
import type { GcEvents } from "../gc/events.js";
import type { Notifier } from "./notifier.js";

/**
 * Garbage collection's removals as `delete` events (actor "gc") for the endpoints that want them. They
 * are appended after each removal commits, not in its transaction: a crash between the two loses the
 * event, never the removal. Removals without a repository (a blob's bytes, store leftovers, upload
 * scratch) have no place in Distribution's envelope and are only logged.
 */
export function publishGcRemovals(events: GcEvents, notifier: Notifier | undefined, logger: Logger): void {
  if (!notifier) return;
  events.onRemoved((event) => {
    if (event.dryRun || event.repository === undefined || event.digest === undefined) return;
    if (event.action !== "manifest.deleted" && event.action !== "blob.unlinked") return;
    const target = {
      repository: event.repository,
      digest: event.digest,
      ...(event.mediaType !== undefined ? { mediaType: event.mediaType } : {}),
      ...(event.size !== undefined ? { size: event.size } : {}),
    };
    notifier
      .publishEvents("delete", [target], {
        actor: "gc",
        kind: event.action === "manifest.deleted" ? "manifests" : "blobs",
      })
      .catch((error: unknown) => logger.error({ err: error }, "could not record a gc event"));
  });
}
