/**
 * Measures the server's peak memory (VmHWM) while a large blob is pushed and pulled, to show that
 * blobs stream (DESIGN.md invariant 7). Starts berth as a child process on a free port.
 *
 *   node dist/bench/large-blob-memory.js [--size-mib 1024]
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

const sizeMiB = Number(process.argv[process.argv.indexOf("--size-mib") + 1] || 1024) || 1024;
const chunk = randomBytes(1024 * 1024);

function blobStream(): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent === sizeMiB) this.push(null);
      else {
        sent++;
        this.push(chunk);
      }
    },
  });
}

async function rssKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { rss: field("VmRSS"), hwm: field("VmHWM") };
}

async function main(): Promise<void> {
  const dataDir = await mkdtemp(join(tmpdir(), "berth-mem-"));
  const cli = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  const server = spawn(
    process.execPath,
    [cli, "serve", "--listen", "127.0.0.1:0", "--data", dataDir, "--log-level", "info"],
    {
      env: { ...process.env, BERTH_LOG_FORMAT: "json" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const address = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    server.stdout.on("data", (data: Buffer) => {
      buffered += data.toString();
      const match = /"address":"([^"]+)"/.exec(buffered);
      if (match?.[1]) resolve(match[1]);
    });
    server.on("exit", (code) => reject(new Error(`berth exited with ${code}`)));
  });
  const base = `http://${address}`;
  const pid = server.pid ?? 0;
  let peakDuring = 0;
  const sampler = setInterval(() => {
    rssKiB(pid).then(
      (m) => {
        peakDuring = Math.max(peakDuring, m.rss);
      },
      () => undefined,
    );
  }, 50);
  try {
    const idle = await rssKiB(pid);
    const hash = createHash("sha256");
    for (let i = 0; i < sizeMiB; i++) hash.update(chunk);
    const digest = `sha256:${hash.digest("hex")}`;

    let started = Date.now();
    const post = await fetch(`${base}/v2/mem/test/blobs/uploads/`, { method: "POST" });
    const location = post.headers.get("location") ?? "";
    const patch = await fetch(new URL(location, base), {
      method: "PATCH",
      body: Readable.toWeb(blobStream()) as ReadableStream,
      duplex: "half",
    } as RequestInit);
    if (patch.status !== 202) throw new Error(`PATCH answered ${patch.status}`);
    const put = await fetch(new URL(`${location}?digest=${digest}`, base), { method: "PUT" });
    if (put.status !== 201) throw new Error(`PUT answered ${put.status}: ${await put.text()}`);
    const pushSeconds = (Date.now() - started) / 1000;
    const afterPush = await rssKiB(pid);

    started = Date.now();
    const get = await fetch(`${base}/v2/mem/test/blobs/${digest}`);
    const pulled = createHash("sha256");
    let bytes = 0;
    for await (const part of get.body as unknown as AsyncIterable<Uint8Array>) {
      pulled.update(part);
      bytes += part.length;
    }
    const pullSeconds = (Date.now() - started) / 1000;
    if (`sha256:${pulled.digest("hex")}` !== digest || bytes !== sizeMiB * 1024 * 1024) {
      throw new Error("pulled blob does not match");
    }
    const end = await rssKiB(pid);
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    console.log(
      JSON.stringify(
        {
          blobMiB: sizeMiB,
          pushMiBps: Number((sizeMiB / pushSeconds).toFixed(1)),
          pullMiBps: Number((sizeMiB / pullSeconds).toFixed(1)),
          rssIdleMiB: Number(mib(idle.rss)),
          rssAfterPushMiB: Number(mib(afterPush.rss)),
          rssPeakSampledMiB: Number(mib(peakDuring)),
          vmHwmMiB: Number(mib(end.hwm)),
        },
        null,
        2,
      ),
    );
  } finally {
    clearInterval(sampler);
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
