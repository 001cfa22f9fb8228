import { RegistryError } from "./errors.js";

/**
 * A parsed, validated content digest (image-spec descriptor.md "Digests").
 * Only algorithms the registry can verify are accepted: a digest is a promise we must be able to check.
 */
export const digestAlgorithms = ["sha256", "sha512"] as const;
export type DigestAlgorithm = (typeof digestAlgorithms)[number];

export interface Digest {
  readonly algorithm: DigestAlgorithm;
  /** Lowercase hex. */
  readonly encoded: string;
  /** `algorithm:encoded`, the canonical string form. */
  readonly value: string;
}

const encodedLength: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
// The generic grammar from descriptor.md; registered algorithms narrow `encoded` further.
const digestGrammar = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const lowerHex = /^[a-f0-9]+$/;

export function isDigestAlgorithm(value: string): value is DigestAlgorithm {
  return value === "sha256" || value === "sha512";
}

/** Parses `sha256:<64 hex>` or `sha512:<128 hex>`; throws DIGEST_INVALID for anything else. */
export function parseDigest(input: string): Digest {
  if (input.length > 200 || !digestGrammar.test(input)) {
    throw new RegistryError("DIGEST_INVALID", "invalid digest format", {
      detail: { digest: input.slice(0, 200) },
    });
  }
  const colon = input.indexOf(":");
  const algorithm = input.slice(0, colon);
  const encoded = input.slice(colon + 1);
  if (!isDigestAlgorithm(algorithm)) {
    throw new RegistryError("DIGEST_INVALID", `unsupported digest algorithm "${algorithm}"`, {
      detail: { digest: input },
    });
  }
  if (encoded.length !== encodedLength[algorithm] || !lowerHex.test(encoded)) {
    throw new RegistryError(
      "DIGEST_INVALID",
      `invalid ${algorithm} digest: expected ${encodedLength[algorithm]} lowercase hex characters`,
      {
        detail: { digest: input },
      },
    );
  }
  return { algorithm, encoded, value: input };
}

export function tryParseDigest(input: string): Digest | undefined {
  try {
    return parseDigest(input);
  } catch {
    return undefined;
  }
}

export function digestFromHex(algorithm: DigestAlgorithm, encoded: string): Digest {
  return { algorithm, encoded, value: `${algorithm}:${encoded}` };
}
