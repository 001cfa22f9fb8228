import { BlobService } from "./blobs.js";
import type { RegistryContext } from "./context.js";
import { DiscoveryService } from "./discovery.js";
import { ManifestService } from "./manifests.js";
import { UploadService } from "./uploads.js";

/** The registry's use cases, grouped by API area; no HTTP in sight. */
export class Registry {
  readonly blobs: BlobService;
  readonly uploads: UploadService;
  readonly manifests: ManifestService;
  readonly discovery: DiscoveryService;

  constructor(readonly ctx: RegistryContext) {
    this.blobs = new BlobService(ctx);
    this.uploads = new UploadService(ctx);
    this.manifests = new ManifestService(ctx);
    this.discovery = new DiscoveryService(ctx);
  }

  async ready(): Promise<void> {
    await this.ctx.metadata.ping();
    await this.ctx.blobStore.ping();
  }

  async close(): Promise<void> {
    await this.ctx.metadata.close();
  }
}
