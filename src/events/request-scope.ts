import { AsyncLocalStorage } from "node:async_hooks";
import type { EventRequest } from "./event.js";

/** The request being served and who sent it, so events raised deep in the registry can say so. */
export interface RequestScope {
  request: EventRequest;
  /** The authenticated user, once known. */
  actor?: string;
  /** Scheme and host the client used, for event target URLs when publicUrl is unset. */
  baseUrl?: string;
}

const storage = new AsyncLocalStorage<RequestScope>();

export function runInRequestScope<T>(scope: RequestScope, body: () => T): T {
  return storage.run(scope, body);
}

export function currentRequestScope(): RequestScope | undefined {
  return storage.getStore();
}
