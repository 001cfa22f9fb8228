import assert from "node:assert/strict";
import { test } from "node:test";
import { runCrashTest } from "./crash.js";

// Bounded for CI; `node dist/test/reliability/crash.js --kills 200` runs a longer one.
test("acknowledged pushes survive SIGKILL at random moments (20 kills, 16 clients)", {
  timeout: 150_000,
}, async (t) => {
  const report = await runCrashTest({ kills: 20, clients: 16 });
  t.diagnostic(JSON.stringify({ ...report, failures: report.failures.length }));
  assert.deepEqual(report.failures, [], `seed ${report.seed}`);
  assert.ok(report.kills >= 20);
  assert.ok(
    report.manifestsAcknowledged >= 20,
    `only ${report.manifestsAcknowledged} manifests acknowledged`,
  );
  assert.ok(report.connectionErrors > 0, "no request was ever interrupted by a kill");
});
