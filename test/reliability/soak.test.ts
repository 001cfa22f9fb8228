import assert from "node:assert/strict";
import { test } from "node:test";
import { rssLimitKiB, runSoak } from "./soak.js";

// In the suite: 40 s of warm-up (caches and the V8 heap reach their working size), then 35 s measured; `node dist/test/reliability/soak.js --minutes 10` for longer.
test("a one-minute soak of mixed traffic: no errors, no memory growth past warm-up", {
  timeout: 240_000,
}, async (t) => {
  const report = await runSoak({ seconds: 35, warmupSeconds: 40, clients: 32 });
  t.diagnostic(JSON.stringify({ ...report, errors: report.errors.length }));
  assert.deepEqual(report.errors, []);
  assert.ok(report.requests > 2000, `only ${report.requests} requests served`);
  assert.ok(
    report.rssEndKiB <= rssLimitKiB(report.rssAfterWarmupKiB),
    `RSS grew from ${report.rssAfterWarmupKiB} KiB after warm-up to ${report.rssEndKiB} KiB`,
  );
});
