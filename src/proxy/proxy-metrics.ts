import { recordProxyCounter } from "../observability/metrics.js";

/**
 * Counters of the pull-through cache, per upstream prefix. A plain object so tests can read it and the
 * Prometheus exporter can turn it into `berth_proxy_*_total{upstream="..."}` series.
 */
export const proxyCounters = [
  /** Pulls answered from the cache without moving content from the upstream. */
  "hits",
  /** Pulls whose content had to be fetched from the upstream. */
  "misses",
  /** Blob pulls that joined a fetch of the same blob already in flight instead of starting another. */
  "coalesced",
  /** Body bytes received from upstreams (manifests and blobs). */
  "upstreamBytes",
  /** HTTP requests sent to upstreams, token requests excluded. */
  "upstreamRequests",
  /** Token requests to upstream token endpoints (low when the token cache works). */
  "tokenFetches",
  /** Cached content served because the upstream failed and serveStale is on. */
  "staleServed",
  /** Requests that found the upstream unreachable or failing. */
  "upstreamFailures",
] as const;

export type ProxyCounter = (typeof proxyCounters)[number];

export type ProxyCounts = Record<ProxyCounter, number>;

export class ProxyMetrics {
  private readonly byUpstream = new Map<string, ProxyCounts>();

  add(upstream: string, counter: ProxyCounter, amount = 1): void {
    let counts = this.byUpstream.get(upstream);
    if (counts === undefined) {
      counts = Object.fromEntries(proxyCounters.map((name) => [name, 0])) as ProxyCounts;
      this.byUpstream.set(upstream, counts);
    }
    counts[counter] += amount;
    recordProxyCounter(upstream, counter, amount);
  }

  /** Counts of one upstream (zeros when it saw no traffic yet). */
  of(upstream: string): ProxyCounts {
    return { ...(this.byUpstream.get(upstream) ?? zeroCounts()) };
  }

  /** Every upstream's counts, keyed by prefix. */
  snapshot(): Record<string, ProxyCounts> {
    return Object.fromEntries([...this.byUpstream].map(([upstream, counts]) => [upstream, { ...counts }]));
  }
}

function zeroCounts(): ProxyCounts {
  return Object.fromEntries(proxyCounters.map((name) => [name, 0])) as ProxyCounts;
}
