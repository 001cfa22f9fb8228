/**
 * External load generators and commands: wrk for GET request rates, ApacheBench (ab) for HEAD
 * request rates (stock wrk 4.1.0 never finishes a HEAD response that announces a Content-Length),
 * and a generic child-process runner for skopeo and dd.
 */
import { spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { CheckError, check, now } from "./core.js";

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

export function runCommand(command: string, args: string[], timeoutMs = 600_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const started = now();
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (data: Buffer) => {
      stdout += data.toString();
    });
    child.stderr.on("data", (data: Buffer) => {
      stderr += data.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}${error.message}`, seconds: now() - started });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: now() - started });
    });
  });
}

export interface RateResult {
  tool: "wrk" | "ab";
  command: string;
  requests: number;
  rps: number;
  p50_ms: number | null;
  p99_ms: number;
  max_ms: number | null;
  note?: string;
}

/** wrk duration strings ("812.00us", "1.20ms", "2.00s") to milliseconds. */
function durationMs(text: string): number | null {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!match) return null;
  const unit: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  return Number(match[1]) * (unit[match[2] ?? "ms"] ?? 1);
}

function tail(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ").slice(0, 300);
}

/** `wrk -t<threads> -c<conns> -d<secs>s --latency` GET with extra headers; fails on any error. */
export async function wrkGet(
  url: string,
  headers: Record<string, string>,
  options: { threads: number; connections: number; seconds: number; workDir: string; name: string },
): Promise<RateResult> {
  const script = join(options.workDir, `${options.name}.lua`);
  const lines = [
    'wrk.method = "GET"',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers["${k}"] = "${v}"`),
  ];
  await writeFile(script, `${lines.join("\n")}\n`);
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    "--latency",
    "--timeout",
    "10s",
    "-s",
    script,
    url,
  ];
  const res = await runCommand("wrk", args, options.seconds * 1000 + 60_000);
  check(res.code === 0, `wrk exited ${res.code}: ${tail(res.stderr || res.stdout)} (apt-get install -y wrk)`);
  const out = res.stdout;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\S+)`, "m").exec(out);
    return match?.[1] ? durationMs(match[1]) : null;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  check(Number.isFinite(rps) && requests > 0, `wrk made no requests: ${tail(out)}`);
  check(non2xx === 0, `wrk: ${non2xx} responses with status >= 400`);
  check(socketErrors === 0, `wrk: socket errors (${socket?.[0]})`);
  const p99 = percentile("99");
  check(p99 !== null, "wrk printed no 99% latency");
  const maxMatch = /Latency\s+\S+\s+\S+\s+(\S+)/.exec(out);
  return {
    tool: "wrk",
    command: `wrk ${args.join(" ")}`,
    requests,
    rps,
    p50_ms: percentile("50"),
    p99_ms: p99,
    max_ms: maxMatch?.[1] ? durationMs(maxMatch[1]) : null,
  };
}

/** `ab -i -k -c <conns> -t <secs> -n 10000000` HEAD; fails on failed/non-2xx requests or write errors. */
export async function abHead(
  url: string,
  headers: Record<string, string>,
  options: { connections: number; seconds: number },
): Promise<RateResult> {
  const args = [
    "-i",
    "-k",
    "-c",
    String(options.connections),
    "-t",
    String(options.seconds),
    "-n",
    "10000000",
    ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    url,
  ];
  const res = await runCommand("ab", args, options.seconds * 1000 + 60_000);
  if (res.code === -1) throw new CheckError("ab not found (apt-get install -y apache2-utils)");
  check(res.code === 0, `ab exited ${res.code}: ${tail(res.stderr || res.stdout)}`);
  const out = res.stdout;
  const number = (re: RegExp) => {
    const match = re.exec(out);
    return match ? Number(match[1]) : null;
  };
  const rps = number(/^Requests per second:\s+([\d.]+)/m);
  const requests = number(/^Complete requests:\s+(\d+)/m) ?? 0;
  const failed = number(/^Failed requests:\s+(\d+)/m);
  const non2xx = number(/^Non-2xx responses:\s+(\d+)/m) ?? 0;
  const writeErrors = number(/^Write errors:\s+(\d+)/m) ?? 0;
  const keepAlive = number(/^Keep-Alive requests:\s+(\d+)/m);
  const table = out.slice(Math.max(0, out.indexOf("Percentage of the requests")));
  const percentile = (p: string) => {
    const match = new RegExp(`^\\s+${p}%\\s+(\\d+)`, "m").exec(table);
    return match ? Number(match[1]) : null;
  };
  check(rps !== null && requests > 0, `ab completed no requests: ${tail(out)}`);
  check(failed === 0, `ab: ${failed} failed requests`);
  check(non2xx === 0, `ab: ${non2xx} non-2xx responses`);
  check(writeErrors === 0, `ab: ${writeErrors} write errors`);
  const p99 = percentile("99");
  check(p99 !== null, "ab printed no 99% latency");
  const result: RateResult = {
    tool: "ab",
    command: `ab ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(" ")}`,
    requests,
    rps,
    p50_ms: percentile("50"),
    p99_ms: p99,
    max_ms: percentile("100"),
  };
  if (keepAlive !== null && keepAlive < requests) {
    result.note = `${requests - keepAlive} of ${requests} responses closed the connection (no keep-alive)`;
  }
  return result;
}
