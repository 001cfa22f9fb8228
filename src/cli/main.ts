#!/usr/bin/env node
import { Command, Option } from "commander";
import { startBerth } from "../server.js";
import { loadConfigOrExit } from "./config-or-exit.js";
import { registerMaintenanceCommands } from "./maintenance.js";
import { registerRetentionCommand } from "./retention.js";
import { registerUserCommands } from "./user.js";

// fsyncs, file reads and writes all run on libuv's thread pool; its default of 4 threads would queue
// every pull behind a handful of concurrent uploads' flushes. Read when the pool first starts.
process.env.UV_THREADPOOL_SIZE ??= "16";

const program = new Command();
program
  .name("berth")
  .description("berth: an OCI Distribution Spec v1.1 container registry")
  .version("0.1.0")
  .showHelpAfterError();

program
  .command("serve")
  .description("run the registry (defaults: listen 0.0.0.0:5000, data directory ./data)")
  .addOption(new Option("-c, --config <file>", "YAML configuration file").env("BERTH_CONFIG"))
  .option("-l, --listen <host:port>", "address to listen on")
  .option("-d, --data <dir>", "data directory for blobs and metadata")
  .option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent")
  .action(async (options: { config?: string; listen?: string; data?: string; logLevel?: string }) => {
    const flags: Record<string, unknown> = {};
    if (options.listen !== undefined) flags.listen = options.listen;
    if (options.data !== undefined) flags.dataDir = options.data;
    if (options.logLevel !== undefined) flags.log = { level: options.logLevel };
    const config = loadConfigOrExit({
      ...(options.config ? { file: options.config } : {}),
      env: process.env,
      flags,
    });
    const server = await startBerth(config);
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      server.logger.info({ signal }, "shutting down");
      server.close().then(
        () => process.exit(0),
        (error: unknown) => {
          server.logger.error({ err: error }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });

registerUserCommands(program);
registerRetentionCommand(program);
registerMaintenanceCommands(program);

await program.parseAsync(process.argv);
