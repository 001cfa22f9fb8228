import { type Logger, pino } from "pino";
import type { BerthConfig } from "./config/config.js";

/**
 * Structured JSON logs; human-readable when attached to a terminal. Credentials never reach a log line:
 * request headers are not logged, and these paths are redacted should anything pass them along.
 */
export function createLogger(config: BerthConfig["log"]): Logger {
  const pretty = config.format === "pretty" || (config.format === "auto" && process.stdout.isTTY === true);
  return pino({
    level: config.level,
    redact: {
      paths: ["req.headers.authorization", "headers.authorization", "authorization", "password", "token"],
      censor: "[redacted]",
    },
    ...(pretty ? { transport: { target: "pino-pretty", options: { translateTime: "SYS:HH:MM:ss.l" } } } : {}),
  });
}
