import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Authenticator } from "./auth/authenticator.js";
import { type BerthConfig, parseListen } from "./config/config.js";
import { GarbageCollector, gcOptionsFrom } from "./gc/garbage-collector.js";
import { type BuildAppOptions, buildApp } from "./http/app.js";
import { tlsServerFactory } from "./http/tls-server.js";
import { createLogger } from "./logger.js";
import type { MetadataStore } from "./metadata/metadata-store.js";
import { PostgresMetadataStore } from "./metadata/postgres/postgres-metadata-store.js";
import { SqliteMetadataStore } from "./metadata/sqlite/sqlite-metadata-store.js";
import { Registry } from "./registry/registry.js";
import type { BlobStore } from "./storage/blob-store.js";
import { FilesystemBlobStore } from "./storage/filesystem/filesystem-blob-store.js";
import { S3BlobStore } from "./storage/s3/s3-blob-store.js";

export interface RunningBerth {
  /** host:port actually bound (the port is chosen by the OS when configured as 0). */
  address: string;
  app: FastifyInstance;
  registry: Registry;
  logger: Logger;
  /** gc: the scheduled garbage collector; `gc.events.onRemoved(listener)` hears every removal. */
  gc: GarbageCollector;
  /** Stops accepting connections, lets requests in flight finish, then closes the stores. */
  close(): Promise<void>;
}

/** Upload sessions idle past their limit are swept this often. */
const uploadSweepIntervalMs = 10 * 60 * 1000;

/** Opens the stores the config names and returns a Registry; the CLI's maintenance commands use it too. */
export async function openRegistry(config: BerthConfig): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  const blobStore = await openBlobStore(config, dataDir);
  const metadata = await openMetadataStore(config, dataDir);
  return new Registry({ blobStore, metadata, config });
}

async function openBlobStore(config: BerthConfig, dataDir: string): Promise<BlobStore> {
  if (config.storage.driver === "filesystem") return FilesystemBlobStore.open(dataDir);
  const s3 = config.storage.s3;
  if (s3.bucket === undefined) throw new Error("storage.s3.bucket is required when storage.driver is s3");
  return S3BlobStore.open({
    bucket: s3.bucket,
    prefix: s3.prefix,
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: s3.forcePathStyle,
    redirectExpirySeconds: s3.redirect ? s3.redirectExpirySeconds : undefined,
    credentials:
      s3.accessKeyId !== undefined && s3.secretAccessKey !== undefined
        ? { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
        : undefined,
  });
}

async function openMetadataStore(config: BerthConfig, dataDir: string): Promise<MetadataStore> {
  if (config.metadata.driver === "sqlite") {
    return new SqliteMetadataStore(join(dataDir, "metadata.sqlite"), {
      synchronous: config.metadata.sqlite.synchronous,
    });
  }
  const postgres = config.metadata.postgres;
  if (postgres.url === undefined)
    throw new Error("metadata.postgres.url is required when metadata.driver is postgres");
  return PostgresMetadataStore.open({
    url: postgres.url,
    schema: postgres.schema,
    poolSize: postgres.poolSize,
  });
}

export async function startBerth(
  config: BerthConfig,
  logger = createLogger(config.log),
): Promise<RunningBerth> {
  // Keys, htpasswd and certificates are read first: a mistake there fails before any store is opened.
  const appOptions: BuildAppOptions = {};
  const authenticator = await Authenticator.create(config.auth, config.publicUrl);
  if (authenticator) appOptions.authenticator = authenticator;
  const serverFactory = tlsServerFactory(config.tls);
  if (serverFactory) appOptions.serverFactory = serverFactory;
  const registry = await openRegistry(config);
  const app = buildApp(registry, config, logger, appOptions);
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

  // gc: scheduled garbage collection, while pushes and pulls go on.
  const gc = new GarbageCollector(
    registry.ctx.metadata,
    registry.ctx.blobStore,
    gcOptionsFrom(config),
    logger,
  );
  const gcTimer = config.gc.enabled
    ? setInterval(() => {
        gc.run()
          .then((summary) => logger.info({ gc: summary }, "gc pass finished"))
          .catch((error: unknown) => logger.error({ err: error }, "gc pass failed"));
      }, config.gc.intervalSeconds * 1000)
    : undefined;
  gcTimer?.unref();

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      clearInterval(sweep);
      clearInterval(gcTimer);
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
      // gc: a pass in flight finishes before the stores close under it.
      await gc.idle();
      await registry.close();
    })();
    return closing;
  };
  logger.info({ address, dataDir: resolve(config.dataDir) }, "berth is listening");
  return { address, app, registry, logger, gc, close };
}
