import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { FastifyInstance } from "fastify";
import type { Logger } from "pino";
import { Authenticator } from "./auth/authenticator.js";
import { type BerthConfig, parseListen } from "./config/config.js";
import { Notifier } from "./events/notifier.js";
import { gcRemovalEvents } from "./events/removals.js";
import { GarbageCollector, gcOptionsFrom } from "./gc/garbage-collector.js";
import { type BuildAppOptions, buildApp } from "./http/app.js";
import { tlsServerFactory } from "./http/tls-server.js";
import { createLogger } from "./logger.js";
import type { MetadataStore } from "./metadata/metadata-store.js";
import { PostgresMetadataStore } from "./metadata/postgres/postgres-metadata-store.js";
import { SqliteMetadataStore } from "./metadata/sqlite/sqlite-metadata-store.js";
import { startMetricsServer } from "./observability/http-instrumentation.js";
import { instrumentBlobStore, instrumentMetadataStore } from "./observability/instrumented-stores.js";
import { watchUploadSessions } from "./observability/metrics.js";
import { startTracing, stopTracing } from "./observability/tracing.js";
import { Registry } from "./registry/registry.js";
import { applyRetention } from "./registry/retention.js";
import type { BlobStore } from "./storage/blob-store.js";
import { FilesystemBlobStore } from "./storage/filesystem/filesystem-blob-store.js";
import { S3BlobStore } from "./storage/s3/s3-blob-store.js";

export interface RunningBerth {
  /** host:port actually bound (the port is chosen by the OS when configured as 0). */
  address: string;
  app: FastifyInstance;
  registry: Registry;
  logger: Logger;
  /** observe: host:port of the separate metrics listener, when `metrics.listen` is set. */
  metricsAddress?: string;
  /** gc: the scheduled garbage collector; `gc.events.onRemoved(listener)` hears every removal. */
  gc: GarbageCollector;
  /** Stops accepting connections, lets requests in flight finish, then closes the stores. */
  close(): Promise<void>;
}

/** Upload sessions idle past their limit are swept this often. */
const uploadSweepIntervalMs = 10 * 60 * 1000;

/** Opens the stores the config names and returns a Registry; the CLI's maintenance commands use it too. */
export async function openRegistry(config: BerthConfig, logger?: Logger): Promise<Registry> {
  const dataDir = resolve(config.dataDir);
  await mkdir(dataDir, { recursive: true });
  // observe: every store call is timed and counted; webhooks get a notifier only when configured.
  const blobStore = instrumentBlobStore(await openBlobStore(config, dataDir));
  const metadata = instrumentMetadataStore(await openMetadataStore(config, dataDir));
  const notifier =
    config.notifications.endpoints.length > 0 ? new Notifier(config, metadata, logger) : undefined;
  return new Registry({ blobStore, metadata, config, ...(notifier ? { notifier } : {}) });
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
  // observe: loaded (and sending) only when tracing is enabled.
  await startTracing(config.tracing);
  const registry = await openRegistry(config, logger);
  const app = buildApp(registry, config, logger, appOptions);
  const listen = parseListen(config.listen);
  if (!listen) throw new Error(`invalid listen address ${config.listen}`);
  await app.listen({ host: listen.host, port: listen.port });
  const bound = app.server.address();
  const address =
    bound && typeof bound === "object"
      ? `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${bound.port}`
      : config.listen;
  // observe: webhook delivery, the upload gauge and the separate metrics listener.
  registry.ctx.notifier?.startDelivery(address);
  const unwatchUploads = watchUploadSessions(() => registry.ctx.metadata.countUploadSessions());
  const metricsListen =
    config.metrics.enabled && config.metrics.listen ? parseListen(config.metrics.listen) : undefined;
  const metricsServer = metricsListen
    ? await startMetricsServer(config, registry, metricsListen.host, metricsListen.port).catch(
        async (error: unknown) => {
          // The metrics address is taken: fail the start as a bad main address would, leaving nothing open.
          unwatchUploads();
          await app.close();
          await registry.close();
          throw error;
        },
      )
    : undefined;

  const sweep = setInterval(() => {
    registry.uploads
      .purgeIdle()
      .then((purged) => purged > 0 && logger.info({ purged }, "expired idle upload sessions"))
      .catch((error: unknown) => logger.error({ err: error }, "upload sweep failed"));
  }, uploadSweepIntervalMs);
  sweep.unref();

  // Retention on a schedule (policies.retentionIntervalSeconds); a run still going skips the next tick.
  let retentionRunning = false;
  const retentionMs = config.policies.retentionIntervalSeconds * 1000;
  const retention =
    retentionMs > 0 && config.policies.rules.some((rule) => rule.retention)
      ? setInterval(() => {
          if (retentionRunning) return;
          retentionRunning = true;
          applyRetention(registry.ctx.metadata, config.policies, Date.now(), {
            logger,
            eventsFor: (repository, tag, digest) =>
              registry.ctx.notifier?.eventsFor("delete", { repository, tag, digest }, { actor: "retention" }),
          })
            .then(
              (removed) => removed.length > 0 && logger.info({ removed: removed.length }, "retention done"),
            )
            .catch((error: unknown) => logger.error({ err: error }, "retention failed"))
            .finally(() => {
              retentionRunning = false;
            });
        }, retentionMs)
      : undefined;
  retention?.unref();
  // gc: scheduled garbage collection, while pushes and pulls go on.
  const gc = new GarbageCollector(
    registry.ctx.metadata,
    registry.ctx.blobStore,
    gcOptionsFrom(config),
    logger,
  );
  gc.reportRemovalsTo(gcRemovalEvents(registry.ctx.notifier));
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
      clearInterval(retention);
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
      unwatchUploads();
      metricsServer?.closeAllConnections();
      await new Promise((done) => (metricsServer ? metricsServer.close(done) : done(undefined)));
      // gc: a pass in flight finishes before the stores close under it.
      await gc.idle();
      await registry.close();
      await stopTracing();
    })();
    return closing;
  };
  logger.info({ address, dataDir: resolve(config.dataDir) }, "berth is listening");
  const metricsBound = metricsServer?.address();
  const metricsAddress =
    metricsBound && typeof metricsBound === "object"
      ? `${metricsBound.address}:${metricsBound.port}`
      : undefined;
  return { address, app, registry, logger, gc, close, ...(metricsAddress ? { metricsAddress } : {}) };
}
