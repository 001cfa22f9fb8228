import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { RegistryError } from "../../src/oci/errors.js";
import { parseReference } from "../../src/oci/reference.js";
import {
  isRepositoryName,
  isTag,
  maxRepositoryNameLength,
  parseRepositoryName,
  parseTag,
} from "../../src/oci/repository-name.js";

describe("oci/repository-name: <name> grammar (Pulling manifests)", () => {
  test("accepts single and multi-segment names with every separator", () => {
    for (const name of [
      "a",
      "library/ubuntu",
      "a/b/c/d/e",
      "my.repo",
      "my_repo",
      "a__b",
      "a--b",
      "a---b",
      "a-b.c_d/e__f",
      "0",
      "123/456",
    ]) {
      assert.equal(isRepositoryName(name), true, name);
      assert.equal(parseRepositoryName(name), name);
    }
  });

  test("rejects uppercase, empty segments and stray separators", () => {
    for (const name of [
      "",
      "Library/ubuntu",
      "UPPER",
      "a/",
      "/a",
      "a//b",
      "-a",
      "a-",
      ".a",
      "a.",
      "_a",
      "a_",
      "a___b",
      "a..b",
      "a._b",
      "a/../b",
      "..",
      "a/./b",
      "a b",
      "a%2eb",
      "%2e%2e/a",
      "a:b",
      "a\u00e9",
    ]) {
      assert.equal(isRepositoryName(name), false, JSON.stringify(name));
      assert.throws(
        () => parseRepositoryName(name),
        (error: unknown) =>
          error instanceof RegistryError && error.code === "NAME_INVALID" && error.status === 400,
      );
    }
  });

  test("caps the name at 255 characters", () => {
    assert.equal(maxRepositoryNameLength, 255);
    const exact = `${"a".repeat(127)}/${"b".repeat(127)}`;
    assert.equal(exact.length, 255);
    assert.equal(isRepositoryName(exact), true);
    assert.equal(isRepositoryName(`${exact}c`), false);
    assert.equal(isRepositoryName("a".repeat(256)), false);
  });
});

describe("oci/repository-name: tag grammar (Pulling manifests)", () => {
  test("accepts [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", () => {
    for (const tag of [
      "latest",
      "v1.0.0",
      "_underscore",
      "UPPER",
      "a-b_c.d",
      "0",
      "sha256-abc",
      "a".repeat(128),
    ]) {
      assert.equal(isTag(tag), true, tag);
      assert.equal(parseTag(tag), tag);
    }
  });

  test("rejects more than 128 characters and bad first characters", () => {
    for (const tag of [
      "",
      "a".repeat(129),
      ".hidden",
      "-dash",
      "a/b",
      "a:b",
      "a+b",
      "tag ",
      "\u00e9t\u00e9",
    ]) {
      assert.equal(isTag(tag), false, JSON.stringify(tag));
      assert.throws(() => parseTag(tag), RegistryError);
    }
  });

  test("parseReference tells a digest from a tag", () => {
    const digest = `sha256:${"a".repeat(64)}`;
    assert.deepEqual(parseReference("latest"), { kind: "tag", tag: "latest" });
    const parsed = parseReference(digest);
    assert.equal(parsed.kind, "digest");
    assert.equal(parsed.kind === "digest" && parsed.digest.value, digest);
    assert.throws(
      () => parseReference("sha256:totallywrong"),
      (error: unknown) => error instanceof RegistryError && error.code === "DIGEST_INVALID",
    );
    assert.throws(() => parseReference(".INVALID_MANIFEST_NAME"), RegistryError);
  });
});
