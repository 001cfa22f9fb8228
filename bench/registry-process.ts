/**
 * Starting and stopping the registries under test (berth from dist/, or Debian's docker-registry
 * for CNCF Distribution) with fresh storage, and sampling their memory and CPU from /proc.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CheckError, round, sleep } from "./core.js";

export interface RegistryProcess {
  kind: "berth" | "distribution";
  pid: number;
  url: URL;
  dataDir: string;
  /** Everything the process wrote to stdout/stderr. */
  logFile: string;
  version: string;
  command: string;
  sampler: ProcSampler;
  stop(): Promise<void>;
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitReady(child: ChildProcess, url: URL, logFile: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const res = await fetch(new URL("/v2/", url), { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  let tail = "";
  try {
    tail = readFileSync(logFile, "utf8").split("\n").slice(-5).join(" | ");
  } catch {
    // no log
  }
  child.kill("SIGKILL");
  throw new CheckError(`registry at ${url} did not become ready (${exited ? "exited" : "timeout"}): ${tail}`);
}

/** Children started by the bench, killed on SIGINT/SIGTERM of the bench. */
export const startedChildren = new Set<ChildProcess>();

function stopper(child: ChildProcess, dataDir: string, sampler: ProcSampler): () => Promise<void> {
  startedChildren.add(child);
  return async () => {
    startedChildren.delete(child);
    sampler.stop();
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  };
}

/** berth from this checkout's build output, on a free loopback port with a fresh data dir. */
export async function startBerth(sampleMs: number, cliPath?: string): Promise<RegistryProcess> {
  const cli = cliPath ?? fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
  if (!existsSync(cli)) throw new CheckError(`berth CLI ${cli} not found: build first (npm run build)`);
  const dataDir = await mkdtemp(join(tmpdir(), "berth-bench-berth-"));
  const port = await freeLoopbackPort();
  const logFile = join(dataDir, "..", `${dataDir.split("/").pop()}.log`);
  const out = openSync(logFile, "w");
  const args = [
    cli,
    "serve",
    "--listen",
    `127.0.0.1:${port}`,
    "--data",
    join(dataDir, "data"),
    "--log-level",
    "warn",
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", out, out] });
  const url = new URL(`http://127.0.0.1:${port}`);
  await waitReady(child, url, logFile);
  const pid = child.pid ?? 0;
  const sampler = new ProcSampler(pid, sampleMs);
  sampler.start();
  let version = "berth";
  try {
    const pkg = JSON.parse(readFileSync(join(dirname(cli), "..", "..", "..", "package.json"), "utf8"));
    version = `berth ${pkg.version} (node ${process.version}${cliPath ? `, ${cli}` : ""})`;
  } catch {
    // keep the plain name
  }
  return {
    kind: "berth",
    pid,
    url,
    dataDir: join(dataDir, "data"),
    logFile,
    version,
    command: `node ${args.join(" ")}`,
    sampler,
    stop: stopper(child, dataDir, sampler),
  };
}

/** CNCF Distribution (Debian package docker-registry): filesystem storage, deletes on, log warn. */
export async function startDistribution(
  sampleMs: number,
  binary = "docker-registry",
): Promise<RegistryProcess> {
  const which = spawnSync(binary, ["--version"], { encoding: "utf8" });
  if (which.error || which.status !== 0) {
    throw new CheckError(`${binary} not found: apt-get install -y docker-registry`);
  }
  const dataDir = await mkdtemp(join(tmpdir(), "berth-bench-distribution-"));
  const port = await freeLoopbackPort();
  const config = join(dataDir, "config.yml");
  const storage = join(dataDir, "data");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log:",
      "  level: warn",
      "  accesslog:",
      "    disabled: true",
      "storage:",
      "  filesystem:",
      `    rootdirectory: ${storage}`,
      "  delete:",
      "    enabled: true",
      "  cache:",
      "    blobdescriptor: inmemory",
      "http:",
      `  addr: 127.0.0.1:${port}`,
      "",
    ].join("\n"),
  );
  const logFile = join(dataDir, "..", `${dataDir.split("/").pop()}.log`);
  const out = openSync(logFile, "w");
  const child = spawn(binary, ["serve", config], { stdio: ["ignore", out, out] });
  const url = new URL(`http://127.0.0.1:${port}`);
  await waitReady(child, url, logFile);
  const pid = child.pid ?? 0;
  const sampler = new ProcSampler(pid, sampleMs);
  sampler.start();
  return {
    kind: "distribution",
    pid,
    url,
    dataDir: storage,
    logFile,
    version: which.stdout.trim().split("\n")[0] ?? binary,
    command: `${binary} serve ${config}`,
    sampler,
    stop: stopper(child, dataDir, sampler),
  };
}

// ------------------------------------------------------------------ /proc sampling

export const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout) || 100;

/** utime+stime of the process plus cutime+cstime of its waited-for children, in ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
}

/** CPU ticks of this bench process, including its finished children (wrk, ab, skopeo, dd). */
export function selfCpuTicks(): number {
  return cpuTicks(process.pid);
}

/** Busy cores of the whole machine between two /proc/stat readings. */
export function busyCores(a: { idle: number; total: number }, b: { idle: number; total: number }): number {
  const total = b.total - a.total;
  return total > 0 ? ((total - (b.idle - a.idle)) / total) * cpus().length : 0;
}

function statusKiB(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) : 0;
}

/** The process and all its descendants (via /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const result = [pid];
  for (let i = 0; i < result.length; i++) {
    const current = result[i] ?? 0;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${current}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${current}/task/${task}/children`, "utf8").trim();
        for (const child of children.split(/\s+/)) if (child) result.push(Number(child));
      } catch {
        // task gone
      }
    }
  }
  return result;
}

export interface PhaseResources {
  server_cpu_s: number;
  server_rss_peak_mib: number;
}

interface PhaseMark {
  cpu: number;
}

export function systemCpu(): { idle: number; total: number } {
  const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  return { idle, total };
}

/**
 * Samples VmRSS summed over the server's process tree every `ms` milliseconds (overall and per
 * phase peak) and reads CPU time at phase boundaries.
 */
export class ProcSampler {
  peakKiB = 0;
  phasePeakKiB = 0;
  samples = 0;
  lastCpuTicks = 0;
  processes = 1;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly pid: number,
    private readonly ms: number,
  ) {}

  sample(): void {
    let rss = 0;
    let cpu = 0;
    const tree = processTree(this.pid);
    for (const pid of tree) {
      try {
        rss += statusKiB(pid, "VmRSS");
        cpu += cpuTicks(pid);
      } catch {
        // exited between listing and reading
      }
    }
    if (rss === 0) return;
    this.samples++;
    this.processes = tree.length;
    this.lastCpuTicks = cpu;
    this.peakKiB = Math.max(this.peakKiB, rss);
    this.phasePeakKiB = Math.max(this.phasePeakKiB, rss);
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** VmHWM (kernel-tracked peak RSS) of the main server process, in KiB. */
  hwmKiB(): number {
    try {
      return statusKiB(this.pid, "VmHWM");
    } catch {
      return 0;
    }
  }

  phaseBegin(): PhaseMark {
    this.phasePeakKiB = 0;
    this.sample();
    return { cpu: this.lastCpuTicks };
  }

  phaseEnd(mark: PhaseMark): PhaseResources {
    this.sample();
    return {
      server_cpu_s: round((this.lastCpuTicks - mark.cpu) / CLOCK_TICKS, 2),
      server_rss_peak_mib: round(this.phasePeakKiB / 1024, 1),
    };
  }
}
