import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import type { FastifyServerFactory } from "fastify";
import type { TlsConfig } from "../config/auth-config.js";

/**
 * An HTTPS server factory from the `tls:` config, or undefined for plain HTTP. With a client CA,
 * certificates it signed are asked for (and required when `requireClientCert` is set); their subject's
 * common name becomes the user.
 */
export function tlsServerFactory(tls: TlsConfig): FastifyServerFactory | undefined {
  if (!tls.cert || !tls.key) return undefined;
  const options = {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ...(tls.clientCa
      ? { ca: readFileSync(tls.clientCa), requestCert: true, rejectUnauthorized: tls.requireClientCert }
      : {}),
    // As for the plain server: check header timeouts every second, not every 30.
    connectionsCheckingInterval: 1000,
  };
  return (handler) => createServer(options, handler);
}
