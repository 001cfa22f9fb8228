import type { IncomingMessage } from "node:http";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { Caller } from "../auth/authenticator.js";
import type { BerthConfig } from "../config/config.js";
import { RegistryError } from "../oci/errors.js";
import type { Registry } from "../registry/registry.js";

/** Everything a route handler gets: the parsed route, the query, and the registry. */
export interface RouteContext {
  request: FastifyRequest;
  reply: FastifyReply;
  registry: Registry;
  config: BerthConfig;
  /** Validated repository name (empty for base and catalog). */
  name: string;
  /** Unvalidated last path segment; each handler parses it as what it expects. */
  target: string;
  query: URLSearchParams;
  /** Who is asking, when auth is on; undefined means every request is allowed everything. */
  caller?: Caller;
}

export type RouteHandler = (ctx: RouteContext) => Promise<void>;

/** Turns a path into what `Location` should say: relative, or absolute under `publicUrl`. */
export function location(config: BerthConfig, path: string): string {
  return config.publicUrl ? `${config.publicUrl.replace(/\/+$/, "")}${path}` : path;
}

/** True when the request carries a body (a length above zero, or chunked transfer encoding). */
export function hasBody(raw: IncomingMessage): boolean {
  if (raw.headers["transfer-encoding"] !== undefined) return true;
  const length = raw.headers["content-length"];
  return length !== undefined && length !== "0";
}

export function contentLength(raw: IncomingMessage): number | undefined {
  const header = raw.headers["content-length"];
  if (header === undefined) return undefined;
  return /^\d{1,15}$/.test(header) ? Number(header) : undefined;
}

/** Reads a whole body of at most `limit` bytes; past that, 413 with the spec's error body. */
export async function readBoundedBody(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const tooLarge = () =>
    new RegistryError("MANIFEST_INVALID", `manifest is larger than the limit of ${limit} bytes`, {
      status: 413,
      detail: { limit },
    });
  const announced = contentLength(raw);
  if (announced !== undefined && announced > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of raw as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** `n` of the listing endpoints: a non-negative integer, or absent. */
export function parsePageSize(query: URLSearchParams): number | undefined {
  const raw = query.get("n");
  if (raw === null || raw === "") return undefined;
  if (!/^\d{1,9}$/.test(raw)) {
    throw new RegistryError("UNSUPPORTED", "n must be a non-negative integer", {
      status: 400,
      detail: { n: raw.slice(0, 32) },
    });
  }
  return Number(raw);
}

export function nextLink(path: string, params: Record<string, string>): string {
  const search = new URLSearchParams(params).toString();
  return `<${path}?${search}>; rel="next"`;
}
