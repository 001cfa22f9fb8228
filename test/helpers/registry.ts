import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BerthConfigInput, loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";

export interface TestRegistry {
  /** Base URL such as http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  /** host:port, the form clients such as skopeo take. */
  host: string;
  dataDir: string;
  server: RunningBerth;
  close(): Promise<void>;
}

/**
 * Starts a real berth on a free loopback port with its own temporary data directory.
 * Every test file gets its own instance so files can run in parallel.
 */
export async function startTestRegistry(overrides: BerthConfigInput = {}): Promise<TestRegistry> {
  const dataDir = await mkdtemp(join(tmpdir(), "berth-test-"));
  const config = loadConfig({
    file: { ...overrides, dataDir, listen: "127.0.0.1:0", log: { level: "warn", ...overrides.log } },
    env: {},
  });
  const server = await startBerth(config);
  const host = server.address;
  return {
    url: `http://${host}`,
    host,
    dataDir,
    server,
    async close() {
      await server.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
