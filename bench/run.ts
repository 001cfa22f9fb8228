/**
 * berth's benchmark suite: `npm run bench -- [options]` (see --help and docs/benchmarks.md).
 *
 * Runs the workloads against berth (started here from dist/) or any --url, and optionally against
 * a second registry (--vs URL, or --vs distribution to start Debian's docker-registry), alternating
 * between the two workload by workload, then prints medians, ratios and PASS/MISS per target and
 * writes everything to JSON.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, release, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import {
  CheckError,
  type Figure,
  log,
  MiB,
  now,
  round,
  type SharedData,
  type Sizes,
  sleep,
  type Target,
  type Tool,
  type Workload,
} from "./core.js";
import { HttpClient } from "./http.js";
import { ensureBlobFile } from "./oci.js";
import {
  busyCores,
  CLOCK_TICKS,
  type RegistryProcess,
  selfCpuTicks,
  startBerth,
  startDistribution,
  startedChildren,
  systemCpu,
} from "./registry-process.js";
import {
  type RunRecord,
  renderMarkdown,
  renderResources,
  renderTable,
  summarize,
  summarizeResources,
  type TargetRun,
} from "./report.js";
import { pullBlob } from "./workloads/blob-pull.js";
import { memoryProbe, pushChunked, pushMono } from "./workloads/blob-push.js";
import { ddWrite } from "./workloads/disk.js";
import { blobHead, manifestGet, manifestHead, tagsList } from "./workloads/request-rate.js";
import { prepareSkopeo, skopeoRoundTrip } from "./workloads/skopeo.js";
import { prepareSmallImages, pushSmallImages } from "./workloads/small-images.js";

const WORKLOADS: Workload[] = [
  memoryProbe,
  pushMono,
  pushChunked,
  pullBlob,
  pushSmallImages,
  manifestGet,
  manifestHead,
  blobHead,
  tagsList,
  skopeoRoundTrip,
];

const HELP = `npm run bench -- [options]

  --url URL          registry to measure (default: start berth from dist/ on a free loopback port)
  --vs URL|distribution
                     also measure a second registry in the same run; "distribution" starts
                     Debian's docker-registry (filesystem storage in a temp dir) and stops it after
  --runs N           repeat N times (fresh storage for started registries) and report medians (1)
  --quick            smoke run: 64 MiB blob, 2 s load runs, fewer images and tags
  --out FILE         JSON result (default .bench/bench-<time>.json); a .md table is written next to it
  --only a,b         run only these workloads (${WORKLOADS.map((w) => w.name).join(", ")})
  --data-dir DIR     where the random test blobs are cached (default <tmp>/berth-bench-data)
  --blob-mib N       big blob size (512, quick 64)
  --load-seconds N   wrk/ab run length (10, quick 2)
  --berth-cli PATH   berth entry point to start (default: this checkout's dist/src/cli/main.js)
  --help
Only loopback registries are accepted. Exit status: 0 all workloads ran, 1 some failed, 2 setup error.`;

interface Options {
  url: string | undefined;
  vs: string | undefined;
  runs: number;
  quick: boolean;
  out: string;
  only: string[] | null;
  dataDir: string;
  berthCli: string | undefined;
  sizes: Sizes;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      url: { type: "string" },
      vs: { type: "string" },
      runs: { type: "string", default: "1" },
      quick: { type: "boolean", default: false },
      out: { type: "string" },
      only: { type: "string" },
      "data-dir": { type: "string" },
      "blob-mib": { type: "string" },
      "load-seconds": { type: "string" },
      "berth-cli": { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    process.exit(0);
  }
  const quick = values.quick ?? false;
  const positive = (text: string | undefined, fallback: number, name: string) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1)
      throw new CheckError(`--${name} wants a positive integer, got ${text}`);
    return n;
  };
  const blobMiB = positive(values["blob-mib"], quick ? 64 : 512, "blob-mib");
  const sizes: Sizes = {
    blobBytes: blobMiB * MiB,
    chunkBytes: 16 * MiB,
    probeBlobBytes: Math.max(1, Math.floor(blobMiB / 8)) * MiB,
    images: quick ? 50 : 200,
    imageWorkers: 16,
    tags: quick ? 200 : 1000,
    loadSeconds: positive(values["load-seconds"], quick ? 2 : 10, "load-seconds"),
    loadConnections: 64,
    wrkThreads: 2,
    skopeoLayers: quick ? 3 : 5,
    skopeoLayerBytes: (quick ? 1 : 8) * MiB,
    rangeReads: 9,
    ddMiB: blobMiB,
    settleSeconds: quick ? 5 : 20,
  };
  const only = values.only ? values.only.split(",").map((s) => s.trim()) : null;
  for (const name of only ?? []) {
    if (!WORKLOADS.some((w) => w.name === name)) throw new CheckError(`unknown workload ${name}`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return {
    url: values.url,
    vs: values.vs,
    runs: positive(values.runs, 1, "runs"),
    quick,
    out: resolve(values.out ?? join(".bench", `bench-${stamp}${quick ? "-quick" : ""}.json`)),
    only,
    dataDir: values["data-dir"] ?? join(tmpdir(), "berth-bench-data"),
    berthCli: values["berth-cli"] ? resolve(values["berth-cli"]) : undefined,
    sizes,
  };
}

// ------------------------------------------------------------------ targets

interface TargetSpec {
  name: string;
  kind: "berth" | "distribution" | "url";
  url?: URL;
}

function targetSpecs(options: Options): TargetSpec[] {
  const specs: TargetSpec[] = [];
  if (options.url) specs.push({ name: "registry", kind: "url", url: new URL(options.url) });
  else specs.push({ name: "berth", kind: "berth" });
  if (options.vs === "distribution") specs.push({ name: "distribution", kind: "distribution" });
  else if (options.vs) specs.push({ name: "vs", kind: "url", url: new URL(options.vs) });
  return specs;
}

async function startTarget(spec: TargetSpec, berthCli: string | undefined): Promise<Target> {
  let proc: RegistryProcess | null = null;
  let base: URL;
  if (spec.kind === "berth") proc = await startBerth(100, berthCli);
  else if (spec.kind === "distribution") proc = await startDistribution(100);
  if (proc) base = proc.url;
  else if (spec.url) base = new URL(spec.url.origin);
  else throw new CheckError(`no URL for ${spec.name}`);
  const client = new HttpClient(base);
  const res = await client.request("GET", "/v2/");
  if (res.status !== 200) {
    await proc?.stop();
    throw new CheckError(`${spec.name}: GET /v2/ answered ${res.status}; anonymous push/pull is required`);
  }
  const label = proc
    ? `${proc.version} (pid ${proc.pid}, ${base.host})`
    : `${base.host} (not started by the bench)`;
  log(`${spec.name}: ${label}`);
  return { name: spec.name, label, base, client, process: proc, state: {} };
}

// ------------------------------------------------------------------ settling between workloads

function dirtyMiB(): number {
  const meminfo = readFileSync("/proc/meminfo", "utf8");
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(meminfo)?.[1] ?? 0);
  return (kib("Dirty") + kib("Writeback")) / 1024;
}

/**
 * Before each measurement, wait (at most maxSeconds in all) until the kernel has written back what
 * the previous workload left dirty and then for a 1 s window in which the machine is quiet
 * (< 0.3 busy cores: other jobs share it).
 */
