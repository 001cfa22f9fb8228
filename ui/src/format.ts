import type { PlatformView } from "./api.js";

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatTime(ms: number | string | undefined): string {
  if (ms === undefined) return "—";
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return String(ms);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function relativeTime(ms: number): string {
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 60) return "just now";
  const steps: [number, string][] = [
    [60, "minute"],
    [24, "hour"],
    [30, "day"],
    [12, "month"],
    [Number.POSITIVE_INFINITY, "year"],
  ];
  let value = seconds / 60;
  for (const [size, unit] of steps) {
    if (value < size) {
      const n = Math.floor(value);
      return `${n} ${unit}${n === 1 ? "" : "s"} ago`;
    }
    value /= size;
  }
  return formatTime(ms);
}

export function shortDigest(digest: string): string {
  const colon = digest.indexOf(":");
  return `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}`;
}

export function formatPlatform(platform: PlatformView): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/** Names people know for the artifact types of signatures, SBOMs and attestations. */
const artifactNames: Record<string, string> = {
  "application/vnd.dev.cosign.artifact.sig.v1+json": "Cosign signatures",
  "application/vnd.dev.sigstore.bundle.v0.3+json": "Sigstore bundles",
  "application/vnd.dev.sigstore.bundle+json;version=0.3": "Sigstore bundles",
  "application/vnd.cncf.notary.signature": "Notary signatures",
  "application/spdx+json": "SPDX SBOMs",
  "text/spdx": "SPDX SBOMs",
  "application/vnd.cyclonedx+json": "CycloneDX SBOMs",
  "application/vnd.cyclonedx+xml": "CycloneDX SBOMs",
  "application/vnd.syft+json": "Syft SBOMs",
  "application/vnd.in-toto+json": "in-toto attestations",
  "application/vnd.dsse.envelope.v1+json": "DSSE attestations",
  "application/vnd.dev.cosign.attestation.v1+json": "Cosign attestations",
};

export function artifactLabel(artifactType: string): string {
  const known = artifactNames[artifactType];
  if (known) return known;
  if (/sbom|spdx|cyclonedx/i.test(artifactType)) return "SBOMs";
  if (/signature|\.sig\b/i.test(artifactType)) return "Signatures";
  if (/attestation|in-toto|provenance/i.test(artifactType)) return "Attestations";
  return "Artifacts";
}

export function kindLabel(mediaType: string, artifactType: string | null): string {
  if (/index|manifest\.list/.test(mediaType)) return "index";
  if (artifactType && !/image\.config|container\.image/.test(artifactType)) return "artifact";
  return "image";
}

/** Registry error messages are lower-case fragments; shown alone, they read as sentences. */
export function sentence(message: string): string {
  const text = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(text) ? text : `${text}.`;
}
