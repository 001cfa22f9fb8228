import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { FastifyBaseLogger } from "fastify";
import type { BerthConfig } from "../config/config.js";
import type { MetadataStore, NewOutboxEvent } from "../metadata/metadata-store.js";
import { eventsQueued } from "../observability/metrics.js";
import { DeliveryWorker } from "./delivery.js";
import {
  type EventAction,
  type EventTarget,
  newEvent,
  type RegistryEvent,
  repositoryMatcher,
} from "./event.js";
import { currentRequestScope } from "./request-scope.js";

type EndpointConfig = BerthConfig["notifications"]["endpoints"][number];

/** Pull events gathered in memory before one outbox write. */
const pullBatchSize = 100;
const pullFlushMs = 500;

/**
 * Turns registry changes into outbox rows for the endpoints that want them, and runs the delivery
 * workers. With no endpoint configured (or none wanting an action) nothing is built or written.
 */
export class Notifier {
  private readonly endpoints: { config: EndpointConfig; matches: (repository: string) => boolean }[];
  private source: RegistryEvent["source"];
  private readonly workers: DeliveryWorker[] = [];
  private pulls: NewOutboxEvent[] = [];
  private pullTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly config: BerthConfig,
    private readonly metadata: MetadataStore,
    private readonly logger: FastifyBaseLogger | undefined,
  ) {
    this.endpoints = config.notifications.endpoints.map((endpoint) => ({
      config: endpoint,
      matches: repositoryMatcher(endpoint.repositories),
    }));
    this.source = { addr: `${hostname()}:${config.listen.split(":").pop()}`, instanceID: randomUUID() };
  }

  /**
   * Outbox rows for `action` on `target`, one per endpoint that wants it; the caller writes them in the
   * transaction of the change. Request, actor and URL come from the request being served, if any.
   */
  eventsFor(action: EventAction, target: EventTarget, options: EventOptions = {}): NewOutboxEvent[] {
    const wanting = this.endpoints.filter(
      (e) => e.config.events.includes(action) && e.matches(target.repository),
    );
    if (wanting.length === 0) return [];
    const scope = currentRequestScope();
    const base = this.config.publicUrl?.replace(/\/+$/, "") ?? scope?.baseUrl;
    const withUrl: EventTarget =
      target.url === undefined && base !== undefined && target.digest !== undefined
        ? {
            ...target,
            url: `${base}/v2/${target.repository}/${options.kind ?? "manifests"}/${target.digest}`,
          }
        : target;
    const event = newEvent(action, withUrl, scope?.request ?? {}, options.actor ?? scope?.actor, this.source);
    const payload = JSON.stringify(event);
    const createdAt = Date.now();
    return wanting.map((e) => {
      eventsQueued.inc({ endpoint: e.config.name });
      return { endpoint: e.config.name, payload, createdAt };
    });
  }

  /**
   * A pull is no change, so it has no transaction to join: pulls are batched in memory and appended
   * shortly after. They are at-least-once only from that append on; a crash before it loses them.
   */
  recordPull(target: EventTarget, options: EventOptions = {}): void {
    const rows = this.eventsFor("pull", target, options);
    if (rows.length === 0) return;
    this.pulls.push(...rows);
    if (this.pulls.length >= pullBatchSize) void this.flushPulls();
    else this.pullTimer ??= setTimeout(() => void this.flushPulls(), pullFlushMs);
  }

  /**
   * Events raised outside a request's change, such as garbage-collection removals (actor "gc"):
   * appended at once. The collector's `onRemoved` can call this.
   */
  async publishEvents(
    action: EventAction,
    targets: EventTarget[],
    options: EventOptions = {},
  ): Promise<void> {
    const rows = targets.flatMap((target) => this.eventsFor(action, target, options));
    await this.metadata.appendEvents(rows);
  }

  private flushPulls(): Promise<void> {
    clearTimeout(this.pullTimer);
    this.pullTimer = undefined;
    const batch = this.pulls;
    this.pulls = [];
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(() =>
      this.metadata.appendEvents(batch).catch((error: unknown) => {
        this.logger?.error({ err: error, events: batch.length }, "could not record pull events");
      }),
    );
    return this.flushing;
  }

  /** Starts one delivery worker per endpoint (servers only; CLI commands only write the outbox). */
  startDelivery(boundAddress?: string): void {
    // The port actually bound (the config may say 0), for events' `source.addr`.
    const port = boundAddress?.split(":").pop();
    if (port) this.source = { ...this.source, addr: `${hostname()}:${port}` };
    if (this.workers.length > 0 || !this.logger) return;
    for (const { config } of this.endpoints) {
      const worker = new DeliveryWorker(config, this.metadata, this.logger, {
        pollMs: this.config.notifications.pollIntervalSeconds * 1000,
      });
      this.workers.push(worker);
      worker.start();
    }
  }

  /** Writes pending pulls and stops the workers; leased events become due again after their lease. */
  async close(): Promise<void> {
    await this.flushPulls();
    await Promise.all(this.workers.map((worker) => worker.stop()));
  }
}

export interface EventOptions {
  /** Which endpoint the target URL names; manifests by default. */
  kind?: "manifests" | "blobs";
  /** Overrides the request's user, e.g. "gc". */
  actor?: string;
}
