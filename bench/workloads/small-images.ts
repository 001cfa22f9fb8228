/**
 * Many small images pushed concurrently: each image is a ~1 KiB config, two ~32 KiB tar+gzip
 * layers (POST + PUT each) and a manifest PUT by tag, i.e. 7 requests.
 */
import { now, pool, repoName, type Workload } from "../core.js";
import { getManifestVerified, headBlob, type Image, makeImage, pushImage } from "../oci.js";

/** The timed pass's images, and the first (cold) pass's: distinct content, so neither finds the other's blobs. */
let images: Image[] = [];
let coldImages: Image[] = [];

/** Generated once per run (shared by both registries), outside the timed section. */
export function prepareSmallImages(count: number): void {
  images = Array.from({ length: count }, (_, i) => makeImage(`small-${i}`, [32 * 1024, 32 * 1024]));
  coldImages = Array.from({ length: count }, (_, i) => makeImage(`cold-${i}`, [32 * 1024, 32 * 1024]));
}

/**
 * Two passes of the same shape into two repositories. The first meets a server that has just started
 * (a JIT runtime such as berth's still compiles its hot paths then) and is reported for information;
 * the second is the figure, the steady state a long-running registry works in. Both registries get both.
 */
export const pushSmallImages: Workload = {
  name: "small_images",
  description:
    "N images (config + 2 tar+gzip layers + manifest by tag) pushed by 16 concurrent clients, after a first pass of N others",
  async run(ctx) {
    const { client, state } = ctx.target;
    const tag = (i: number) => `i${String(i).padStart(4, "0")}`;
    const pass = async (repo: string, set: Image[]) => {
      const requestsBefore = client.requests;
      const started = now();
      await pool(ctx.sizes.imageWorkers, set.length, (i) => pushImage(client, repo, tag(i), set[i] as Image));
      const seconds = now() - started;
      const requests = client.requests - requestsBefore;
      // untimed: every tag resolves to its manifest and a layer of each image is there
      await pool(ctx.sizes.imageWorkers, set.length, async (i) => {
        const image = set[i] as Image;
        await getManifestVerified(client, repo, tag(i), image);
        const layer = image.layers[1];
        if (layer) await headBlob(client, repo, layer.digest, layer.data.length);
      });
      return { seconds, requests };
    };
    const cold = await pass(repoName(ctx, "small-cold"), coldImages);
    const repo = repoName(ctx, "small");
    const timed = await pass(repo, images);
    state.smallRepo = repo;
    state.smallTag = tag(0);
    state.smallImage = images[0];
    ctx.details.images = images.length;
    ctx.details.workers = ctx.sizes.imageWorkers;
    ctx.details.requests = timed.requests;
    ctx.details.seconds = timed.seconds;
    ctx.details.cold_seconds = cold.seconds;
    ctx.figure("small_images", images.length / timed.seconds, "images/s", "bench");
    ctx.figure("small_images_req_rate", timed.requests / timed.seconds, "req/s", "bench", true);
    ctx.figure("small_images_cold", coldImages.length / cold.seconds, "images/s", "bench", true);
  },
};
