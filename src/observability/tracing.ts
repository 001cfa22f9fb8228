import type { Span } from "@opentelemetry/api";
import type { BerthConfig } from "../config/config.js";

type TracingApi = typeof import("@opentelemetry/api");

/**
 * OpenTelemetry tracing. Everything, @opentelemetry/api included, is imported only when
 * `tracing.enabled`: with tracing off nothing is loaded, no span object is made and nothing is sent.
 */
let api: TracingApi | undefined;
let shutdown: (() => Promise<void>) | undefined;

/** The OpenTelemetry API while tracing is on, for the request and store instrumentation. */
export function tracingApi(): TracingApi | undefined {
  return api;
}

export async function startTracing(config: BerthConfig["tracing"]): Promise<void> {
  if (!config.enabled || api) return;
  const [loadedApi, sdk, otlp, resources] = await Promise.all([
    import("@opentelemetry/api"),
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new otlp.OTLPTraceExporter(config.endpoint ? { url: config.endpoint } : {});
  const provider = new sdk.NodeTracerProvider({
    resource: resources.resourceFromAttributes({ "service.name": config.serviceName }),
    sampler: new sdk.ParentBasedSampler({ root: new sdk.TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [new sdk.BatchSpanProcessor(exporter)],
  });
  provider.register();
  api = loadedApi;
  shutdown = async () => {
    await provider.shutdown();
    loadedApi.trace.disable();
    loadedApi.context.disable();
    api = undefined;
  };
}

export async function stopTracing(): Promise<void> {
  await shutdown?.();
  shutdown = undefined;
}

/** Runs `call` inside a new span that is active for everything it awaits. */
export async function inSpan<T>(
  api: TracingApi,
  name: string,
  options: Parameters<ReturnType<TracingApi["trace"]["getTracer"]>["startSpan"]>[1],
  call: (span: Span) => Promise<T>,
): Promise<T> {
  const span = api.trace.getTracer("berth").startSpan(name, options);
  try {
    const result = await api.context.with(api.trace.setSpan(api.context.active(), span), () => call(span));
    span.end();
    return result;
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: api.SpanStatusCode.ERROR });
    span.end();
    throw error;
  }
}
