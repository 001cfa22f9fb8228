import type { RouteContext } from "../request-context.js";

/** `GET /v2/` (end-1, "Determining Support"): 200 means this is a registry. */
async function apiVersionCheck({ reply }: RouteContext): Promise<void> {
  reply.header("Content-Type", "application/json").send("{}");
}

export const baseRoutes = { GET: apiVersionCheck, HEAD: apiVersionCheck };