async function settle(maxSeconds: number): Promise<{ settle_s: number; busy_cores_before: number }> {
  const started = now();
  while (dirtyMiB() > 64 && now() - started < maxSeconds) await sleep(100);
  let busy = 0;
  do {
    const before = systemCpu();
    await sleep(1000);
    busy = busyCores(before, systemCpu());
  } while (busy >= 0.3 && now() - started < maxSeconds);
  return { settle_s: round(now() - started, 2), busy_cores_before: round(busy, 2) };
}

// ------------------------------------------------------------------ one workload on one target

async function runWorkload(
  workload: Workload,
  target: Target,
  record: TargetRun,
  options: Options,
  data: SharedData,
  runTag: string,
  workDir: string,
): Promise<void> {
  const settled = await settle(options.sizes.settleSeconds);
  const figures: Record<string, Figure> = {};
  const details: Record<string, unknown> = {};
  const sampler = target.process?.sampler;
  const mark = sampler?.phaseBegin();
  const started = now();
  const machineBefore = systemCpu();
  const benchBefore = selfCpuTicks();
  let error: string | null = null;
  try {
    await workload.run({
      target,
      sizes: options.sizes,
      data,
      runTag,
      workDir,
      details,
      figure(key: string, value: number, unit: string, tool: Tool, info?: boolean) {
        figures[key] = { value: round(value, unit === "ms" || unit === "s" ? 3 : 1), unit, tool, info };
      },
    });
  } catch (e) {
    error = e instanceof CheckError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
  }
  const wall = now() - started;
  const machine = busyCores(machineBefore, systemCpu());
  const benchCpu = (selfCpuTicks() - benchBefore) / CLOCK_TICKS;
  const server = mark && sampler ? sampler.phaseEnd(mark) : null;
  const resources: Record<string, number> = {
    wall_s: round(wall, 2),
    ...(server ?? {}),
    bench_cpu_s: round(benchCpu, 2),
    machine_busy_cores: round(machine, 2),
  };
  if (server && wall > 0) {
    // CPU used by neither this registry nor the bench and its generators (other jobs, writeback)
    resources.other_busy_cores = round(Math.max(0, machine - (server.server_cpu_s + benchCpu) / wall), 2);
  }
  if (error !== null) {
    record.failures[workload.name] = error.split("\n")[0] ?? error;
    log(`  ${target.name.padEnd(12)} ${workload.name}: FAIL ${error.split("\n")[0]}`);
  } else {
    Object.assign(record.figures, figures);
    const text = Object.entries(figures)
      .map(([k, f]) => `${k} ${f.value} ${f.unit}`)
      .join(", ");
    log(`  ${target.name.padEnd(12)} ${workload.name}: ${text || "ok"}`);
  }
  record.workloads[workload.name] = {
    ok: error === null,
    ...(error !== null ? { error } : {}),
    figures,
    details,
    resources: { ...resources, ...settled },
  };
}

