import { type BerthConfig, ConfigError, type ConfigSources, loadConfig } from "../config/config.js";

/** The validated config for a command, or the config's problems on stderr and exit status 2. */
export function loadConfigOrExit(sources: ConfigSources): BerthConfig {
  try {
    return loadConfig(sources);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}
