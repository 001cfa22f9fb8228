import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import bcrypt from "bcryptjs";

const cli = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

describe("berth user", () => {
  let dir: string;
  let htpasswd: string;
  const berth = (args: string[], input = "") =>
    spawnSync(process.execPath, [cli, "user", ...args], {
      input,
      encoding: "utf8",
      env: { PATH: process.env.PATH },
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-user-"));
    htpasswd = join(dir, "htpasswd");
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const entries = async () =>
    Object.fromEntries(
      (await readFile(htpasswd, "utf8"))
        .trim()
        .split("\n")
        .map((line) => line.split(":") as [string, string]),
    );

  test("add reads the password from stdin and writes a $2y$ bcrypt entry, owner-readable only", async () => {
    const result = berth(["add", "alice", "--htpasswd", htpasswd], "first-secret\n");
    assert.equal(result.status, 0, result.stderr);
    const { alice } = await entries();
    assert.match(alice ?? "", /^\$2y\$10\$/);
    assert.ok(bcrypt.compareSync("first-secret", alice ?? ""));
    assert.equal((await stat(htpasswd)).mode & 0o777, 0o600);
    assert.ok(!result.stderr.includes("first-secret") && !result.stdout.includes("first-secret"));
  });

  test("add refuses an existing user, a password in argv, and an empty password", async () => {
    assert.equal(berth(["add", "alice", "--htpasswd", htpasswd], "x\n").status, 1);
    assert.notEqual(berth(["add", "bob", "secret", "--htpasswd", htpasswd], "x\n").status, 0);
    assert.equal(berth(["add", "bob", "--htpasswd", htpasswd], "\n").status, 1);
    assert.deepEqual(Object.keys(await entries()), ["alice"]);
  });

  test("passwd changes the password; the file can come from the config", async () => {
    const config = join(dir, "berth.yaml");
    await writeFile(config, `auth:\n  mode: basic\n  htpasswd: ${htpasswd}\n`);
    const result = berth(["passwd", "alice", "-c", config], "second-secret\n");
    assert.equal(result.status, 0, result.stderr);
    assert.ok(bcrypt.compareSync("second-secret", (await entries()).alice ?? ""));
    assert.equal(berth(["passwd", "nobody", "--htpasswd", htpasswd], "x\n").status, 1);
  });

  test("remove deletes the entry and keeps the others", async () => {
    assert.equal(berth(["add", "bob", "--htpasswd", htpasswd], "bob-secret").status, 0);
    assert.equal(berth(["remove", "alice", "--htpasswd", htpasswd]).status, 0);
    assert.deepEqual(Object.keys(await entries()), ["bob"]);
    assert.equal(berth(["remove", "alice", "--htpasswd", htpasswd]).status, 1);
  });
});
