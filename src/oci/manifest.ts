import { z } from "zod";
import { type Digest, tryParseDigest } from "./digest.js";
import { RegistryError } from "./errors.js";
import { isMediaType, isNonDistributableLayer, mediaTypes } from "./media-types.js";

/**
 * Manifest parsing and validation: image-spec manifest.md, image-index.md and descriptor.md, plus
 * Docker's schema 2 manifest and manifest list, which share the same shape.
 * The registry stores the client's exact bytes; this only decides whether to accept them and
 * extracts what metadata needs (references, subject, artifactType, annotations).
 */

const annotations = z.record(z.string(), z.string());

const descriptor = z.object({
  mediaType: z.string().refine(isMediaType, "mediaType must be a valid media type"),
  digest: z.string(),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  artifactType: z.string().refine(isMediaType, "artifactType must be a valid media type").optional(),
  platform: z.object({ architecture: z.string(), os: z.string() }).passthrough().optional(),
});

const imageManifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().refine(isMediaType, "artifactType must be a valid media type").optional(),
  config: descriptor,
  layers: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

const imageIndex = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().refine(isMediaType, "artifactType must be a valid media type").optional(),
  manifests: z.array(descriptor),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

// Manifest types this registry does not know: only the descriptors it can find are checked.
const otherManifest = z.object({
  mediaType: z.string(),
  artifactType: z.string().optional(),
  config: descriptor.optional(),
  layers: z.array(descriptor).optional(),
  blobs: z.array(descriptor).optional(),
  manifests: z.array(descriptor).optional(),
  subject: descriptor.optional(),
  annotations: annotations.optional(),
});

export type Descriptor = z.infer<typeof descriptor>;

export interface ManifestReference {
  digest: Digest;
  size: number;
  kind: "config" | "layer" | "manifest";
}

export interface ParsedManifest {
  mediaType: string;
  /** The artifactType a referrers response lists for this manifest (distribution-spec "Listing Referrers"). */
  artifactType: string | undefined;
  subject: Digest | undefined;
  annotations: Record<string, string> | undefined;
  /** Blobs and child manifests that must exist in the repository before this manifest is accepted. */
  references: ManifestReference[];
}

export type ManifestKind = "image" | "index" | "other";

export function manifestKind(mediaType: string): ManifestKind {
  switch (mediaType) {
    case mediaTypes.ociManifest:
    case mediaTypes.dockerManifest:
      return "image";
    case mediaTypes.ociIndex:
    case mediaTypes.dockerManifestList:
      return "index";
    default:
      return "other";
  }
}

function invalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError("MANIFEST_INVALID", message, detail === undefined ? {} : { detail });
}

function descriptorDigest(d: Descriptor, field: string): Digest {
  const digest = tryParseDigest(d.digest);
  if (!digest) throw invalid(`${field}: invalid or unsupported digest`, { digest: d.digest.slice(0, 200) });
  return digest;
}

/**
 * @param bytes the exact body the client sent
 * @param contentType the request's Content-Type without parameters, if any
 */
export function parseManifest(bytes: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw invalid("manifest is not valid JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw invalid("manifest must be a JSON object");
  }
  const declared = (json as { mediaType?: unknown }).mediaType;
  if (declared !== undefined && typeof declared !== "string") throw invalid("mediaType must be a string");
  // distribution-spec "Pushing Manifests": when the manifest has a mediaType, the Content-Type must equal it.
  if (
    declared !== undefined &&
    contentType !== undefined &&
    contentType !== declared &&
    !isGenericJson(contentType)
  ) {
    throw invalid(`Content-Type "${contentType}" does not match the manifest's mediaType "${declared}"`);
  }
  const mediaType = declared ?? (contentType && !isGenericJson(contentType) ? contentType : undefined);
  if (mediaType === undefined) throw invalid("manifest has no mediaType and the request no Content-Type");
  if (mediaType === mediaTypes.dockerSchema1 || mediaType === mediaTypes.dockerSchema1Signed) {
    throw invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI");
  }
  if (!isMediaType(mediaType)) throw invalid("invalid mediaType");

  switch (manifestKind(mediaType)) {
    case "image": {
      const m = check(imageManifest, json);
      const references: ManifestReference[] = [
        { digest: descriptorDigest(m.config, "config"), size: m.config.size, kind: "config" },
      ];
      m.layers.forEach((layer, i) => {
        const digest = descriptorDigest(layer, `layers[${i}]`);
        if (!isNonDistributableLayer(layer.mediaType))
          references.push({ digest, size: layer.size, kind: "layer" });
      });
      return {
        mediaType,
        artifactType: m.artifactType ?? m.config.mediaType,
        subject: m.subject ? descriptorDigest(m.subject, "subject") : undefined,
        annotations: m.annotations,
        references,
      };
    }
    case "index": {
      const m = check(imageIndex, json);
      return {
        mediaType,
        artifactType: m.artifactType,
        subject: m.subject ? descriptorDigest(m.subject, "subject") : undefined,
        annotations: m.annotations,
        references: m.manifests.map((child, i) => ({
          digest: descriptorDigest(child, `manifests[${i}]`),
          size: child.size,
          kind: "manifest" as const,
        })),
      };
    }
    case "other": {
      const m = check(otherManifest, json);
      const references: ManifestReference[] = [];
      const addBlobs = (list: Descriptor[] | undefined, field: string, kind: "config" | "layer") =>
        list?.forEach((d, i) => {
          if (!isNonDistributableLayer(d.mediaType))
            references.push({ digest: descriptorDigest(d, `${field}[${i}]`), size: d.size, kind });
        });
      if (m.config) addBlobs([m.config], "config", "config");
      addBlobs(m.layers, "layers", "layer");
      addBlobs(m.blobs, "blobs", "layer");
      for (const [i, d] of (m.manifests ?? []).entries()) {
        references.push({ digest: descriptorDigest(d, `manifests[${i}]`), size: d.size, kind: "manifest" });
      }
      return {
        mediaType,
        artifactType: m.artifactType ?? m.config?.mediaType,
        subject: m.subject ? descriptorDigest(m.subject, "subject") : undefined,
        annotations: m.annotations,
        references,
      };
    }
  }
}

function isGenericJson(contentType: string): boolean {
  return contentType === "application/json" || contentType === "application/octet-stream";
}

function check<T>(schema: z.ZodType<T>, json: unknown): T {
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue?.path.join(".") || "manifest";
    throw invalid(`${where}: ${issue?.message ?? "invalid"}`, { issues: result.error.issues.slice(0, 5) });
  }
  return result.data;
}
