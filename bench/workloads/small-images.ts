/**
 * Many small images pushed concurrently: each image is a ~1 KiB config, two ~32 KiB tar+gzip
 * layers (POST + PUT each) and a manifest PUT by tag, i.e. 7 requests.
 */
import { now, pool, repoName, type Workload } from "../core.js";
import { getManifestVerified, headBlob, type Image, makeImage, pushImage } from "../oci.js";

let images: Image[] = [];

/** Generated once per run (shared by both registries), outside the timed section. */
export function prepareSmallImages(count: number): void {
  images = Array.from({ length: count }, (_, i) => makeImage(`small-${i}`, [32 * 1024, 32 * 1024]));
}

export const pushSmallImages: Workload = {
  name: "small_images",
  description: "N images (config + 2 tar+gzip layers + manifest by tag) pushed by 16 concurrent clients",
  async run(ctx) {
    const { client, state } = ctx.target;
    const repo = repoName(ctx, "small");
    const tag = (i: number) => `i${String(i).padStart(4, "0")}`;
    const requestsBefore = client.requests;
    const started = now();
    await pool(ctx.sizes.imageWorkers, images.length, (i) =>
      pushImage(client, repo, tag(i), images[i] as Image),
    );
    const seconds = now() - started;
    const requests = client.requests - requestsBefore;
    // untimed: every tag resolves to its manifest and a layer of each image is there
    await pool(ctx.sizes.imageWorkers, images.length, async (i) => {
      const image = images[i] as Image;
      await getManifestVerified(client, repo, tag(i), image);
      const layer = image.layers[1];
      if (layer) await headBlob(client, repo, layer.digest, layer.data.length);
    });
    state.smallRepo = repo;
    state.smallTag = tag(0);
    state.smallImage = images[0];
    ctx.details.images = images.length;
    ctx.details.workers = ctx.sizes.imageWorkers;
    ctx.details.requests = requests;
    ctx.details.seconds = seconds;
    ctx.figure("small_images", images.length / seconds, "images/s", "bench");
    ctx.figure("small_images_req_rate", requests / seconds, "req/s", "bench", true);
  },
};
