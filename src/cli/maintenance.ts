import { MultiBar, Presets, type SingleBar } from "cli-progress";
import type { Command } from "commander";
import { pino } from "pino";
import type { BerthConfig } from "../config/config.js";
import { gcRemovalEvents } from "../events/removals.js";
import type { GcEvent } from "../gc/events.js";
import { fsck } from "../gc/fsck.js";
import { GarbageCollector, type GcProgress, gcOptionsFrom } from "../gc/garbage-collector.js";
import { scrub } from "../gc/scrub.js";
import { openRegistry } from "../server.js";
import { loadConfigOrExit } from "./config-or-exit.js";

/**
 * `berth gc`, `berth scrub`, `berth fsck`: maintenance on the stores the config names, safe to run while
 * `berth serve` runs on the same stores. Findings go to stdout (one line each, or one JSON document with
 * --json); a progress bar goes to the terminal when stdout is one; a summary line always ends the output.
 */
export function registerMaintenanceCommands(program: Command): void {
  const common = (command: Command) =>
    command
      .option("-c, --config <file>", "YAML configuration file (default: $BERTH_CONFIG)")
      .option("-d, --data <dir>", "data directory for blobs and metadata")
      .option("--json", "print one JSON document instead of lines");

  common(
    program
      .command("gc")
      .description("collect garbage once: unreferenced manifests, links, blobs, upload leftovers")
      .option("--dry-run", "print what would be removed and how many bytes, remove nothing")
      .option(
        "--grace <seconds>",
        "only remove what has been unreferenced this long (default: gc.graceSeconds)",
      )
      .option("--delete-untagged", "also delete untagged manifests (default: gc.deleteUntagged)")
      .option(
        "--keep-orphan-referrers",
        "keep manifests whose subject is gone (default: gc.deleteOrphanReferrers)",
      ),
  ).action(async (options: CommonOptions & GcFlags) => {
    await run(options, async (config, out) => {
      const registry = await openRegistry(config);
      try {
        const collector = new GarbageCollector(
          registry.ctx.metadata,
          registry.ctx.blobStore,
          gcOptionsFrom(config, {
            ...(options.dryRun ? { dryRun: true } : { dryRun: false }),
            ...(options.grace !== undefined ? { graceMs: seconds(options.grace) * 1000 } : {}),
            ...(options.deleteUntagged ? { deleteUntagged: true } : {}),
            ...(options.keepOrphanReferrers ? { deleteOrphanReferrers: false } : {}),
          }),
          quietLogger(),
        );
        collector.reportRemovalsTo(gcRemovalEvents(registry.ctx.notifier));
        const events: GcEvent[] = [];
        collector.events.onRemoved((event) => {
          events.push(event);
          if (!options.json) out.line(describeEvent(event));
        });
        const summary = await collector.run(out.progress);
        out.done();
        if (options.json) out.print(JSON.stringify({ summary, events }, null, 2));
        const verb = summary.dryRun ? "would remove" : "removed";
        out.print(
          `gc ${verb}: ${summary.manifests} manifests, ${summary.links} blob links, ${summary.blobs} blobs ` +
            `(${formatBytes(summary.blobBytes + summary.leftoverBytes)}), ${summary.uploads} uploads, ` +
            `${summary.leftovers} store leftovers; ${summary.repositories} repositories in ${summary.durationMs} ms`,
        );
      } finally {
        await registry.close();
      }
      return 0;
    });
  });

  common(
    program
      .command("scrub")
      .description("re-hash every blob and manifest; exit 1 when any is missing or corrupt"),
  ).action(async (options: CommonOptions) => {
    await run(options, async (config, out) => {
      const registry = await openRegistry(config);
      try {
        const report = await scrub(registry.ctx.metadata, registry.ctx.blobStore, out.progress);
        out.done();
        if (options.json) out.print(JSON.stringify(report, null, 2));
        else
          for (const problem of report.problems) {
            const affected = problem.affected
              .map((a) => (a.tags.length > 0 ? `${a.repository} (tags: ${a.tags.join(", ")})` : a.repository))
              .join("; ");
            const detail =
              problem.kind === "missing"
                ? "missing from the blob store"
                : problem.kind === "digest-mismatch"
                  ? `bytes hash to ${problem.actualDigest}`
                  : `${problem.actualSize} bytes, recorded ${problem.expectedSize}`;
            out.print(`${problem.kind} ${problem.digest}: ${detail}; affects ${affected || "no repository"}`);
          }
        out.print(
          `scrub: ${report.blobs} blobs and ${report.manifests} manifests checked (${formatBytes(report.bytes)}), ` +
            `${report.problems.length} problems in ${report.durationMs} ms`,
        );
        return report.problems.length > 0 ? 1 : 0;
      } finally {
        await registry.close();
      }
    });
  });

  common(
    program
      .command("fsck")
      .description("check that metadata and the blob store agree; exit 1 on pointers to missing content"),
  ).action(async (options: CommonOptions) => {
    await run(options, async (config, out) => {
      const registry = await openRegistry(config);
      try {
        const report = await fsck(registry.ctx.metadata, registry.ctx.blobStore, out.progress, (repository) =>
          Boolean(registry.proxy?.handles(repository)),
        );
        out.done();
        const u = report.unreferenced;
        if (options.json) out.print(JSON.stringify(report, null, 2));
        else {
          for (const problem of report.problems) {
            const where = "repository" in problem ? `${problem.repository} ` : "";
            const from = "from" in problem && problem.from !== undefined ? ` (from ${problem.from})` : "";
            out.print(`${problem.kind} ${where}${problem.digest}${from}`);
          }
          for (const digest of u.notRecorded) out.print(`unreferenced: bytes not recorded ${digest}`);
          for (const digest of u.unreferencedBlobs) out.print(`unreferenced: blob ${digest}`);
          for (const link of u.unreferencedLinks)
            out.print(`unreferenced: link ${link.repository} ${link.digest}`);
          for (const id of u.orphanUploads) out.print(`unreferenced: upload scratch ${id}`);
        }
        out.print(
          `fsck: ${report.problems.length} problems; unreferenced: ${u.notRecorded.length} unrecorded blobs, ` +
            `${u.unreferencedBlobs.length} blobs, ${u.unreferencedLinks.length} links, ` +
            `${u.orphanUploads.length} upload leftovers; ${report.durationMs} ms`,
        );
        return report.problems.length > 0 ? 1 : 0;
      } finally {
        await registry.close();
      }
    });
  });
}