/** Peak memory and its growth from the probe blob to the big blob (needs a started process). */
function memoryFigures(target: Target, record: TargetRun): void {
  const sampler = target.process?.sampler;
  if (!sampler) return;
  sampler.sample();
  const hwmMiB = sampler.hwmKiB() / 1024;
  const sampledMiB = sampler.peakKiB / 1024;
  record.figures.server_rss_peak = {
    value: round(Math.max(hwmMiB, sampledMiB), 1),
    unit: "MiB",
    tool: "proc",
  };
  const phasePeak = (name: string) => {
    const w = record.workloads[name] as
      | { ok: boolean; resources: { server_rss_peak_mib?: number } }
      | undefined;
    return w?.ok ? (w.resources.server_rss_peak_mib ?? null) : null;
  };
  const probe = phasePeak("memory_probe");
  const big = ["push_mono", "push_chunked", "pull"].map(phasePeak);
  record.workloads.memory = {
    ok: true,
    details: {
      vmhwm_main_mib: round(hwmMiB, 1),
      sampled_peak_mib: round(sampledMiB, 1),
      samples: sampler.samples,
      processes: sampler.processes,
      probe_phase_peak_mib: probe,
      big_blob_phase_peaks_mib: big,
    },
  };
  const needed = ["memory_probe", "push_mono", "push_chunked", "pull"];
  if (!needed.every((name) => name in record.workloads)) return; // not all selected with --only
  if (probe !== null && big.every((v) => v !== null)) {
    const bigPeak = Math.max(...(big as number[]));
    record.figures.rss_growth = { value: round(bigPeak - probe, 1), unit: "MiB", tool: "proc" };
  } else {
    record.failures.memory = "memory_probe or a big-blob workload failed: no growth figure";
  }
}

