import type { Command } from "commander";
import { createLogger } from "../logger.js";
import { applyRetention } from "../registry/retention.js";
import { openRegistry } from "../server.js";
import { loadConfigOrExit } from "./config-or-exit.js";

/**
 * `berth retention [--dry-run]`: applies the retention rules of `policies` once, against the same stores
 * `berth serve` uses (safe while it runs). Each removal is one structured log line on stdout.
 */
export function registerRetentionCommand(program: Command): void {
  program
    .command("retention")
    .description("delete the tags the retention rules of the config's policies select, once")
    .option("-c, --config <file>", "YAML configuration file")
    .option("-d, --data <dir>", "data directory for blobs and metadata")
    .option("-n, --dry-run", "only report what would be deleted")
    .action(async (options: { config?: string; data?: string; dryRun?: boolean }) => {
      const config = loadConfigOrExit({
        ...(options.config ? { file: options.config } : {}),
        env: process.env,
        flags: options.data !== undefined ? { dataDir: options.data } : {},
      });
      const logger = createLogger(config.log);
      if (!config.policies.rules.some((rule) => rule.retention))
        process.stderr.write("berth: no policy rule sets retention; nothing to do\n");
      const registry = await openRegistry(config);
      try {
        const dryRun = options.dryRun ?? false;
        const removed = await applyRetention(registry.ctx.metadata, config.policies, Date.now(), {
          dryRun,
          logger,
          eventsFor: (repository, tag, digest) =>
            registry.ctx.notifier?.eventsFor("delete", { repository, tag, digest }, { actor: "retention" }),
        });
        process.stderr.write(
          `berth: retention ${dryRun ? "would delete" : "deleted"} ${removed.length} tag(s)\n`,
        );
      } finally {
        await registry.close();
      }
      logger.flush();
    });
}
