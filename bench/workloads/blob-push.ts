/**
 * Large-blob uploads: a smaller probe blob (the baseline for "memory flat in blob size"), the
 * monolithic POST + PUT of the big blob, and the same size pushed as 16 MiB PATCH chunks.
 */
import { check, MiB, now, repoName, type Workload, type WorkloadContext } from "../core.js";
import { bodyExcerpt } from "../http.js";
import { fileBody, finishUpload, headBlob, startUpload } from "../oci.js";

async function monolithic(ctx: WorkloadContext, repo: string, blob: WorkloadContext["data"]["mono"]) {
  const started = now();
  const location = await startUpload(ctx.target.client, repo);
  await finishUpload(ctx.target.client, location, blob.digest, fileBody(blob.file), blob.size);
  const seconds = now() - started;
  await headBlob(ctx.target.client, repo, blob.digest, blob.size);
  return seconds;
}

export const memoryProbe: Workload = {
  name: "memory_probe",
  description: "push + verified pull of a blob 1/8 the big size: baseline server RSS for the flatness check",
  async run(ctx) {
    const { probe } = ctx.data;
    const repo = repoName(ctx, "probe");
    const seconds = await monolithic(ctx, repo, probe);
    const res = await ctx.target.client.request("GET", `/v2/${repo}/blobs/${probe.digest}`, {
      sink: "hash",
      timeoutMs: 180_000,
    });
    check(res.status === 200, `GET probe blob answered ${res.status}`);
    check(
      `sha256:${res.sha256}` === probe.digest && res.bytes === probe.size,
      "GET probe blob: content mismatch",
    );
    ctx.details.bytes = probe.size;
    ctx.details.push_seconds = seconds;
  },
};

export const pushMono: Workload = {
  name: "push_mono",
  description: "POST /blobs/uploads/ then one PUT ?digest= streaming the whole big blob",
  async run(ctx) {
    const { mono } = ctx.data;
    const repo = repoName(ctx, "mono");
    const seconds = await monolithic(ctx, repo, mono);
    ctx.target.state.monoRepo = repo;
    ctx.details.bytes = mono.size;
    ctx.details.seconds = seconds;
    ctx.figure("push_mono", mono.size / MiB / seconds, "MiB/s", "bench");
  },
};

export const pushChunked: Workload = {
  name: "push_chunked",
  description: "the same size as sequential PATCH chunks (Content-Range), then PUT ?digest=",
  async run(ctx) {
    const { chunked } = ctx.data;
    const { client } = ctx.target;
    const repo = repoName(ctx, "chunked");
    const chunk = ctx.sizes.chunkBytes;
    const started = now();
    let location = await startUpload(client, repo);
    let count = 0;
    for (let start = 0; start < chunked.size; start += chunk) {
      const end = Math.min(start + chunk, chunked.size) - 1;
      const res = await client.request("PATCH", location, {
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${start}-${end}`,
          "content-length": String(end - start + 1),
        },
        body: fileBody(chunked.file, start, end),
        timeoutMs: 120_000,
      });
      check(res.status === 202, `PATCH chunk ${count} answered ${res.status}, want 202 ${bodyExcerpt(res)}`);
      const range = res.headers.range;
      check(
        range === `0-${end}` || range === `bytes=0-${end}`,
        `PATCH chunk ${count}: Range ${range}, want 0-${end}`,
      );
      check(res.headers.location, `PATCH chunk ${count}: no Location`);
      location = client.resolve(res.headers.location);
      count++;
    }
    await finishUpload(client, location, chunked.digest);
    const seconds = now() - started;
    await headBlob(client, repo, chunked.digest, chunked.size);
    ctx.details.bytes = chunked.size;
    ctx.details.chunks = count;
    ctx.details.seconds = seconds;
    ctx.figure("push_chunked", chunked.size / MiB / seconds, "MiB/s", "bench");
  },
};
