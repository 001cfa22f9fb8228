import type { BerthConfig } from "../config/config.js";
import type { Notifier } from "../events/notifier.js";
import type { MetadataStore } from "../metadata/metadata-store.js";
import type { BlobStore } from "../storage/blob-store.js";

/** What every use case needs: the two stores and the settings that bound them. */
export interface RegistryContext {
  blobStore: BlobStore;
  metadata: MetadataStore;
  config: BerthConfig;
  /** observe: builds outbox events for webhook endpoints; absent in tools that never notify. */
  notifier?: Notifier;
}
