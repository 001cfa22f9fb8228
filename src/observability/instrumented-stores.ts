import type { MetadataStore } from "../metadata/metadata-store.js";
import { BlobNotFoundError, type BlobStore } from "../storage/blob-store.js";
import { storeOperationDuration, storeOperationErrors } from "./metrics.js";
import { inSpan, tracingApi } from "./tracing.js";

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

async function timed(kind: string, operation: string, call: () => unknown): Promise<unknown> {
  const labels = { store: kind, operation };
  const stop = storeOperationDuration.startTimer(labels);
  const api = tracingApi();
  try {
    const result = api ? await inSpan(api, `${kind}.${operation}`, {}, async () => call()) : await call();
    stop();
    return result;
  } catch (error) {
    stop();
    // An absent blob is an answer, not a store failure.
    if (!(error instanceof BlobNotFoundError)) storeOperationErrors.inc(labels);
    throw error;
  }
}
