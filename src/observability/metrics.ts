import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every metric berth exports, in one registry. Labels only ever take values from closed sets (route
 * names, methods, status codes, store operations, configured endpoint names), never repository names or
 * raw paths, so the number of series stays bounded whatever clients send.
 * One registry per process: several servers in one process (tests) add to the same series.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry, prefix: "berth_" });

const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

export const httpRequests = new Counter({
  name: "berth_http_requests_total",
  help: "HTTP requests answered, by named route, method and status",
  labelNames: ["route", "method", "status"] as const,
  registers: [metricsRegistry],
});

export const httpRequestDuration = new Histogram({
  name: "berth_http_request_duration_seconds",
  help: "Time from request to the end of the response, by named route, method and status",
  labelNames: ["route", "method", "status"] as const,
  buckets: latencyBuckets,
  registers: [metricsRegistry],
});

export const httpRequestsInFlight = new Gauge({
  name: "berth_http_requests_in_flight",
  help: "Requests being handled now, by named route",
  labelNames: ["route"] as const,
  registers: [metricsRegistry],
});

export const httpBytesReceived = new Counter({
  name: "berth_http_received_bytes_total",
  help: "Request body bytes received on the wire, by named route",
  labelNames: ["route"] as const,
  registers: [metricsRegistry],
});

export const httpBytesSent = new Counter({
  name: "berth_http_sent_bytes_total",
  help: "Response bytes (headers and body) sent on the wire, by named route",
  labelNames: ["route"] as const,
  registers: [metricsRegistry],
});

/** Sources of the upload-session count, one per running server; read at scrape time. */
const uploadSessionCounters = new Set<() => Promise<number>>();

export const uploadsInProgress = new Gauge({
  name: "berth_uploads_in_progress",
  help: "Open blob upload sessions (shared by every instance using the same metadata store)",
  registers: [metricsRegistry],
  async collect() {
    let total = 0;
    for (const count of uploadSessionCounters) total += await count().catch(() => 0);
    this.set(total);
  },
});

/** Registers a server's upload-session count for the gauge; returns the function that unregisters it. */
export function watchUploadSessions(count: () => Promise<number>): () => void {
  uploadSessionCounters.add(count);
  return () => uploadSessionCounters.delete(count);
}

export const storeOperationDuration = new Histogram({
  name: "berth_store_operation_duration_seconds",
  help: "Latency of blob store and metadata store calls (for streams: until the stream is open)",
  labelNames: ["store", "operation"] as const,
  buckets: latencyBuckets,
  registers: [metricsRegistry],
});

export const storeOperationErrors = new Counter({
  name: "berth_store_errors_total",
  help: "Blob store and metadata store calls that failed (a blob found absent is not an error)",
  labelNames: ["store", "operation"] as const,
  registers: [metricsRegistry],
});

export const gcRuns = new Counter({
  name: "berth_gc_runs_total",
  help: "Garbage collection runs, by outcome",
  labelNames: ["result"] as const,
  registers: [metricsRegistry],
});

export const gcRemoved = new Counter({
  name: "berth_gc_removed_total",
  help: "Items garbage collection removed, by kind (blob, manifest, upload, ...)",
  labelNames: ["kind"] as const,
  registers: [metricsRegistry],
});

export const gcRemovedBytes = new Counter({
  name: "berth_gc_removed_bytes_total",
  help: "Bytes garbage collection freed",
  registers: [metricsRegistry],
});

export const proxyRequests = new Counter({
  name: "berth_proxy_requests_total",
  help: "Pull-through cache pulls by upstream prefix and result (hit, miss, coalesced: joined a fetch in flight, stale: served while the upstream failed)",
  labelNames: ["upstream", "result"] as const,
  registers: [metricsRegistry],
});

export const proxyUpstreamBytes = new Counter({
  name: "berth_proxy_upstream_bytes_total",
  help: "Bytes fetched from upstream registries by the pull-through cache",
  labelNames: ["upstream"] as const,
  registers: [metricsRegistry],
});

export const proxyUpstreamRequests = new Counter({
  name: "berth_proxy_upstream_requests_total",
  help: "Requests the pull-through cache sent upstream, by kind (content, token) and failures",
  labelNames: ["upstream", "kind"] as const,
  registers: [metricsRegistry],
});

export const eventsQueued = new Counter({
  name: "berth_events_queued_total",
  help: "Events built for an endpoint (written to the outbox when their change commits)",
  labelNames: ["endpoint"] as const,
  registers: [metricsRegistry],
});

export const eventsDelivered = new Counter({
  name: "berth_events_delivered_total",
  help: "Events an endpoint acknowledged with a 2xx",
  labelNames: ["endpoint"] as const,
  registers: [metricsRegistry],
});

export const eventDeliveryFailures = new Counter({
  name: "berth_event_delivery_failures_total",
  help: "Delivery attempts that failed (network error, timeout or non-2xx), by endpoint",
  labelNames: ["endpoint"] as const,
  registers: [metricsRegistry],
});

export const eventsDropped = new Counter({
  name: "berth_events_dropped_total",
  help: "Undelivered events discarded because the endpoint's backlog was full",
  labelNames: ["endpoint"] as const,
  registers: [metricsRegistry],
});

/** For the garbage collector: one finished run and what it removed. */
export function recordGcRun(result: {
  ok: boolean;
  removed?: Partial<Record<string, number>>;
  removedBytes?: number;
}): void {
  gcRuns.inc({ result: result.ok ? "success" : "failure" });
  for (const [kind, count] of Object.entries(result.removed ?? {})) {
    if (count !== undefined && count > 0) gcRemoved.inc({ kind }, count);
  }
  if (result.removedBytes !== undefined && result.removedBytes > 0) gcRemovedBytes.inc(result.removedBytes);
}

/**
 * For the pull-through cache: one of its counters (src/proxy/proxy-metrics.ts) moved for an upstream prefix.
 * Prefixes come from the config, so the label stays bounded.
 */
export function recordProxyCounter(upstream: string, counter: string, amount: number): void {
  const result = proxyResults[counter];
  if (result !== undefined) proxyRequests.inc({ upstream, result }, amount);
  else if (counter === "upstreamBytes") proxyUpstreamBytes.inc({ upstream }, amount);
  else {
    const kind = proxyUpstreamKinds[counter];
    if (kind !== undefined) proxyUpstreamRequests.inc({ upstream, kind }, amount);
  }
}

const proxyResults: Record<string, string> = {
  hits: "hit",
  misses: "miss",
  coalesced: "coalesced",
  staleServed: "stale",
};

const proxyUpstreamKinds: Record<string, string> = {
  upstreamRequests: "content",
  tokenFetches: "token",
  upstreamFailures: "failure",
};
