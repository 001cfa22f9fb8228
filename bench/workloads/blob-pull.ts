/**
 * Pull of the big blob pushed by push_mono: once hashing every received byte (verified), once
 * discarding them (unverified), and repeated 1 MiB Range reads from the middle.
 */
import { open } from "node:fs/promises";
import { CheckError, check, MiB, median, now, type Workload } from "../core.js";
import { sha256Digest } from "../oci.js";

export const pullBlob: Workload = {
  name: "pull",
  description:
    "GET of the big blob with sha256 of the received bytes, again without hashing, and 1 MiB Range GETs",
  async run(ctx) {
    const { mono } = ctx.data;
    const { client, state } = ctx.target;
    if (!state.monoRepo) throw new CheckError("needs the blob of push_mono, which failed");
    const path = `/v2/${state.monoRepo}/blobs/${mono.digest}`;

    let started = now();
    const verified = await client.request("GET", path, { sink: "hash", timeoutMs: 180_000 });
    const verifiedSeconds = now() - started;
    check(verified.status === 200, `GET blob answered ${verified.status}, want 200`);
    check(verified.bytes === mono.size, `GET blob: ${verified.bytes} bytes, want ${mono.size}`);
    check(`sha256:${verified.sha256}` === mono.digest, "GET blob: sha256 of the received bytes differs");

    started = now();
    const unverified = await client.request("GET", path, { sink: "discard", timeoutMs: 180_000 });
    const unverifiedSeconds = now() - started;
    check(unverified.status === 200, `GET blob (unverified) answered ${unverified.status}`);
    check(
      unverified.bytes === mono.size,
      `GET blob (unverified): ${unverified.bytes} bytes, want ${mono.size}`,
    );

    const start = Math.floor(mono.size / 2) - MiB / 2;
    const end = start + MiB - 1;
    const expected = Buffer.alloc(MiB);
    const handle = await open(mono.file, "r");
    try {
      await handle.read(expected, 0, MiB, start);
    } finally {
      await handle.close();
    }
    const expectedDigest = sha256Digest(expected);
    const times: number[] = [];
    for (let i = 0; i < ctx.sizes.rangeReads; i++) {
      started = now();
      const res = await client.request("GET", path, { headers: { range: `bytes=${start}-${end}` } });
      times.push((now() - started) * 1000);
      check(res.status === 206, `Range GET answered ${res.status}, want 206`);
      const contentRange = res.headers["content-range"];
      check(
        contentRange === `bytes ${start}-${end}/${mono.size}`,
        `Range GET: Content-Range ${contentRange}`,
      );
      check(res.body.length === MiB && sha256Digest(res.body) === expectedDigest, "Range GET: wrong bytes");
    }
    ctx.details.bytes = mono.size;
    ctx.details.verified_seconds = verifiedSeconds;
    ctx.details.unverified_seconds = unverifiedSeconds;
    ctx.details.range_ms = times;
    ctx.figure("pull_verified", mono.size / MiB / verifiedSeconds, "MiB/s", "bench");
    ctx.figure("pull_unverified", mono.size / MiB / unverifiedSeconds, "MiB/s", "bench");
    ctx.figure("range_1mib", median(times) ?? 0, "ms", "bench", true);
  },
};
