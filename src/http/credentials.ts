import type { TLSSocket } from "node:tls";
import type { FastifyRequest } from "fastify";
import type { Credentials } from "../auth/authenticator.js";

/** What authentication reads from a request: the Authorization header, address, client certificate. */
export function requestCredentials(request: FastifyRequest): Credentials {
  return {
    authorization: request.headers.authorization,
    address: request.ip,
    certificateUser: certificateUser(request.raw.socket as TLSSocket),
    origin: `${request.protocol}://${request.host}`,
  };
}

function certificateUser(socket: TLSSocket): string | undefined {
  if (!socket.encrypted || !socket.authorized) return undefined;
  const subject = socket.getPeerCertificate()?.subject;
  const commonName = subject?.CN;
  return typeof commonName === "string" && commonName !== "" ? commonName : undefined;
}
