/**
 * skopeo round trip: copy a multi-layer OCI layout (real tar+gzip layers) into the registry and
 * back into a second layout. skopeo's blob-info cache lives in /var/lib/containers when run as
 * root, so each call gets an empty private one: a bind mount of a fresh temp dir inside its own
 * mount namespace (unshare), which also leaves the host's cache alone.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { check, repoName, type Workload, type WorkloadContext } from "../core.js";
import { type CommandResult, runCommand } from "../generators.js";
import { type Image, makeImage, OCI_INDEX, OCI_MANIFEST, sha256Digest } from "../oci.js";

let layoutDir = "";
let policyFile = "";
let sourceImage: Image | null = null;
const isolated = process.getuid?.() === 0;

/** Writes the source OCI layout and the policy once per run (both registries get the same image). */
export async function prepareSkopeo(workDir: string, layers: number, layerBytes: number): Promise<void> {
  sourceImage = makeImage(
    "skopeo",
    Array.from({ length: layers }, () => layerBytes),
  );
  layoutDir = join(workDir, "oci-source");
  await writeLayout(layoutDir, "v1", sourceImage);
  policyFile = join(workDir, "policy.json");
  await writeFile(policyFile, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
}

async function writeLayout(dir: string, tag: string, image: Image): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const put = (digest: string, data: Buffer) => writeFile(join(blobs, digest.slice("sha256:".length)), data);
  await put(image.configDigest, image.config);
  for (const layer of image.layers) await put(layer.digest, layer.data);
  await put(image.manifestDigest, image.manifest);
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { "org.opencontainers.image.ref.name": tag },
        },
      ],
    }),
  );
}

/** Re-hash every blob of an OCI layout; returns the manifest digest of `tag`. */
async function verifyLayout(dir: string, tag: string): Promise<string> {
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
    manifests?: { digest: string; annotations?: Record<string, string> }[];
  };
  const entry = index.manifests?.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  check(entry, `${dir}: no manifest tagged ${tag}`);
  const blob = (digest: string) => readFile(join(dir, "blobs", "sha256", digest.slice("sha256:".length)));
  const manifest = await blob(entry.digest);
  check(sha256Digest(manifest) === entry.digest, `${dir}: manifest does not match its digest`);
  const parsed = JSON.parse(manifest.toString("utf8")) as {
    config: { digest: string; size: number };
    layers: { digest: string; size: number }[];
  };
  for (const descriptor of [parsed.config, ...parsed.layers]) {
    const data = await blob(descriptor.digest);
    check(
      data.length === descriptor.size && sha256Digest(data) === descriptor.digest,
      `${dir}: blob ${descriptor.digest} has the wrong size or digest`,
    );
  }
  return entry.digest;
}

async function skopeo(ctx: WorkloadContext, args: string[]): Promise<CommandResult> {
  const full = ["--policy", policyFile, "--tmpdir", ctx.workDir, ...args];
  if (!isolated) return runCommand("skopeo", full);
  const cache = await mkdtemp(join(ctx.workDir, "skopeo-cache-"));
  try {
    const script = 'mount --bind "$0" /var/lib/containers; exec skopeo "$@"';
    return await runCommand("unshare", [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-ec",
      script,
      cache,
      ...full,
    ]);
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}

function failure(what: string, res: CommandResult): string {
  return `${what} exited ${res.code}: ${res.stderr.trim().split("\n").slice(-2).join(" | ").slice(0, 300)}`;
}

export const skopeoRoundTrip: Workload = {
  name: "skopeo",
  description: "skopeo copy of a multi-layer OCI layout into the registry and back out to a new layout",
  async run(ctx) {
    check(sourceImage, "skopeo source image not prepared");
    const sourceDigest = await verifyLayout(layoutDir, "v1");
    const reference = `docker://${ctx.target.base.host}/${repoName(ctx, "skopeo")}:v1`;
    const push = await skopeo(ctx, [
      "copy",
      "-q",
      "--dest-tls-verify=false",
      `oci:${layoutDir}:v1`,
      reference,
    ]);
    check(push.code === 0, failure("skopeo copy (push)", push));
    const inspect = await skopeo(ctx, ["inspect", "--raw", "--tls-verify=false", reference]);
    check(inspect.code === 0, failure("skopeo inspect", inspect));
    const registryDigest = sha256Digest(inspect.stdout);
    check(
      registryDigest === sourceDigest,
      `registry manifest ${registryDigest} differs from the source ${sourceDigest}`,
    );
    const destination = join(ctx.workDir, `oci-${ctx.target.name}-${ctx.runTag.replace(/\W/g, "")}`);
    await rm(destination, { recursive: true, force: true });
    const pull = await skopeo(ctx, [
      "copy",
      "-q",
      "--src-tls-verify=false",
      reference,
      `oci:${destination}:v1`,
    ]);
    check(pull.code === 0, failure("skopeo copy (pull)", pull));
    const pulledDigest = await verifyLayout(destination, "v1");
    check(pulledDigest === sourceDigest, `round-tripped manifest ${pulledDigest} differs from the source`);
    await rm(destination, { recursive: true, force: true });
    ctx.details.blob_info_cache = isolated
      ? "fresh per call (bind mount in a private mount namespace)"
      : "host";
    ctx.details.layers = sourceImage.layers.length;
    ctx.details.image_bytes = sourceImage.layers.reduce(
      (sum, l) => sum + l.data.length,
      sourceImage.config.length,
    );
    ctx.figure("skopeo_push", push.seconds, "s", "skopeo", true);
    ctx.figure("skopeo_pull", pull.seconds, "s", "skopeo", true);
  },
};