interface CommonOptions {
  config?: string;
  data?: string;
  json?: boolean;
}

interface GcFlags {
  dryRun?: boolean;
  grace?: string;
  deleteUntagged?: boolean;
  keepOrphanReferrers?: boolean;
}

/** Where a command writes: lines to stdout, and a progress bar when stdout is a terminal. */
interface Output {
  print(line: string): void;
  /** A finding printed while the bar may be drawn. */
  line(text: string): void;
  progress: GcProgress | undefined;
  done(): void;
}

function output(json: boolean): Output {
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (!process.stdout.isTTY || json)
    return { print, line: print, progress: undefined, done: () => undefined };
  const bars = new MultiBar(
    { format: " {phase} [{bar}] {value}/{total}", hideCursor: true, clearOnComplete: true, etaBuffer: 50 },
    Presets.shades_classic,
  );
  let bar: SingleBar | undefined;
  let known = false;
  return {
    print,
    line: (text) => bars.log(`${text}\n`),
    progress: {
      phase(name, total) {
        known = total !== undefined;
        if (bar) bar.stop();
        bar = bars.create(total ?? 0, 0, { phase: name.padEnd(12) });
      },
      advance(count = 1) {
        if (!bar) return;
        if (!known) bar.setTotal(bar.getTotal() + count);
        bar.increment(count);
      },
    },
    done: () => bars.stop(),
  };
}

/** Maintenance commands report through stdout; the stores' own logging only says when something fails. */
function quietLogger() {
  return pino({ level: "warn" }, pino.destination(2));
}

async function run(options: CommonOptions, body: (config: BerthConfig, out: Output) => Promise<number>) {
  const file = options.config ?? process.env.BERTH_CONFIG;
  const config = loadConfigOrExit({
    ...(file ? { file } : {}),
    env: process.env,
    flags: options.data !== undefined ? { dataDir: options.data } : {},
  });
  const code = await body(config, output(options.json === true));
  process.exitCode = code;
}

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) {
    process.stderr.write(`berth: --grace must be a number of seconds, got ${JSON.stringify(value)}\n`);
    process.exit(2);
  }
  return parsed;
}

function describeEvent(event: GcEvent): string {
  const verb = event.dryRun ? "would remove" : "removed";
  const what = event.action.replace(/\.deleted$|\.unlinked$/, "");
  const where = event.repository !== undefined ? `${event.repository} ` : "";
  const size = event.size !== undefined ? ` ${formatBytes(event.size)}` : "";
  const link = event.action === "blob.unlinked" ? " link" : "";
  return `${verb} ${what}${link} ${where}${event.digest ?? ""}${size}${event.reason ? ` (${event.reason})` : ""}`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]} (${bytes} bytes)`;
}
