/**
 * Request-rate workloads at 64 connections: manifest GET by tag and tags/list through wrk,
 * manifest HEAD by tag and blob HEAD through ab. Each is checked with a verified request before
 * and after the load run, and any error or non-2xx response from the generator fails it.
 */
import { check, now, pool, repoName, type Workload, type WorkloadContext } from "../core.js";
import { abHead, type RateResult, wrkGet } from "../generators.js";
import {
  getManifestVerified,
  headBlob,
  headManifestVerified,
  type Image,
  listTags,
  makeImage,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  putManifest,
} from "../oci.js";

/** The image small_images left behind, or (if that failed) one pushed now, untimed. */
async function smallImage(ctx: WorkloadContext): Promise<{ repo: string; tag: string; image: Image }> {
  const { state, client } = ctx.target;
  if (!state.smallRepo || !state.smallTag || !state.smallImage) {
    const image = makeImage("rate", [32 * 1024, 32 * 1024]);
    const repo = repoName(ctx, "rate");
    await pushImage(client, repo, "latest", image);
    state.smallRepo = repo;
    state.smallTag = "latest";
    state.smallImage = image;
  }
  return { repo: state.smallRepo, tag: state.smallTag, image: state.smallImage };
}

function rateFigures(ctx: WorkloadContext, key: string, result: RateResult): void {
  ctx.details[key] = result;
  ctx.figure(`${key}_rps`, result.rps, "req/s", result.tool);
  ctx.figure(`${key}_p99`, result.p99_ms, "ms", result.tool);
}

function wrkOptions(ctx: WorkloadContext, name: string) {
  return {
    threads: ctx.sizes.wrkThreads,
    connections: ctx.sizes.loadConnections,
    seconds: ctx.sizes.loadSeconds,
    workDir: ctx.workDir,
    name: `${ctx.target.name}-${name}`,
  };
}

export const manifestGet: Workload = {
  name: "manifest_get",
  description: "wrk GET /v2/<name>/manifests/<tag> with an OCI manifest Accept header",
  async run(ctx) {
    const { repo, tag, image } = await smallImage(ctx);
    const { client } = ctx.target;
    await getManifestVerified(client, repo, tag, image);
    const url = new URL(`/v2/${repo}/manifests/${tag}`, ctx.target.base).toString();
    rateFigures(
      ctx,
      "manifest_get",
      await wrkGet(url, { Accept: OCI_MANIFEST }, wrkOptions(ctx, "manifest-get")),
    );
    await getManifestVerified(client, repo, tag, image);
  },
};

export const manifestHead: Workload = {
  name: "manifest_head",
  description: "ab HEAD /v2/<name>/manifests/<tag> with an OCI manifest Accept header",
  async run(ctx) {
    const { repo, tag, image } = await smallImage(ctx);
    const { client } = ctx.target;
    await headManifestVerified(client, repo, tag, image);
    const url = new URL(`/v2/${repo}/manifests/${tag}`, ctx.target.base).toString();
    const options = { connections: ctx.sizes.loadConnections, seconds: ctx.sizes.loadSeconds };
    rateFigures(ctx, "manifest_head", await abHead(url, { Accept: OCI_MANIFEST }, options));
    await headManifestVerified(client, repo, tag, image);
  },
};

export const blobHead: Workload = {
  name: "blob_head",
  description: "ab HEAD /v2/<name>/blobs/<digest> of a small layer",
  async run(ctx) {
    const { repo, image } = await smallImage(ctx);
    const layer = image.layers[0];
    check(layer, "image without layers");
    const { client } = ctx.target;
    await headBlob(client, repo, layer.digest, layer.data.length);
    const url = new URL(`/v2/${repo}/blobs/${layer.digest}`, ctx.target.base).toString();
    const options = { connections: ctx.sizes.loadConnections, seconds: ctx.sizes.loadSeconds };
    rateFigures(ctx, "blob_head", await abHead(url, {}, options));
    await headBlob(client, repo, layer.digest, layer.data.length);
  },
};

export const tagsList: Workload = {
  name: "tags_list",
  description: "1,000 tags PUT by 16 clients (info: tags/s), then wrk GET /v2/<name>/tags/list",
  async run(ctx) {
    const { client } = ctx.target;
    const repo = repoName(ctx, "tags");
    const image = makeImage("tags", [16 * 1024]);
    await pushBlob(client, repo, image.config, image.configDigest);
    for (const layer of image.layers) await pushBlob(client, repo, layer.data, layer.digest);
    const count = ctx.sizes.tags;
    const tag = (i: number) => `t${String(i).padStart(5, "0")}`;
    const started = now();
    await pool(ctx.sizes.imageWorkers, count, (i) => putManifest(client, repo, tag(i), image));
    const putSeconds = now() - started;
    const verify = async () => {
      const { tags, pages } = await listTags(client, repo);
      const expected = new Set(Array.from({ length: count }, (_, i) => tag(i)));
      check(
        tags.length === count && new Set(tags).size === count && tags.every((t) => expected.has(t)),
        `tags/list returned ${tags.length} tags, want exactly the ${count} pushed`,
      );
      return pages;
    };
    const pages = await verify();
    ctx.details.tags = count;
    ctx.details.pages = pages;
    check(pages === 1, `tags/list is paginated (${pages} pages); wrk would measure only the first page`);
    ctx.figure("tag_put_rate", count / putSeconds, "tags/s", "bench", true);
    const url = new URL(`/v2/${repo}/tags/list`, ctx.target.base).toString();
    rateFigures(ctx, "tags_list", await wrkGet(url, {}, wrkOptions(ctx, "tags-list")));
    await verify();
  },
};
