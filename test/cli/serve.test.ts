import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));
const quietEnv = { ...process.env, BERTH_LOG_FORMAT: "json" };

/** Starts `berth serve` as a real process and resolves with the address it logged. */
function serve(
  args: string[],
  env: NodeJS.ProcessEnv = quietEnv,
): Promise<{ child: ChildProcessWithoutNullStreams; address: string }> {
  const child = spawn(process.execPath, [cli, "serve", ...args], { env });
  return new Promise((resolve, reject) => {
    let output = "";
    child.stdout.on("data", (data: Buffer) => {
      output += data.toString();
      const match = /"address":"([^"]+)"/.exec(output);
      if (match?.[1]) resolve({ child, address: match[1] });
    });
    child.stderr.on("data", (data: Buffer) => {
      output += data.toString();
    });
    child.on("exit", (code) => reject(new Error(`berth exited with ${code} before listening:\n${output}`)));
  });
}

describe("berth serve", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "berth-cli-"));
  });
  after(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  test("--help lists the serve command", () => {
    const result = spawnSync(process.execPath, [cli, "--help"], { encoding: "utf8" });
    assert.equal(result.status, 0);
    assert.match(result.stdout, /serve \[options\]/);
  });

  test("serves /v2/ with the API version header and stops cleanly on SIGTERM", async () => {
    const { child, address } = await serve(["--listen", "127.0.0.1:0", "--data", join(dataDir, "a")]);
    const response = await fetch(`http://${address}/v2/`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("docker-distribution-api-version"), "registry/2.0");
    const ready = await fetch(`http://${address}/readyz`);
    assert.equal(ready.status, 200);
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    assert.equal(await exited, 0);
  });

  test("takes settings from a YAML file, overridden by the environment", async () => {
    const file = join(dataDir, "berth.yaml");
    await writeFile(
      file,
      `listen: "127.0.0.1:0"\ndataDir: ${join(dataDir, "b")}\ndeletes:\n  enabled: true\n`,
    );
    const { child, address } = await serve(["--config", file], {
      ...quietEnv,
      BERTH_DELETES_ENABLED: "false",
    });
    try {
      const response = await fetch(`http://${address}/v2/x/manifests/latest`, { method: "DELETE" });
      assert.equal(response.status, 405);
      const body = (await response.json()) as { errors: { code: string }[] };
      assert.equal(body.errors[0]?.code, "UNSUPPORTED");
    } finally {
      child.kill("SIGTERM");
    }
  });

  test("rejects a bad setting with its name and exit status 2", () => {
    const result = spawnSync(
      process.execPath,
      [cli, "serve", "--listen", "127.0.0.1:0", "--data", join(dataDir, "c")],
      {
        encoding: "utf8",
        env: { ...quietEnv, BERTH_LIMITS_PAGE_SIZE: "many", BERTH_NO_SUCH_SETTING: "1" },
      },
    );
    assert.equal(result.status, 2);
    assert.match(result.stderr, /limits\.pageSize/);
    assert.match(result.stderr, /BERTH_LIMITS_PAGE_SIZE/);
    assert.match(result.stderr, /BERTH_NO_SUCH_SETTING: unknown setting/);
  });

  test("rejects an unparseable listen address", () => {
    const result = spawnSync(
      process.execPath,
      [cli, "serve", "--listen", "localhost", "--data", join(dataDir, "d")],
      {
        encoding: "utf8",
        env: quietEnv,
      },
    );
    assert.equal(result.status, 2);
    assert.match(result.stderr, /listen/);
  });
});
