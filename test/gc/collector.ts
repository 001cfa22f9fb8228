import { setTimeout as sleep } from "node:timers/promises";
import type { GcEvent } from "../../src/gc/events.js";
import { GarbageCollector, type GcOptions, type GcSummary } from "../../src/gc/garbage-collector.js";
import type { RunningBerth } from "../../src/server.js";

/** A collector on a running berth's own stores, with the events it emits. */
export function collectorFor(server: RunningBerth, options: Partial<GcOptions> = {}) {
  const { metadata, blobStore } = server.registry.ctx;
  const collector = new GarbageCollector(
    metadata,
    blobStore,
    {
      graceMs: 0,
      deleteUntagged: false,
      deleteOrphanReferrers: true,
      uploadIdleMs: 24 * 3600 * 1000,
      dryRun: false,
      ...options,
    },
    server.logger,
  );
  const events: GcEvent[] = [];
  collector.events.onRemoved((event) => events.push(event));
  return {
    collector,
    events,
    /** One pass, a few ms after the last write so a zero grace period covers it. */
    async run(): Promise<GcSummary> {
      await sleep(5);
      events.length = 0;
      return collector.run();
    },
  };
}
