/**
 * Minimal keep-alive HTTP/1.1 client for the benchmark: streams request bodies from files and can
 * hash or discard response bodies without buffering them. Refuses anything but loopback hosts.
 */
import { createHash } from "node:crypto";
import http, { type IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import { CheckError, isLoopbackHost } from "./core.js";

export type Sink = "buffer" | "discard" | "hash";

export interface RequestOptions {
  headers?: Record<string, string>;
  /** A buffer/string, or a factory of a stream (then set content-length in headers). */
  body?: Buffer | string | (() => Readable);
  sink?: Sink;
  timeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  bytes: number;
  sha256: string | null;
}

export class HttpClient {
  readonly base: URL;
  private readonly agent: http.Agent;
  requests = 0;

  constructor(base: URL) {
    if (base.protocol !== "http:")
      throw new CheckError(`only plain http:// registries are supported: ${base}`);
    if (!isLoopbackHost(base.hostname))
      throw new CheckError(`refusing non-loopback registry ${base.hostname}`);
    this.base = base;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 128, maxFreeSockets: 128 });
  }

  resolve(location: string | URL): URL {
    const url = new URL(location, this.base);
    if (!isLoopbackHost(url.hostname)) throw new CheckError(`refusing non-loopback URL ${url}`);
    return url;
  }

  request(method: string, target: string | URL, options: RequestOptions = {}): Promise<HttpResponse> {
    const url = this.resolve(target);
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    const body = typeof options.body === "function" ? options.body() : options.body;
    if (typeof body === "string" || Buffer.isBuffer(body)) {
      headers["content-length"] = String(Buffer.byteLength(body));
    } else if (body === undefined && ["POST", "PUT", "PATCH"].includes(method)) {
      headers["content-length"] ??= "0";
    }
    const sink = options.sink ?? "buffer";
    const timeoutMs = options.timeoutMs ?? 30_000;
    this.requests++;
    return new Promise<HttpResponse>((resolve, reject) => {
      let done = false;
      const fail = (error: Error) => {
        if (done) return;
        done = true;
        reject(error);
      };
      const req = http.request(
        {
          hostname: url.hostname.replace(/^\[|\]$/g, ""),
          port: url.port,
          method,
          path: url.pathname + url.search,
          headers,
          agent: this.agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          const hash = sink === "hash" ? createHash("sha256") : null;
          let bytes = 0;
          res.on("data", (chunk: Buffer) => {
            bytes += chunk.length;
            if (hash) hash.update(chunk);
            else if (sink === "buffer") chunks.push(chunk);
          });
          res.on("error", fail);
          res.on("end", () => {
            if (done) return;
            done = true;
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks),
              bytes,
              sha256: hash ? hash.digest("hex") : null,
            });
          });
        },
      );
      req.on("error", fail);
      req.setTimeout(timeoutMs, () =>
        req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)),
      );
      if (body !== undefined && typeof body !== "string" && !Buffer.isBuffer(body)) {
        body.on("error", (error) => req.destroy(error));
        body.pipe(req);
      } else {
        req.end(body);
      }
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** First 200 characters of a response body, for error messages. */
export function bodyExcerpt(res: HttpResponse): string {
  return res.body.toString("utf8", 0, Math.min(res.body.length, 200)).replace(/\s+/g, " ");
}
