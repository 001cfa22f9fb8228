import type { FastifyReply, FastifyRequest } from "fastify";
import type { Registry } from "../../registry/registry.js";

/** `/healthz`: the process is up and serving HTTP. */
async function liveness(_request: FastifyRequest, reply: FastifyReply): Promise<void> {
  reply.header("Content-Type", "application/json").send('{"status":"ok"}');
}

/** `/readyz`: the metadata store answers a query and the blob store takes a write. */
async function readiness(registry: Registry, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  try {
    await registry.ready();
    reply.header("Content-Type", "application/json").send('{"status":"ready"}');
  } catch (error) {
    request.log.warn({ err: error }, "readiness check failed");
    reply.code(503).header("Content-Type", "application/json").send('{"status":"unavailable"}');
  }
}

export const healthRoutes = { liveness, readiness };
