import { randomUUID } from "node:crypto";

/** What happened; GC removals are deletes too, with actor "gc". */
export type EventAction = "push" | "pull" | "delete";

/** The content an event is about, in Distribution's field names. */
export interface EventTarget {
  repository: string;
  mediaType?: string;
  digest?: string;
  size?: number;
  tag?: string;
  url?: string;
}

/** The HTTP request that caused the event; absent fields were not known (a CLI command, say). */
export interface EventRequest {
  id?: string;
  addr?: string;
  host?: string;
  method?: string;
  useragent?: string;
}

/**
 * One event in Distribution's notification format ("notifications" in Distribution's docs), so receivers
 * written for Distribution (and Harbor, Quay, ...) work unchanged.
 */
export interface RegistryEvent {
  id: string;
  timestamp: string;
  action: EventAction;
  target: EventTarget;
  request: EventRequest;
  actor: { name?: string };
  source: { addr: string; instanceID: string };
}

export const distributionEnvelopeType = "application/vnd.docker.distribution.events.v1+json";

export function newEvent(
  action: EventAction,
  target: EventTarget,
  request: EventRequest,
  actor: string | undefined,
  source: RegistryEvent["source"],
): RegistryEvent {
  return {
    id: randomUUID(),
    timestamp: new Date().toISOString(),
    action,
    target,
    request,
    actor: actor === undefined ? {} : { name: actor },
    source,
  };
}

/**
 * A CloudEvents 1.0 structured-mode event (`application/cloudevents+json`) carrying the Distribution
 * event as its data, so the same fields are found under `data`.
 */
export function toCloudEvent(event: RegistryEvent): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: event.id,
    source: `berth://${event.source.addr}`,
    type: `io.berth.registry.${event.action}`,
    subject: event.target.tag
      ? `${event.target.repository}:${event.target.tag}`
      : event.target.digest
        ? `${event.target.repository}@${event.target.digest}`
        : event.target.repository,
    time: event.timestamp,
    datacontenttype: "application/json",
    data: event,
  };
}

/**
 * Repository globs: `*` and `?` stay within one path segment, `**` crosses segments. No patterns
 * means every repository.
 */
export function repositoryMatcher(patterns: string[]): (repository: string) => boolean {
  if (patterns.length === 0) return () => true;
  const expressions = patterns.map((pattern) => {
    let source = "";
    for (let i = 0; i < pattern.length; i++) {
      const char = pattern[i] as string;
      if (char === "*" && pattern[i + 1] === "*") {
        source += ".*";
        i++;
      } else if (char === "*") source += "[^/]*";
      else if (char === "?") source += "[^/]";
      else source += char.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
    return new RegExp(`^${source}$`);
  });
  return (repository) => expressions.some((expression) => expression.test(repository));
}
