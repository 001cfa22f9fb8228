import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { isDigestAlgorithm, parseDigest, tryParseDigest } from "../../src/oci/digest.js";
import { RegistryError } from "../../src/oci/errors.js";

const sha256 = createHash("sha256").update("x").digest("hex");
const sha512 = createHash("sha512").update("x").digest("hex");

function rejects(input: string): void {
  assert.throws(
    () => parseDigest(input),
    (error: unknown) =>
      error instanceof RegistryError && error.code === "DIGEST_INVALID" && error.status === 400,
    input,
  );
  assert.equal(tryParseDigest(input), undefined);
}

describe("oci/digest: parseDigest (image-spec descriptor.md Digests)", () => {
  test("accepts sha256 with 64 lowercase hex characters", () => {
    assert.deepEqual(parseDigest(`sha256:${sha256}`), {
      algorithm: "sha256",
      encoded: sha256,
      value: `sha256:${sha256}`,
    });
  });

  test("accepts sha512 with 128 lowercase hex characters", () => {
    const digest = parseDigest(`sha512:${sha512}`);
    assert.equal(digest.algorithm, "sha512");
    assert.equal(digest.encoded, sha512);
    assert.equal(digest.value, `sha512:${sha512}`);
  });

  test("rejects uppercase hex", () => {
    rejects(`sha256:${sha256.toUpperCase()}`);
    rejects(`sha512:${sha512.slice(0, 127)}A`);
  });

  test("rejects the wrong length for the algorithm", () => {
    rejects(`sha256:${sha256.slice(1)}`);
    rejects(`sha256:${sha256}0`);
    rejects(`sha512:${sha256}`);
    rejects(`sha256:${sha512}`);
    rejects("sha256:");
  });

  test("rejects algorithms the registry cannot verify", () => {
    rejects(`md5:${"a".repeat(32)}`);
    rejects(`sha1:${"a".repeat(40)}`);
    rejects(`sha384:${"a".repeat(96)}`);
    rejects(`multihash+base58:${"a".repeat(64)}`);
  });

  test("rejects what is not a digest at all", () => {
    for (const input of [
      "",
      "latest",
      sha256,
      `:${sha256}`,
      `SHA256:${sha256}`,
      `sha256:${sha256.slice(0, 60)}zzzz`,
    ]) {
      rejects(input);
    }
    rejects(`sha256:${"a".repeat(300)}`);
    rejects(`sha256 :${sha256}`);
    rejects(`sha256:${sha256}\n`);
  });

  test("isDigestAlgorithm knows exactly sha256 and sha512", () => {
    assert.equal(isDigestAlgorithm("sha256"), true);
    assert.equal(isDigestAlgorithm("sha512"), true);
    assert.equal(isDigestAlgorithm("sha384"), false);
    assert.equal(isDigestAlgorithm("SHA256"), false);
  });
});