// ------------------------------------------------------------------ main

function toolVersion(command: string, args: string[]): string | null {
  const res = spawnSync(command, args, { encoding: "utf8" });
  if (res.error) return null;
  const text = `${res.stdout ?? ""}${res.stderr ?? ""}`.trim();
  const line = text.split("\n").find((l) => /version|wrk|skopeo|dd/i.test(l)) ?? text.split("\n")[0];
  return line?.trim() ?? null;
}

async function main(): Promise<number> {
  const options = parseOptions();
  const specs = targetSpecs(options);
  const names = specs.map((s) => s.name);
  const workloads = options.only ? WORKLOADS.filter((w) => options.only?.includes(w.name)) : WORKLOADS;
  const invocation = Date.now().toString(36);
  const workDir = await mkdtemp(join(tmpdir(), "berth-bench-work-"));
  const sizes = options.sizes;
  log(
    `berth bench ${options.quick ? "(quick) " : ""}${names.join(" vs ")}, ${options.runs} run(s), ` +
      `blob ${sizes.blobBytes / MiB} MiB, load runs ${sizes.loadSeconds} s`,
  );
  const data: SharedData = {
    mono: await ensureBlobFile(options.dataDir, "mono", sizes.blobBytes),
    chunked: await ensureBlobFile(options.dataDir, "chunked", sizes.blobBytes),
    probe: await ensureBlobFile(options.dataDir, "probe", sizes.probeBlobBytes),
  };
  const meta = {
    date: new Date().toISOString(),
    command: process.argv.slice(2).join(" "),
    quick: options.quick,
    runs: options.runs,
    sizes,
    host: {
      cpus: cpus().length,
      cpu_model: cpus()[0]?.model,
      mem_gib: round(totalmem() / 2 ** 30, 1),
      kernel: release(),
      node: process.version,
      loadavg_start: loadavg(),
    },
    tools: {
      wrk: toolVersion("wrk", ["-v"]),
      ab: toolVersion("ab", ["-V"]),
      skopeo: toolVersion("skopeo", ["--version"]),
      docker_registry: specs.some((s) => s.kind === "distribution")
        ? toolVersion("docker-registry", ["--version"])
        : null,
    },
    targets: {} as Record<string, unknown>,
    workloads: Object.fromEntries(workloads.map((w) => [w.name, w.description])),
  };

  const runs: RunRecord[] = [];
  let external: Target[] | null = null;
  try {
    for (let run = 1; run <= options.runs; run++) {
      log(`== run ${run}/${options.runs}`);
      const runTag = `${invocation}-${run}`;
      const runDir = join(workDir, `run${run}`);
      await mkdir(runDir, { recursive: true });
      prepareSmallImages(sizes.images);
      await prepareSkopeo(runDir, sizes.skopeoLayers, sizes.skopeoLayerBytes);
      const targets: Target[] = [];
      try {
        for (const spec of specs) {
          const reuse = spec.kind === "url" ? external?.find((t) => t.name === spec.name) : undefined;
          const target = reuse ?? (await startTarget(spec, options.berthCli));
          target.state = {};
          targets.push(target);
          meta.targets[spec.name] = {
            label: target.label,
            url: target.base.toString(),
            command: target.process?.command ?? null,
            version: target.process?.version ?? null,
          };
        }
        external = targets.filter((t) => !t.process);
        const record: RunRecord = { run, order: [], targets: {} };
        for (const t of targets) record.targets[t.name] = { figures: {}, failures: {}, workloads: {} };

        // durable disk write rate in the same run, in the (first) started registry's data dir
        const ddDir = targets.find((t) => t.process)?.process?.dataDir ?? runDir;
        await mkdir(ddDir, { recursive: true });
        try {
          const dd = await ddWrite(ddDir, sizes.ddMiB);
          log(`  dd ${dd.mib} MiB fdatasync: ${round(dd.mibPerSecond, 1)} MiB/s (${dd.ddReport})`);
          for (const t of targets) {
            const r = record.targets[t.name] as TargetRun;
            r.figures.dd_fdatasync = { value: round(dd.mibPerSecond, 1), unit: "MiB/s", tool: "dd" };
            r.workloads.dd = { ok: true, details: dd };
          }
        } catch (e) {
          for (const t of targets) (record.targets[t.name] as TargetRun).failures.dd = String(e);
        }

        for (const [index, workload] of workloads.entries()) {
          // alternate which registry goes first, per workload and per run
          const order = (run + index) % 2 === 1 ? targets : [...targets].reverse();
          record.order.push(`${workload.name}: ${order.map((t) => t.name).join(",")}`);
          for (const target of order) {
            await runWorkload(
              workload,
              target,
              record.targets[target.name] as TargetRun,
              options,
              data,
              runTag,
              runDir,
            );
          }
        }
        for (const target of targets) {
          const r = record.targets[target.name] as TargetRun;
          memoryFigures(target, r);
          const push = r.figures.push_mono;
          const dd = r.figures.dd_fdatasync;
          if (push && dd)
            r.figures.push_mono_vs_dd = {
              value: round(push.value / dd.value, 2),
              unit: "fraction",
              tool: "dd",
            };
          if (target.process) {
            const alive = target.process.sampler.samples > 0;
            if (!alive) r.failures.memory = "no memory samples";
          }
        }
        runs.push(record);
      } finally {
        for (const target of targets) {
          if (target.process) {
            await target.process.stop();
            await rm(target.process.logFile, { force: true });
            target.client.close();
          }
        }
      }
      await rm(runDir, { recursive: true, force: true });
    }
  } finally {
    for (const t of external ?? []) t.client.close();
    await rm(workDir, { recursive: true, force: true });
  }

  const rows = summarize(runs, names, sizes);
  const ran = workloads.map((w) => w.name);
  const resources = summarizeResources(runs, names, ran);
  const table = renderTable(rows, names, runs.length);
  process.stdout.write(
    `\n${table}\n\nserver CPU seconds, wall seconds and RSS peak per workload (medians):\n`,
  );
  process.stdout.write(`${renderResources(resources, names, false)}\n`);

  const failed = runs.some((r) => Object.values(r.targets).some((t) => Object.keys(t.failures).length > 0));
  (meta.host as Record<string, unknown>).loadavg_end = loadavg();
  await mkdir(dirname(options.out), { recursive: true });
  await writeFile(
    options.out,
    `${JSON.stringify({ meta, ok: !failed, summary: rows, resources, runs }, null, 2)}\n`,
  );
  const markdown = `${renderMarkdown(rows, names)}\n\n${renderResources(resources, names, true)}\n`;
  const mdFile = `${options.out.replace(/\.json$/, "")}.md`;
  await writeFile(mdFile, markdown);
  process.stdout.write(
    `\n${failed ? "SOME WORKLOADS FAILED" : "all workloads ran"}; wrote ${options.out} and ${mdFile}\n`,
  );
  return failed ? 1 : 0;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    for (const child of startedChildren) child.kill("SIGKILL");
    process.stderr.write(`bench: ${signal}, stopped the registries it started\n`);
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof CheckError ? error.message : String(error)}\n`);
    if (!(error instanceof CheckError) && error instanceof Error) process.stderr.write(`${error.stack}\n`);
    process.exitCode = 2;
  },
);
