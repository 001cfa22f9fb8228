import type { Logger } from "pino";

/** One thing garbage collection removed (or, in a dry run, would remove). */
export interface GcEvent {
  action: "manifest.deleted" | "blob.unlinked" | "blob.deleted" | "upload.deleted" | "leftover.deleted";
  /** Absent for registry-wide content (a blob's bytes, store leftovers). */
  repository?: string;
  /** A digest; an upload id for upload.deleted; a store key for leftover.deleted. */
  digest?: string;
  mediaType?: string;
  size?: number;
  /** Which rule removed it: untagged, orphan-referrer, unreferenced, not-recorded, idle, no-session, unlinked-data. */
  reason?: string;
  dryRun: boolean;
}

export type GcEventListener = (event: GcEvent) => void;

/**
 * Where every removal is reported. By default each one is a structured log line; other features (webhooks)
 * subscribe with `events.onRemoved(listener)`. A listener that throws is logged and does not stop GC.
 */
export class GcEvents {
  private readonly listeners = new Set<GcEventListener>();

  constructor(private readonly logger: Logger) {
    this.onRemoved((event) => logger.info({ gc: event }, event.dryRun ? "gc would remove" : "gc removed"));
  }

  /** Subscribes; returns the unsubscribe function. */
  onRemoved(listener: GcEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: GcEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error }, "gc event listener failed");
      }
    }
  }
}
