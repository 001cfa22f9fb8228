import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { pushImage } from "../helpers/oci.js";
import { startTestRegistry } from "../helpers/registry.js";
import { sleep } from "../helpers/reliability.js";
import { WebhookReceiver } from "../helpers/webhook-receiver.js";

interface OtlpSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  traceId: string;
}

/** The spans of OTLP/HTTP JSON export requests. */
function spansOf(bodies: unknown[]): OtlpSpan[] {
  return bodies.flatMap((body) =>
    (body as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }).resourceSpans.flatMap((r) =>
      r.scopeSpans.flatMap((s) => s.spans),
    ),
  );
}

// One file, run in its own process: tracing registers a global provider.
describe("tracing", () => {
  test("off by default: nothing is sent, even with the OTLP environment set", async () => {
    const collector = new WebhookReceiver();
    await collector.start();
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${collector.port}`;
    const registry = await startTestRegistry();
    try {
      await pushImage(registry.url, "untraced/app", "v1");
    } finally {
      await registry.close();
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    }
    await sleep(200);
    assert.equal(collector.requests.length, 0);
    await collector.stop();
  });

  test("when enabled, requests and the store calls they make are exported as one trace", async () => {
    const collector = new WebhookReceiver();
    await collector.start();
    const registry = await startTestRegistry({
      tracing: { enabled: true, endpoint: `http://127.0.0.1:${collector.port}/v1/traces` },
    });
    try {
      await pushImage(registry.url, "traced/app", "v1");
    } finally {
      // Shutting down flushes the batch of spans.
      await registry.close();
    }
    const spans = spansOf(collector.requests.map((r) => r.body));
    await collector.stop();
    const request = spans.find((s) => s.name === "PUT manifest");
    assert.ok(request, `no request span among ${spans.map((s) => s.name).join(", ")}`);
    const store = spans.find((s) => s.name === "metadata.putManifest");
    assert.ok(store, "no metadata store span");
    assert.equal(store.traceId, request.traceId);
    assert.equal(store.parentSpanId, request.spanId);
    assert.ok(spans.some((s) => s.name === "blob.putBlob" && s.parentSpanId === request.spanId));
  });
});
