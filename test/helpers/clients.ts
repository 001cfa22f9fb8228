import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

/** CI must exercise every client, so there a missing binary fails instead of skipping. */
export const inCI = ["", "0", "false"].includes(process.env.CI ?? "") === false;

export const CLIENT_TIMEOUT_MS = 120_000;

export function findBinary(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Options for `test()`/`describe()`: skipped, naming the missing clients, unless CI is set;
 * in CI the test runs and `runClient` fails it with the same message.
 */
export function requireClients(...names: string[]): { skip?: string } {
  const missing = names.filter((name) => findBinary(name) === undefined);
  if (missing.length === 0 || inCI) return {};
  return { skip: `${missing.join(", ")} not installed` };
}

export interface ClientResult {
  stdout: string;
  stderr: string;
  code: number;
}

export interface ClientOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Resolve with a non-zero exit instead of throwing, for calls expected to fail. */
  allowFailure?: boolean;
  /** Run under `unshare -m` after this shell snippet (e.g. mounting a private tmpfs). */
  mountSetup?: string;
}

export class ClientError extends Error {
  constructor(
    message: string,
    readonly result?: ClientResult,
  ) {
    super(message);
  }
}

/** Runs a client to completion within a deadline, failing with its stderr and stdout shown. */
export function runClient(name: string, args: string[], options: ClientOptions = {}): Promise<ClientResult> {
  const bin = findBinary(name);
  if (bin === undefined) {
    return Promise.reject(
      new ClientError(`${name} not installed${inCI ? " (required because CI is set)" : ""}`),
    );
  }
  let file = bin;
  let argv = args;
  if (options.mountSetup !== undefined) {
    const unshare = findBinary("unshare");
    if (unshare === undefined) return Promise.reject(new ClientError("unshare not installed"));
    file = unshare;
    argv = [
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-ec",
      `${options.mountSetup}\nexec "$@"`,
      "sh",
      bin,
      ...args,
    ];
  }
  const timeoutMs = options.timeoutMs ?? CLIENT_TIMEOUT_MS;
  const shown = [name, ...args].map(quote).join(" ");

  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new ClientError(`${shown}: ${error.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result = {
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        code: code ?? -1,
      };
      const output = `\n--- stderr ---\n${result.stderr.trimEnd()}\n--- stdout ---\n${result.stdout.trimEnd()}`;
      if (timedOut) {
        reject(new ClientError(`${shown} timed out after ${timeoutMs} ms${output}`, result));
      } else if (code !== 0 && !options.allowFailure) {
        reject(new ClientError(`${shown} exited with ${code ?? signal}${output}`, result));
      } else {
        resolve(result);
      }
    });
  });
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}
