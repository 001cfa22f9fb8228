import { type Digest, parseDigest } from "./digest.js";
import { parseTag, type Tag } from "./repository-name.js";

/** The `<reference>` of `/v2/<name>/manifests/<reference>`: a digest or a tag, nothing else. */
export type Reference = { kind: "digest"; digest: Digest } | { kind: "tag"; tag: Tag };

export function parseReference(input: string): Reference {
  // A tag can never contain ':', a digest always does.
  if (input.includes(":")) return { kind: "digest", digest: parseDigest(input) };
  return { kind: "tag", tag: parseTag(input) };
}

export function referenceString(reference: Reference): string {
  return reference.kind === "digest" ? reference.digest.value : reference.tag;
}
