import { type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import type { BerthConfig } from "../config/config.js";

/**
 * OpenTelemetry tracing. Spans are always created through @opentelemetry/api, which does nothing until
 * an SDK is registered; the SDK and the OTLP exporter are imported only when `tracing.enabled`, so with
 * tracing off nothing is loaded and nothing is sent.
 */
export const tracer = trace.getTracer("berth");

let enabled = false;
let shutdown: (() => Promise<void>) | undefined;

export function tracingEnabled(): boolean {
  return enabled;
}

export async function startTracing(config: BerthConfig["tracing"]): Promise<void> {
  if (!config.enabled || enabled) return;
  const [
    { NodeTracerProvider, BatchSpanProcessor, TraceIdRatioBasedSampler, ParentBasedSampler },
    otlp,
    resources,
  ] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new otlp.OTLPTraceExporter(config.endpoint ? { url: config.endpoint } : {});
  const provider = new NodeTracerProvider({
    resource: resources.resourceFromAttributes({ "service.name": config.serviceName }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  provider.register();
  enabled = true;
  shutdown = async () => {
    await provider.shutdown();
    trace.disable();
    enabled = false;
  };
}

export async function stopTracing(): Promise<void> {
  await shutdown?.();
  shutdown = undefined;
}

/** Ends a span, recording the error if there was one. */
export function endSpan(span: Span, error?: unknown): void {
  if (error !== undefined) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
