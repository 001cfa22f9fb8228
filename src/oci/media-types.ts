/** Media types a registry must recognise (image-spec media-types.md, Docker image manifest v2 schema 2). */
export const mediaTypes = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  octetStream: "application/octet-stream",
} as const;

/** Layers that are never pushed to a registry (Windows base layers): their descriptors carry `urls`. */
const nonDistributableLayerTypes = new Set([
  "application/vnd.oci.image.layer.nondistributable.v1.tar",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
]);

export function isNonDistributableLayer(mediaType: string): boolean {
  return nonDistributableLayerTypes.has(mediaType);
}

const mediaTypeGrammar = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

/** RFC 6838 type/subtype, as image-spec descriptor.md requires for `mediaType` and `artifactType`. */
export function isMediaType(value: string): boolean {
  return mediaTypeGrammar.test(value);
}

/** `Content-Type: application/vnd.oci.image.manifest.v1+json; charset=utf-8` -> the bare type. */
export function stripMediaTypeParameters(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const bare = value.split(";", 1)[0]?.trim().toLowerCase();
  return bare === "" ? undefined : bare;
}
