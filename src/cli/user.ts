import type { Command } from "commander";
import { hashPassword, isValidUserName, readHtpasswdFile, writeHtpasswdFile } from "../auth/htpasswd.js";
import { ConfigError, loadConfig } from "../config/config.js";

/**
 * `berth user add|passwd|remove NAME`: manages the htpasswd file. Passwords come from a prompt on a
 * terminal, or from the first line of stdin; never from argv, where other users and shell history see them.
 */
export function registerUserCommands(program: Command): void {
  const user = program
    .command("user")
    .description("manage users of the htpasswd file (basic and token auth)");
  const fileOptions = (command: Command) =>
    command
      .option("-c, --config <file>", "YAML configuration file naming auth.htpasswd")
      .option("-f, --htpasswd <file>", "htpasswd file (default: auth.htpasswd from the config)");

  fileOptions(
    user.command("add <name>").description("add a user; the password is read from a prompt or stdin"),
  ).action(async (name: string, options: FileOptions) => {
    await run(async () => {
      const path = htpasswdPath(options);
      const entries = readHtpasswdFile(path);
      if (!isValidUserName(name)) fail(`invalid user name ${JSON.stringify(name)}`);
      if (entries.has(name)) fail(`user ${name} already exists; use "berth user passwd ${name}"`);
      entries.set(name, hashPassword(await readPassword()));
      await writeHtpasswdFile(path, entries);
      process.stderr.write(`added user ${name} to ${path}\n`);
    });
  });

  fileOptions(user.command("passwd <name>").description("change a user's password (prompt or stdin)")).action(
    async (name: string, options: FileOptions) => {
      await run(async () => {
        const path = htpasswdPath(options);
        const entries = readHtpasswdFile(path);
        if (!entries.has(name)) fail(`no user ${name} in ${path}`);
        entries.set(name, hashPassword(await readPassword()));
        await writeHtpasswdFile(path, entries);
        process.stderr.write(`changed the password of ${name}\n`);
      });
    },
  );

  fileOptions(user.command("remove <name>").description("remove a user")).action(
    async (name: string, options: FileOptions) => {
      await run(async () => {
        const path = htpasswdPath(options);
        const entries = readHtpasswdFile(path);
        if (!entries.delete(name)) fail(`no user ${name} in ${path}`);
        await writeHtpasswdFile(path, entries);
        process.stderr.write(`removed user ${name}\n`);
      });
    },
  );
}

interface FileOptions {
  config?: string;
  htpasswd?: string;
}

class UsageError extends Error {}

function fail(message: string): never {
  throw new UsageError(message);
}

async function run(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exit(error instanceof ConfigError ? 2 : 1);
    }
    throw error;
  }
}

function htpasswdPath(options: FileOptions): string {
  if (options.htpasswd) return options.htpasswd;
  const config = loadConfig({ ...(options.config ? { file: options.config } : {}), env: process.env });
  if (!config.auth.htpasswd) fail("no htpasswd file: pass --htpasswd or set auth.htpasswd in the config");
  return config.auth.htpasswd;
}

async function readPassword(): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await prompt("Password: ");
    if ((await prompt("Again: ")) !== password) fail("the passwords do not match");
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString("utf8").split(/\r?\n/, 1)[0] ?? "";
  }
  if (password.length === 0) fail("empty password");
  if (Buffer.byteLength(password) > 72)
    fail("bcrypt uses at most 72 bytes of a password; choose a shorter one");
  return password;
}

/** Reads one line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let value = "";
    const finish = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (data: Buffer) => {
      for (const char of data.toString("utf8")) {
        if (char === "\r" || char === "\n") return finish();
        if (char === "\u0003") return finish(new UsageError("cancelled"));
        if (char === "\u007f" || char === "\b") value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on("data", onData);
  });
}
