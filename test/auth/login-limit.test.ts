import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { loadConfig } from "../../src/config/config.js";
import { type RunningBerth, startBerth } from "../../src/server.js";
import { basic, users, writeHtpasswd } from "../helpers/auth.js";
import { errorCodes } from "../helpers/oci.js";

describe("failed logins and logs", () => {
  let dir: string;
  let server: RunningBerth;
  let url: string;
  const lines: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-limit-"));
    const htpasswd = await writeHtpasswd(dir);
    const config = loadConfig({
      file: {
        dataDir: join(dir, "data"),
        listen: "127.0.0.1:0",
        auth: {
          mode: "token",
          htpasswd,
          rateLimit: { failures: 3, windowSeconds: 60 },
          policy: { rules: [{ repositories: ["**"], users: ["reader"], actions: ["pull"] }] },
        },
      },
      env: {},
    });
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    // Everything down to trace, so a credential could not hide below the configured level.
    server = await startBerth(config, pino({ level: "trace" }, sink));
    url = `http://${server.address}`;
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("after too many failures the address gets 429, even with the right password", async () => {
    const attempt = (authorization: string) =>
      fetch(`${url}/token?service=berth&scope=repository:a:pull`, {
        headers: { Authorization: authorization },
      });
    const good = await attempt(basic("reader", users.reader));
    assert.equal(good.status, 200);
    const { token } = (await good.json()) as { token: string };
    const pulled = await fetch(`${url}/v2/a/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(pulled.status, 404);
    for (let i = 0; i < 3; i++) assert.equal((await attempt(basic("reader", `wrong-${i}`))).status, 401);
    const limited = await attempt(basic("reader", users.reader));
    assert.equal(limited.status, 429);
    assert.deepEqual(await errorCodes(limited), ["TOOMANYREQUESTS"]);
    assert.match(limited.headers.get("retry-after") ?? "", /^\d+$/);
    // Tokens already issued still work: the limit is on logins.
    const again = await fetch(`${url}/v2/a/tags/list`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(again.status, 404);
    const log = lines.join("");
    assert.ok(log.includes("/token"), "requests are logged");
    for (const secret of [
      users.reader,
      "wrong-0",
      token,
      Buffer.from(`reader:${users.reader}`).toString("base64"),
    ]) {
      assert.ok(!log.includes(secret), "a credential reached the log");
    }
  });
});
