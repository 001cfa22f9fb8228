import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { type BerthConfig, parseListen } from "./config/config.js";
import { buildApp } from "./http/app.js";
import { createLogger } from "./logger.js";
import { SqliteMetadataStore } from "./metadata/sqlite/sqlite-metadata-store.js";
import { Registry } from "./registry/registry.js";
import { FilesystemBlobStore } from "./storage/filesystem/filesystem-blob-store.js";

export interface RunningBerth {
  /** host:port actually bound (the port is chosen by the OS when configured as 0). */
  address: string;
  app: FastifyInstance;
  registry: Registry;
  logger: Logger;
  /** Stops accepting connections, lets requests in flight finish, then closes the stores. */
  close(): Promise<void>;
}

/** Upload sessions idle past their limit are swept this often. */
const uploadSweepIntervalMs = 10 * 60 * 1000;

/** Opens the stores the config names and returns a Registry; the CLI's maintenance commands use it too. */
export async function openRegistry(config: BerthConfig): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const blobStore = await FilesystemBlobStore.open(dataDir);
  const metadata = new SqliteMetadataStore(join(dataDir, "metadata.sqlite"), {
    synchronous: config.metadata.sqlite.synchronous,
  });
  return new Registry({ blobStore, metadata, config });
}

export async function startBerth(
  config: BerthConfig,
  logger = createLogger(config.log),
): Promise<RunningBerth> {
  const registry = await openRegistry(config);
  const app = buildApp(registry, config, logger);
  const listen = parseListen(config.listen);
  if (!listen) throw new Error(`invalid listen address ${config.listen}`);
  await app.listen({ host: listen.host, port: listen.port });
  const bound = app.server.address();
  const address =
    bound && typeof bound === "object"
      ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : config.listen;

  const sweep = setInterval(() => {
    registry.uploads
      .purgeIdle()
      .then((purged) => purged > 0 && logger.info({ purged }, "expired idle upload sessions"))
      .catch((error: unknown) => logger.error({ err: error }, "upload sweep failed"));
  }, uploadSweepIntervalMs);
  sweep.unref();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(sweep);
      const deadline = setTimeout(
        () => app.server.closeAllConnections(),
        config.http.shutdownTimeoutSeconds * 1000,
      );
      deadline.unref();
      app.server.closeIdleConnections();
      // server.close() closes idle keep-alive connections only once; a connection whose request was still
      // in flight goes idle later and would otherwise hold the close open until the deadline.
      const idleSweep = setInterval(() => app.server.closeIdleConnections(), 50);
      idleSweep.unref();
      try {
        await app.close();
      } finally {
        clearInterval(idleSweep);
      }
      clearTimeout(deadline);
      await registry.close();
    })();
    return closing;
  };
  logger.info({ address, dataDir: resolve(config.dataDir) }, "berth is listening");
  return { address, app, registry, logger, close };
}
