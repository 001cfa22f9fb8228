import { timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { BerthConfig } from "../config/config.js";
import { currentRequestScope, runInRequestScope } from "../events/request-scope.js";
import { matchRoute } from "../http/route-table.js";
import type { Registry } from "../registry/registry.js";
import {
  httpBytesReceived,
  httpBytesSent,
  httpRequestDuration,
  httpRequests,
  httpRequestsInFlight,
  metricsRegistry,
} from "./metrics.js";
import { inSpan, tracingApi } from "./tracing.js";

/**
 * The route label of a request: the distribution API's route name for /v2 requests, the registered
 * route pattern for the others, "unmatched" for anything else. Never the raw path, whose values
 * (repository names, digests, probes) are unbounded.
 */
export function routeLabel(request: FastifyRequest): string {
  const pattern = request.routeOptions.url;
  if (pattern === "/v2" || pattern === "/v2/*") {
    const rawUrl = request.raw.url ?? "/";
    return matchRoute(rawUrl.split("?", 1)[0] ?? "/")?.route ?? "unmatched";
  }
  return pattern ?? "unmatched";
}

/** Request counts, latency, in-flight requests and bytes on the wire, per route, method and status. */
export function observeRequests(app: FastifyInstance): void {
  app.addHook("onRequest", async (request, reply) => {
    const route = routeLabel(request);
    const socket = request.raw.socket;
    const readBefore = socket.bytesRead;
    const writtenBefore = socket.bytesWritten;
    const started = process.hrtime.bigint();
    httpRequestsInFlight.inc({ route });
    // "close" fires once whether the response finished or the client went away.
    reply.raw.once("close", () => {
      httpRequestsInFlight.dec({ route });
      const labels = {
        route,
        method: request.method,
        status: reply.raw.writableFinished ? String(reply.raw.statusCode) : "aborted",
      };
      httpRequests.inc(labels);
      httpRequestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      // A declared length is exact; for chunked bodies the socket count is (it may include the
      // chunk framing, and body bytes that arrived with the headers are missed).
      const declared = Number(request.headers["content-length"] ?? Number.NaN);
      const received = Number.isFinite(declared) ? declared : socket.bytesRead - readBefore;
      if (received > 0) httpBytesReceived.inc({ route }, received);
      const sent = socket.bytesWritten - writtenBefore;
      if (sent > 0) httpBytesSent.inc({ route }, sent);
    });
  });
}

/**
 * Runs a request handler with what events and spans need: the request scope (id, client, host, user
 * agent; the actor is added once authenticated) when `requestScope` is set (webhooks are configured), and,
 * when tracing is on, a server span made active so store calls become its children. Without either, the
 * handler runs bare: the async context tracking behind the scope costs every request something.
 */
export function observedHandler(
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>,
  requestScope: boolean,
): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply> {
  return (request, reply) => {
    const api = tracingApi();
    if (!requestScope && !api) return handler(request, reply);
    const scope = {
      request: {
        id: request.id,
        addr: request.ip,
        host: request.host,
        method: request.method,
        useragent: request.headers["user-agent"] ?? "",
      },
      baseUrl: `${request.protocol}://${request.host}`,
    };
    const run = () =>
      requestScope ? runInRequestScope(scope, () => handler(request, reply)) : handler(request, reply);
    if (!api) return run();
    const route = routeLabel(request);
    const attributes = { "http.request.method": request.method, "http.route": route };
    // The span covers the handler; a streamed body may still be flowing when it ends.
    return inSpan(
      api,
      `${request.method} ${route}`,
      { kind: api.SpanKind.SERVER, attributes },
      async (span) => {
        const result = await run();
        span.setAttribute("http.response.status_code", reply.raw.statusCode);
        return result;
      },
    );
  };
}

/** Records the authenticated user of the request being served, for events' `actor`. */
export function setRequestActor(user: string | undefined): void {
  const scope = currentRequestScope();
  if (scope && user !== undefined) scope.actor = user;
}

interface MetricsAnswer {
  status: number;
  contentType: string;
  body: string;
}

async function metricsAnswer(config: BerthConfig, authorization: string | undefined): Promise<MetricsAnswer> {
  const token = config.metrics.bearerToken;
  if (token !== undefined) {
    const expected = Buffer.from(`Bearer ${token}`);
    const given = Buffer.from(authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return { status: 401, contentType: "text/plain", body: "metrics need a bearer token\n" };
  }
  return { status: 200, contentType: metricsRegistry.contentType, body: await metricsRegistry.metrics() };
}

/** `GET <metrics.path>` on the main port, unless metrics are off or served on their own address. */
export function metricsRoute(app: FastifyInstance, config: BerthConfig): void {
  if (!config.metrics.enabled || config.metrics.listen !== undefined) return;
  app.get(config.metrics.path, async (request, reply) => {
    const answer = await metricsAnswer(config, request.headers.authorization);
    if (answer.status === 401) reply.header("WWW-Authenticate", 'Bearer realm="metrics"');
    reply.code(answer.status).header("Content-Type", answer.contentType).send(Buffer.from(answer.body));
  });
}

/**
 * The separate listener of `metrics.listen`: metrics and the two health probes only, like Distribution's
 * debug server, so they can stay on an internal network while the registry port is public.
 */
export async function startMetricsServer(
  config: BerthConfig,
  registry: Registry,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?", 1)[0];
    const send = (answer: MetricsAnswer) =>
      response.writeHead(answer.status, { "Content-Type": answer.contentType }).end(answer.body);
    if (request.method !== "GET") return send({ status: 405, contentType: "text/plain", body: "" });
    if (path === "/healthz")
      return send({ status: 200, contentType: "application/json", body: '{"status":"ok"}' });
    if (path === "/readyz") {
      registry.ready().then(
        () => send({ status: 200, contentType: "application/json", body: '{"status":"ready"}' }),
        () => send({ status: 503, contentType: "application/json", body: '{"status":"unavailable"}' }),
      );
      return;
    }
    if (path !== config.metrics.path) return send({ status: 404, contentType: "text/plain", body: "" });
    metricsAnswer(config, request.headers.authorization).then(send, () =>
      send({ status: 500, contentType: "text/plain", body: "" }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
