import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { RegistryError } from "../../src/oci/errors.js";
import { manifestKind, parseManifest } from "../../src/oci/manifest.js";
import { mediaTypes, stripMediaTypeParameters } from "../../src/oci/media-types.js";

const digest = (seed: string) => `sha256:${createHash("sha256").update(seed).digest("hex")}`;
const config = { mediaType: mediaTypes.ociConfig, digest: digest("config"), size: 10 };
const layer = { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: digest("layer"), size: 20 };
const subject = { mediaType: mediaTypes.ociManifest, digest: digest("subject"), size: 30 };

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

function invalid(body: Buffer, contentType: string | undefined, pattern?: RegExp): void {
  assert.throws(
    () => parseManifest(body, contentType),
    (error: unknown) =>
      error instanceof RegistryError &&
      error.code === "MANIFEST_INVALID" &&
      error.status === 400 &&
      (pattern === undefined || pattern.test(error.message)),
  );
}

describe("oci/manifest: parseManifest", () => {
  test("an OCI image manifest: config and layers are references, artifactType falls back to the config type", () => {
    const parsed = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config,
        layers: [layer],
        annotations: { a: "1" },
      }),
      mediaTypes.ociManifest,
    );
    assert.equal(parsed.mediaType, mediaTypes.ociManifest);
    assert.equal(parsed.artifactType, mediaTypes.ociConfig);
    assert.equal(parsed.subject, undefined);
    assert.deepEqual(parsed.annotations, { a: "1" });
    assert.deepEqual(
      parsed.references.map((r) => [r.kind, r.digest.value, r.size]),
      [
        ["config", config.digest, 10],
        ["layer", layer.digest, 20],
      ],
    );
  });

  test("an artifact manifest: its own artifactType wins, and the subject is parsed", () => {
    const parsed = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        artifactType: "application/vnd.example.sbom",
        config: { mediaType: mediaTypes.ociEmpty, digest: digest("{}"), size: 2, data: "e30=" },
        layers: [],
        subject,
      }),
      mediaTypes.ociManifest,
    );
    assert.equal(parsed.artifactType, "application/vnd.example.sbom");
    assert.equal(parsed.subject?.value, subject.digest);
    assert.deepEqual(
      parsed.references.map((r) => r.kind),
      ["config"],
    );
  });

  test("an OCI index: children are manifest references, no artifactType unless declared", () => {
    const body = {
      schemaVersion: 2,
      mediaType: mediaTypes.ociIndex,
      manifests: [{ ...subject, platform: { architecture: "amd64", os: "linux", variant: "v8" } }],
    };
    const plain = parseManifest(json(body), mediaTypes.ociIndex);
    assert.equal(plain.mediaType, mediaTypes.ociIndex);
    assert.equal(plain.artifactType, undefined);
    assert.deepEqual(
      plain.references.map((r) => [r.kind, r.digest.value]),
      [["manifest", subject.digest]],
    );
    const typed = parseManifest(
      json({ ...body, artifactType: "application/vnd.food.stand", subject }),
      undefined,
    );
    assert.equal(typed.artifactType, "application/vnd.food.stand");
    assert.equal(typed.subject?.value, subject.digest);
  });

  test("Docker schema 2 manifest and manifest list", () => {
    assert.equal(manifestKind(mediaTypes.dockerManifest), "image");
    assert.equal(manifestKind(mediaTypes.dockerManifestList), "index");
    const manifest = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.dockerManifest,
        config: { ...config, mediaType: "application/vnd.docker.container.image.v1+json" },
        layers: [{ ...layer, mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip" }],
      }),
      mediaTypes.dockerManifest,
    );
    assert.equal(manifest.mediaType, mediaTypes.dockerManifest);
    assert.equal(manifest.references.length, 2);
    const list = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.dockerManifestList,
        manifests: [
          {
            ...subject,
            mediaType: mediaTypes.dockerManifest,
            platform: { architecture: "arm", os: "linux" },
          },
        ],
      }),
      mediaTypes.dockerManifestList,
    );
    assert.equal(list.mediaType, mediaTypes.dockerManifestList);
    assert.deepEqual(
      list.references.map((r) => r.kind),
      ["manifest"],
    );
  });

  test("non-distributable layers are not references", () => {
    const foreign = {
      mediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
      digest: digest("windows"),
      size: 1000,
      urls: ["https://example.com/layer"],
    };
    const nondistributable = {
      ...foreign,
      mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    };
    const parsed = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config,
        layers: [foreign, layer, nondistributable],
      }),
      undefined,
    );
    assert.deepEqual(
      parsed.references.map((r) => r.digest.value),
      [config.digest, layer.digest],
    );
  });

  test("unknown fields anywhere are accepted", () => {
    const parsed = parseManifest(
      json({
        schemaVersion: 2,
        mediaType: mediaTypes.ociManifest,
        config: { ...config, newUnspecifiedField: "aGVsbG8=", data: "eA==" },
        layers: [{ ...layer, newUnspecifiedField: null }],
        somethingNew: { nested: true },
      }),
      mediaTypes.ociManifest,
    );
    assert.equal(parsed.references.length, 2);
  });

  test("without mediaType, the Content-Type decides; application/json does not count", () => {
    const body = json({ schemaVersion: 2, config, layers: [] });
    assert.equal(parseManifest(body, mediaTypes.ociManifest).mediaType, mediaTypes.ociManifest);
    invalid(body, undefined, /no mediaType/);
    invalid(body, "application/json", /no mediaType/);
  });

  test("a Content-Type that differs from mediaType is refused; generic JSON types are tolerated", () => {
    const body = json({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [] });
    invalid(body, mediaTypes.ociIndex, /does not match/);
    assert.equal(parseManifest(body, "application/json").mediaType, mediaTypes.ociManifest);
    assert.equal(parseManifest(body, undefined).mediaType, mediaTypes.ociManifest);
  });

  test("Docker schema 1 is refused", () => {
    for (const mediaType of [mediaTypes.dockerSchema1, mediaTypes.dockerSchema1Signed]) {
      invalid(
        json({ schemaVersion: 1, mediaType, name: "x", tag: "y", fsLayers: [] }),
        mediaType,
        /schema 1/,
      );
      invalid(json({ schemaVersion: 1, name: "x", tag: "y", fsLayers: [] }), mediaType, /schema 1/);
    }
  });

  test("malformed documents are MANIFEST_INVALID", () => {
    invalid(Buffer.from("{"), mediaTypes.ociManifest, /not valid JSON/);
    invalid(Buffer.from("[]"), mediaTypes.ociManifest, /JSON object/);
    invalid(Buffer.from("null"), mediaTypes.ociManifest, /JSON object/);
    invalid(json({ schemaVersion: 2, mediaType: 5, config, layers: [] }), undefined, /mediaType/);
    invalid(json({ schemaVersion: 2, mediaType: "not a media type" }), undefined);
    const base = { schemaVersion: 2, mediaType: mediaTypes.ociManifest, config, layers: [layer] };
    for (const broken of [
      { ...base, schemaVersion: 1 },
      { ...base, config: undefined },
      { ...base, layers: undefined },
      { ...base, layers: [{ ...layer, size: -1 }] },
      { ...base, layers: [{ ...layer, size: 1.5 }] },
      { ...base, layers: [{ ...layer, digest: "sha256:short" }] },
      { ...base, layers: [{ ...layer, digest: `md5:${"a".repeat(32)}` }] },
      { ...base, layers: [{ ...layer, mediaType: "nope" }] },
      { ...base, artifactType: "nope" },
      { ...base, annotations: { a: 1 } },
      { ...base, subject: { ...subject, digest: "x" } },
    ]) {
      invalid(json(broken), mediaTypes.ociManifest);
    }
    invalid(json({ schemaVersion: 2, mediaType: mediaTypes.ociIndex }), mediaTypes.ociIndex);
  });

  test("an unknown manifest media type is accepted with whatever descriptors it has", () => {
    const parsed = parseManifest(
      json({
        mediaType: "application/vnd.example.custom+json",
        blobs: [layer],
        artifactType: "application/x-y",
      }),
      "application/vnd.example.custom+json",
    );
    assert.equal(parsed.mediaType, "application/vnd.example.custom+json");
    assert.equal(parsed.artifactType, "application/x-y");
    assert.deepEqual(
      parsed.references.map((r) => r.digest.value),
      [layer.digest],
    );
  });

  test("stripMediaTypeParameters drops parameters and lowercases", () => {
    assert.equal(
      stripMediaTypeParameters(`${mediaTypes.ociManifest}; charset=utf-8`),
      mediaTypes.ociManifest,
    );
    assert.equal(stripMediaTypeParameters("Application/JSON"), "application/json");
    assert.equal(stripMediaTypeParameters(undefined), undefined);
    assert.equal(stripMediaTypeParameters(" ; x=y"), undefined);
  });
});
