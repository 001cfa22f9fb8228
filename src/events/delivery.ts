import type { FastifyBaseLogger } from "fastify";
import type { BerthConfig } from "../config/config.js";
import type { MetadataStore, OutboxEvent } from "../metadata/metadata-store.js";
import { eventDeliveryFailures, eventsDelivered, eventsDropped } from "../observability/metrics.js";
import { distributionEnvelopeType, type RegistryEvent, toCloudEvent } from "./event.js";

type EndpointConfig = BerthConfig["notifications"]["endpoints"][number];

/** How often an endpoint's backlog is cut back to its bound. */
const trimIntervalMs = 30_000;
/**
 * Added to the request timeout for an event's lease: long enough that a delivery in progress is never
 * taken over by another instance, short enough that the events of a crashed instance are soon retried.
 */
const leaseSlackMs = 5_000;

/**
 * Delivers one endpoint's outbox, fully apart from the requests that wrote it: a slow or dead endpoint
 * only grows its own backlog. Events are leased while in flight and deleted only after a 2xx, so a crash
 * or failure means a later redelivery (at-least-once, receivers dedupe on the event id). After a failure
 * the endpoint is left alone for an exponentially growing, capped delay.
 */
export class DeliveryWorker {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private wake: (() => void) | undefined;
  private failures = 0;
  private lastTrim = 0;

  constructor(
    private readonly endpoint: EndpointConfig,
    private readonly metadata: MetadataStore,
    private readonly logger: FastifyBaseLogger,
    private readonly options: { pollMs: number },
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.wake?.();
    await this.loop;
  }

  private get leaseMs(): number {
    const requests = this.endpoint.format === "cloudevents" ? this.endpoint.batchSize : 1;
    return requests * this.endpoint.timeoutSeconds * 1000 + leaseSlackMs;
  }

  private async run(): Promise<void> {
    const name = this.endpoint.name;
    while (this.running) {
      try {
        if (Date.now() - this.lastTrim >= trimIntervalMs) {
          this.lastTrim = Date.now();
          const dropped = await this.metadata.trimEvents(name, this.endpoint.maxBacklog);
          if (dropped > 0) {
            eventsDropped.inc({ endpoint: name }, dropped);
            this.logger.warn({ endpoint: name, dropped }, "notification backlog full; oldest events dropped");
          }
        }
        const events = await this.metadata.claimEvents(
          name,
          this.endpoint.batchSize,
          Date.now(),
          this.leaseMs,
        );
        if (events.length === 0) {
          await this.sleep(this.options.pollMs);
          continue;
        }
        const delivered = await this.deliver(events);
        await this.metadata.ackEvents(events.slice(0, delivered).map((e) => e.id));
        eventsDelivered.inc({ endpoint: name }, delivered);
        if (delivered === events.length) {
          this.failures = 0;
          continue;
        }
        const rest = events.slice(delivered).map((e) => e.id);
        if (!this.running) {
          // Shutting down: due again at once for the next start or another instance.
          await this.metadata.retryEvents(rest, Date.now());
          break;
        }
        this.failures++;
        // A failing endpoint is where a backlog grows: bound it now rather than at the next interval.
        this.lastTrim = 0;
        const delay = this.backoffMs();
        await this.metadata.retryEvents(rest, Date.now() + delay);
        await this.sleep(delay);
      } catch (error) {
        if (!this.running) break;
        this.logger.error({ err: error, endpoint: name }, "notification outbox unavailable");
        await this.sleep(this.options.pollMs);
      }
    }
  }

  private backoffMs(): number {
    const { initialSeconds, maxSeconds } = this.endpoint.backoff;
    const capped = Math.min(maxSeconds, initialSeconds * 2 ** Math.min(this.failures - 1, 30)) * 1000;
    // Jitter keeps instances sharing one database from retrying in lockstep.
    return capped * (0.5 + Math.random() * 0.5);
  }

  /** Posts the events in order; returns how many the endpoint accepted before the first failure. */
  private async deliver(events: OutboxEvent[]): Promise<number> {
    const parsed = events.map((e) => JSON.parse(e.payload) as RegistryEvent);
    if (this.endpoint.format === "distribution") {
      return (await this.post(distributionEnvelopeType, JSON.stringify({ events: parsed })))
        ? events.length
        : 0;
    }
    let delivered = 0;
    for (const event of parsed) {
      if (!(await this.post("application/cloudevents+json", JSON.stringify(toCloudEvent(event))))) break;
      delivered++;
    }
    return delivered;
  }

  private async post(contentType: string, body: string): Promise<boolean> {
    const name = this.endpoint.name;
    try {
      const response = await fetch(this.endpoint.url, {
        method: "POST",
        headers: { ...this.endpoint.headers, "Content-Type": contentType },
        body,
        redirect: "manual",
        signal: AbortSignal.any([
          this.stopping.signal,
          AbortSignal.timeout(this.endpoint.timeoutSeconds * 1000),
        ]),
      });
      await response.body?.cancel().catch(() => undefined);
      if (response.status >= 200 && response.status < 300) return true;
      eventDeliveryFailures.inc({ endpoint: name });
      this.logger.warn({ endpoint: name, status: response.status }, "notification endpoint refused events");
      return false;
    } catch (error) {
      eventDeliveryFailures.inc({ endpoint: name });
      if (this.running)
        this.logger.warn({ endpoint: name, err: (error as Error).message }, "notification delivery failed");
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
