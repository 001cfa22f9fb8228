import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerFactory,
  LogController,
} from "fastify";
import type { Authenticator } from "../auth/authenticator.js";
import type { BerthConfig } from "../config/config.js";
import {
  metricsRoute,
  observedHandler,
  observeRequests,
  setRequestActor,
} from "../observability/http-instrumentation.js";
import { RegistryError } from "../oci/errors.js";
import { isRepositoryName, parseRepositoryName } from "../oci/repository-name.js";
import type { Registry } from "../registry/registry.js";
import { requestCredentials } from "./credentials.js";
import { hasBody, type RouteHandler } from "./request-context.js";
import { neededAccess } from "./route-access.js";
import { matchRoute, type RouteName } from "./route-table.js";
import { baseRoutes } from "./routes/base.js";
import { blobRoutes } from "./routes/blobs.js";
import { catalogRoutes } from "./routes/catalog.js";
import { healthRoutes } from "./routes/health.js";
import { manifestRoutes } from "./routes/manifests.js";
import { referrerRoutes } from "./routes/referrers.js";
import { tagRoutes } from "./routes/tags.js";
import { tokenRoute } from "./routes/token.js";
import { registerUi } from "./routes/ui.js";
import { uploadRoutes, uploadStartRoutes } from "./routes/uploads.js";

/** One dispatcher per named route, as Distribution's app does; the method picks the handler. */
const dispatchers: Record<RouteName, Partial<Record<string, RouteHandler>>> = {
  base: baseRoutes,
  catalog: catalogRoutes,
  tags: tagRoutes,
  manifest: manifestRoutes,
  blob: blobRoutes,
  "blob-upload": uploadStartRoutes,
  "blob-upload-chunk": uploadRoutes,
  referrers: referrerRoutes,
};

const methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

export interface BuildAppOptions {
  /** Checks every request against the access policy; absent when auth is off. */
  authenticator?: Authenticator;
  /** Creates the server (HTTPS); a plain HTTP server when absent. */
  serverFactory?: FastifyServerFactory;
}

