import { PullThroughCache } from "../proxy/pull-through.js";
import { BlobService } from "./blobs.js";
import type { RegistryContext } from "./context.js";
import { DiscoveryService } from "./discovery.js";
import { ManifestService } from "./manifests.js";
import { UploadService } from "./uploads.js";

const readyTimeoutMs = 5000;

/** The registry's use cases, grouped by API area; no HTTP in sight. */
export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly discovery: DiscoveryService;
  /** Repositories served from upstream registries; undefined when none is configured. */
  readonly proxy: PullThroughCache | undefined;

  constructor(readonly ctx: RegistryContext) {
    this.proxy = PullThroughCache.fromContext(ctx);
    this.blobs = new BlobService(ctx);
    this.uploads = new UploadService(ctx);
    this.manifests = new ManifestService(ctx, this.proxy);
    this.discovery = new DiscoveryService(ctx);
  }

  async ready(): Promise<void> {
    // observe: a store that hangs (an unreachable database) fails the probe instead of stalling it.
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error("stores did not answer within 5 s")), readyTimeoutMs);
    });
    try {
      await Promise.race([
        (async () => {
          await this.ctx.metadata.ping();
          await this.ctx.blobStore.ping();
        })(),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.proxy?.close();
    // observe: pending pull events are written and delivery stops before the store closes.
    await this.ctx.notifier?.close();
    await this.ctx.metadata.close();
  }
}
