import type { ImageConfigSummary } from "../oci/image-config.js";

/**
 * What the browse use cases return: repositories, tags and manifests as a person looks at them.
 * Plain data only, so the web UI's bundle can import these types as they are.
 */

export interface RepositoryView {
  name: string;
  tagCount: number;
  /** Latest push (ms since epoch). */
  updatedAt: number;
}

export interface PlatformView {
  os: string;
  architecture: string;
  variant?: string;
}

export interface TagView {
  name: string;
  digest: string;
  mediaType: string;
  artifactType: string | null;
  /** Push time of the tag (ms since epoch). */
  pushedAt: number;
  /** Compressed size of what a pull downloads: config and layers (of every platform, for an index). */
  size: number | null;
  /** The platforms of an index; null for anything else. */
  platforms: PlatformView[] | null;
}

export interface DescriptorView {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  platform?: PlatformView;
}

export type ImageConfigView = ImageConfigSummary;

export interface ReferrerGroupView {
  /** The referrers' artifactType (distribution-spec "Listing Referrers"): a signature, an SBOM, ... */
  artifactType: string;
  referrers: DescriptorView[];
}

export interface ManifestView {
  repository: string;
  digest: string;
  mediaType: string;
  kind: "image" | "index" | "other";
  /** Size of the manifest itself. */
  size: number;
  artifactType: string | null;
  annotations: Record<string, string> | null;
  subject: DescriptorView | null;
  config: DescriptorView | null;
  /** The parsed config, when it is an image config small enough to read. */
  image: ImageConfigView | null;
  layers: DescriptorView[];
  /** The child manifests of an index, each with its platform. */
  manifests: DescriptorView[];
  /** Compressed size of config and layers (of every child, for an index). */
  totalSize: number | null;
  referrers: ReferrerGroupView[];
  /** More referrers exist than one page holds. */
  referrersTruncated: boolean;
  /** The manifest as pushed, pretty-printed. */
  json: string;
}