export function buildApp(
  registry: Registry,
  config: BerthConfig,
  logger: FastifyBaseLogger,
  options: BuildAppOptions = {},
): FastifyInstance {
  const { authenticator } = options;
  const app = Fastify({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    // Uploads of many GiB may legitimately take long; idle sockets are bounded by the server timeouts below.
    requestTimeout: 0,
    connectionTimeout: config.http.idleTimeoutSeconds * 1000,
    keepAliveTimeout: config.http.keepAliveTimeoutSeconds * 1000,
    // Node checks headersTimeout only this often (30 s by default), which would let a slowloris
    // client hold a socket far past the configured limit.
    http: { connectionsCheckingInterval: 1000 },
    clientErrorHandler: (error, socket) => answerClientError(error, socket),
    // Malformed percent-encoding never reaches the dispatcher; answer it in the spec's shape too.
    frameworkErrors: (error, request, reply) => {
      const rawUrl = request.raw.url ?? "/";
      const match = matchRoute(rawUrl.split("?", 1)[0] ?? "/");
      const refusal =
        match && match.name !== "" && !isRepositoryName(match.name)
          ? new RegistryError("NAME_INVALID", "invalid repository name", {
              detail: { name: match.name.slice(0, 300) },
            })
          : match?.route === "blob"
            ? new RegistryError("DIGEST_INVALID", "invalid digest format")
            : new RegistryError("UNSUPPORTED", "malformed request URL", { status: error.statusCode ?? 400 });
      sendError(reply, refusal, config);
    },
    return503OnClosing: true,
    routerOptions: { maxParamLength: 8192 },
    genReqId: () => Math.random().toString(36).slice(2, 12),
    ...(options.serverFactory ? { serverFactory: options.serverFactory } : {}),
  });
  app.server.headersTimeout = config.http.headersTimeoutSeconds * 1000;

  // Bodies are streamed by the handlers themselves: never parsed, never buffered by the framework.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_request, _payload, done) => done(null));

  app.addHook("onRequest", async (_request, reply) => {
    reply.header("Docker-Distribution-API-Version", "registry/2.0");
  });
  // observe: request metrics by named route.
  observeRequests(app);
  if (config.http.minBodyBytesPerSecond > 0) {
    // A body trickled a byte at a time never trips the idle timeout yet holds a socket (and an
    // upload's lock) indefinitely: past each window, the body must have kept up a minimum average rate.
    const windowSeconds = config.http.idleTimeoutSeconds;
    const minimum = config.http.minBodyBytesPerSecond * windowSeconds;
    app.addHook("onRequest", async (request) => {
      if (!hasBody(request.raw)) return;
      const socket = request.raw.socket;
      let seen = socket.bytesRead;
      const timer = setInterval(() => {
        const received = socket.bytesRead - seen;
        seen = socket.bytesRead;
        if (received >= minimum) return;
        request.log.info({ received, windowSeconds }, "request body too slow; closing the connection");
        socket.destroy();
      }, windowSeconds * 1000);
      timer.unref();
      const stop = () => clearInterval(timer);
      request.raw.once("end", stop);
      request.raw.once("close", stop);
    });
  }
  app.addHook("onResponse", async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      "request",
    );
  });

  const dispatch = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const rawUrl = request.raw.url ?? "/";
    const queryStart = rawUrl.indexOf("?");
    const path = queryStart < 0 ? rawUrl : rawUrl.slice(0, queryStart);
    // A '+' in a query value is a literal '+' here (media types contain it), never a space.
    const query = new URLSearchParams(
      queryStart < 0 ? "" : rawUrl.slice(queryStart + 1).replace(/\+/g, "%2B"),
    );
    const match = matchRoute(path);
    if (!match)
      throw new RegistryError("NAME_UNKNOWN", "no such endpoint", { detail: { path: path.slice(0, 300) } });
    const handler = dispatchers[match.route][request.method];
    if (!handler) {
      throw new RegistryError("UNSUPPORTED", `${request.method} is not supported on this endpoint`, {
        status: 405,
      });
    }
    const name = match.route === "base" || match.route === "catalog" ? "" : parseRepositoryName(match.name);
    const caller = authenticator
      ? await authenticator.authorize(
          requestCredentials(request),
          neededAccess(match.route, request.method, name),
        )
      : undefined;
    // Pull-through caches are read-only for clients (after authorization, so 401 challenges still come first).
    if (registry.proxy?.handles(name) && isWrite(match.route, request.method))
      throw registry.proxy.readOnly(name);
    setRequestActor(caller?.user);
    await handler({ request, reply, registry, config, name, target: match.target, query, caller });
    // Returning the reply makes Fastify wait for a streamed body instead of ending the response early.
    return reply;
  };
  // Events name the request and its user only when a webhook endpoint may receive them.
  const observedDispatch = observedHandler(dispatch, registry.ctx.notifier !== undefined);
  app.route({ method: methods, url: "/v2", handler: observedDispatch });
  app.route({ method: methods, url: "/v2/*", handler: observedDispatch });
  if (authenticator?.tokens?.issues) app.get("/token", tokenRoute(authenticator));
  app.get("/healthz", healthRoutes.liveness);
  app.get("/readyz", (request, reply) => healthRoutes.readiness(registry, request, reply));
  if (config.ui.enabled) registerUi(app, registry, config, authenticator);
  metricsRoute(app, config);

  app.setNotFoundHandler((_request, reply) => {
    sendError(reply, new RegistryError("NAME_UNKNOWN", "no such endpoint", { status: 404 }), config);
  });

  app.setErrorHandler((error: Error, request, reply) => {
    if (error instanceof RegistryError) {
      if (error.status >= 500) request.log.error({ err: error }, "request failed");
      sendError(reply, error, config);
      return;
    }
    const code = (error as { code?: string }).code;
    if (code === "ENOSPC" || code === "EDQUOT" || code === "SQLITE_FULL") {
      // Checked before the disconnect case: a failed write also ends the request body it was consuming.
      request.log.error({ err: error }, "storage is full");
      sendError(
        reply,
        new RegistryError("UNAVAILABLE", "the registry is out of storage space", { status: 507 }),
        config,
      );
      return;
    }
    if (code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ECONNRESET" || request.raw.destroyed) {
      // The client went away mid-body; nothing to answer, and the partial write was never acknowledged.
      request.log.info({ code }, "client disconnected");
      sendError(reply, new RegistryError("BLOB_UPLOAD_INVALID", "request body ended early"), config);
      return;
    }
    const status = (error as { statusCode?: number }).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      sendError(reply, new RegistryError("UNSUPPORTED", error.message, { status }), config);
      return;
    }
    request.log.error({ err: error }, "unexpected error");
    sendError(reply, new RegistryError("INTERNAL_ERROR", "internal server error", { status: 500 }), config);
  });

  return app;
}

function isWrite(route: RouteName, method: string): boolean {
  return route === "blob-upload" || route === "blob-upload-chunk" || method === "PUT" || method === "DELETE";
}

/**
 * Requests Node's parser refuses (malformed, headers too large, headers too slow) get the spec's error
 * body too, instead of the framework's own JSON shape.
 */
function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, message] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "request headers are too large"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "request headers took too long"]
        : [400, "malformed HTTP request"];
  const body = JSON.stringify(new RegistryError("UNSUPPORTED", message, { status }).toBody());
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

function sendError(reply: FastifyReply, error: RegistryError, config: BerthConfig): void {
  if (reply.sent || reply.raw.headersSent) return;
  for (const [header, value] of Object.entries(error.headers)) {
    reply.header(
      header,
      header === "Location" && config.publicUrl && value.startsWith("/")
        ? config.publicUrl.replace(/\/+$/, "") + value
        : value,
    );
  }
  reply.code(error.status).header("Content-Type", "application/json").send(JSON.stringify(error.toBody()));
}
