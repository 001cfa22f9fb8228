import type { MetadataStore } from "../metadata/metadata-store.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { storeOperationDuration, storeOperationErrors } from "./metrics.js";
import { tracingApi } from "./tracing.js";

/**
 * Decorators that time every call into a store and count its failures, labelled by the interface's
 * method name (a closed set), and open a span per call when tracing is on. Backends stay untouched.
 */
export function instrumentBlobStore(store: BlobStore): BlobStore {
  return instrument(store, "blob");
}

export function instrumentMetadataStore(store: MetadataStore): MetadataStore {
  return instrument(store, "metadata");
}

function instrument<T extends object>(store: T, kind: "blob" | "metadata"): T {
  const wrapped = new Map<string, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function" || typeof property !== "string" || property === "constructor")
        return value;
      let wrapper = wrapped.get(property);
      if (!wrapper) {
        const method = value as (...args: unknown[]) => unknown;
        wrapper = (...args: unknown[]) => timed(kind, property, () => method.apply(target, args));
        wrapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}

/**
 * Times a call. Only calls that return a promise are timed (and traced); a method returning an iterator or a
 * plain value (listings, `destroy()`) is passed through as it is, so the decorator never changes a type.
 */
function timed(kind: string, operation: string, call: () => unknown): unknown {
  const labels = { store: kind, operation };
  const stop = storeOperationDuration.startTimer(labels);
  const api = tracingApi();
  const span = api?.trace.getTracer("berth").startSpan(`${kind}.${operation}`);
  const failed = (error: unknown) => {
    stop();
    span?.recordException(error as Error);
    span?.end();
    // An absent blob is an answer, not a store failure.
    if (!(error instanceof BlobNotFoundError)) storeOperationErrors.inc(labels);
    throw error;
  };
  let result: unknown;
  try {
    result = api && span ? api.context.with(api.trace.setSpan(api.context.active(), span), call) : call();
  } catch (error) {
    return failed(error);
  }
  if (!isPromise(result)) {
    span?.end();
    return result;
  }
  return result.then((value) => {
    stop();
    span?.end();
    return value;
  }, failed);
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
