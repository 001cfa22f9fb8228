import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { sleep } from "./reliability.js";

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  body: unknown;
}

/**
 * A real HTTP webhook receiver. `answer` decides what it does with each request: accept (200), refuse
 * (500) or hang (never answer, like a blackholed endpoint).
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  answer: "accept" | "refuse" | "hang" = "accept";
  /** Requests left hanging, answered (or dropped) at stop. */
  readonly hanging = new Set<ServerResponse>();
  private server: Server | undefined;

  async start(port = 0): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        if (this.answer === "hang") {
          this.hanging.add(response);
          response.on("close", () => this.hanging.delete(response));
          return;
        }
        if (this.answer === "refuse") {
          response.writeHead(500).end();
          return;
        }
        this.requests.push({ headers: request.headers, body: JSON.parse(Buffer.concat(chunks).toString()) });
        response.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    this.server = server;
  }

  get port(): number {
    if (!this.server) throw new Error("webhook receiver is not running");
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  /** Waits until `check` holds for what has been received, or fails after `timeoutMs`. */
  async waitFor<T>(check: (requests: ReceivedRequest[]) => T | undefined, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const result = check(this.requests);
      if (result !== undefined && result !== false) return result;
      if (Date.now() > deadline)
        throw new Error(`webhook receiver: condition not met; received ${JSON.stringify(this.requests)}`);
      await sleep(25);
    }
  }
}
