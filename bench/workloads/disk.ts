/**
 * The disk's durable write rate in the same run, as a yardstick for the push figures:
 * `dd if=/dev/zero of=<dir>/ddtest bs=1M count=N conv=fdatasync`, timed end to end.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { check, round } from "../core.js";
import { runCommand } from "../generators.js";

export interface DdResult {
  mib: number;
  seconds: number;
  mibPerSecond: number;
  command: string;
  ddReport: string;
}

export async function ddWrite(dir: string, mib: number): Promise<DdResult> {
  const file = join(dir, "ddtest");
  const args = ["if=/dev/zero", `of=${file}`, "bs=1M", `count=${mib}`, "conv=fdatasync"];
  try {
    const res = await runCommand("dd", args, 600_000);
    check(res.code === 0, `dd exited ${res.code}: ${res.stderr.trim().slice(-200)}`);
    return {
      mib,
      seconds: round(res.seconds, 3),
      mibPerSecond: mib / res.seconds,
      command: `dd ${args.join(" ")}`,
      ddReport: res.stderr.trim().split("\n").pop() ?? "",
    };
  } finally {
    await rm(file, { force: true });
  }
}
