import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import Database from "better-sqlite3";
import type { BerthConfigInput } from "../../src/config/config.js";
import type { RegistryEvent } from "../../src/events/event.js";
import { basic, testPolicy, users, withAuthorization, writeHtpasswd } from "../helpers/auth.js";
import { type PushedImage, pushBlob, pushImage, types } from "../helpers/oci.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { BerthProcess, freePort, sleep } from "../helpers/reliability.js";
import { type ReceivedRequest, WebhookReceiver } from "../helpers/webhook-receiver.js";

type Endpoint = NonNullable<NonNullable<BerthConfigInput["notifications"]>["endpoints"]>[number];

function endpoint(receiver: WebhookReceiver, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    name: "hooks",
    url: receiver.url,
    events: ["push", "pull", "delete"],
    backoff: { initialSeconds: 0.1, maxSeconds: 0.5 },
    ...extra,
  };
}

function notifications(...endpoints: Endpoint[]): BerthConfigInput {
  return { notifications: { endpoints, pollIntervalSeconds: 0.05 } };
}

/** Every event of every Distribution envelope received, in arrival order. */
function envelopeEvents(requests: ReceivedRequest[]): RegistryEvent[] {
  return requests.flatMap((r) => (r.body as { events: RegistryEvent[] }).events);
}

function find(events: RegistryEvent[], action: string, target: Partial<RegistryEvent["target"]>) {
  return events.find(
    (e) =>
      e.action === action &&
      Object.entries(target).every(
        ([key, value]) => e.target[key as keyof RegistryEvent["target"]] === value,
      ),
  );
}

describe("webhooks: Distribution envelope", () => {
  const receiver = new WebhookReceiver();
  let registry: TestRegistry;
  before(async () => {
    await receiver.start();
    registry = await startTestRegistry(
      notifications(
        endpoint(receiver, { headers: { Authorization: "Bearer hook-secret" }, repositories: ["hooks/**"] }),
      ),
    );
  });
  after(async () => {
    await registry?.close();
    await receiver.stop();
  });

  test("push, pull and delete each arrive with Distribution's target fields", async () => {
    const repository = "hooks/app";
    const image = await pushImage(registry.url, repository, "v1");
    const pushed = await receiver.waitFor((requests) => {
      const events = envelopeEvents(requests);
      const manifest = find(events, "push", { digest: image.digest });
      const layer = find(events, "push", { digest: image.layer.digest });
      return manifest && layer ? { manifest, layer } : undefined;
    });
    const request = receiver.requests[0];
    assert.equal(request?.headers["content-type"], "application/vnd.docker.distribution.events.v1+json");
    assert.equal(request?.headers.authorization, "Bearer hook-secret");
    assert.deepEqual(pushed.manifest.target, {
      repository,
      mediaType: types.ociManifest,
      digest: image.digest,
      size: image.manifest.length,
      tag: "v1",
      url: `${registry.url}/v2/${repository}/manifests/${image.digest}`,
    });
    assert.deepEqual(pushed.layer.target, {
      repository,
      mediaType: "application/octet-stream",
      digest: image.layer.digest,
      size: image.layer.size,
      url: `${registry.url}/v2/${repository}/blobs/${image.layer.digest}`,
    });
    assert.equal(pushed.manifest.request.method, "PUT");
    assert.equal(pushed.manifest.request.host, registry.host);
    assert.equal(pushed.manifest.request.addr, "127.0.0.1");
    assert.equal(typeof pushed.manifest.request.id, "string");
    assert.match(pushed.manifest.timestamp, /^\d{4}-\d\d-\d\dT/);
    assert.ok(pushed.manifest.source.instanceID);
    assert.ok(pushed.manifest.source.addr.endsWith(`:${registry.host.split(":").pop()}`), "the bound port");
    assert.notEqual(pushed.manifest.id, pushed.layer.id);

    const byTag = await fetch(`${registry.url}/v2/${repository}/manifests/v1`, {
      headers: { Accept: types.ociManifest, "User-Agent": "webhook-test/1" },
    });
    assert.equal(byTag.status, 200);
    await byTag.arrayBuffer();
    const blob = await fetch(`${registry.url}/v2/${repository}/blobs/${image.layer.digest}`);
    assert.equal(blob.status, 200);
    await blob.arrayBuffer();
    // HEAD is no pull (Distribution sends none either).
    await (await fetch(`${registry.url}/v2/${repository}/manifests/v1`, { method: "HEAD" })).arrayBuffer();
    const pulls = await receiver.waitFor((requests) => {
      const events = envelopeEvents(requests).filter((e) => e.action === "pull");
      return events.length >= 2 ? events : undefined;
    });
    const manifestPull = find(pulls, "pull", { digest: image.digest });
    assert.equal(manifestPull?.target.tag, "v1");
    assert.equal(manifestPull?.request.useragent, "webhook-test/1");
    assert.equal(manifestPull?.request.method, "GET");
    assert.equal(find(pulls, "pull", { digest: image.layer.digest })?.target.size, image.layer.size);

    assert.equal(
      (await fetch(`${registry.url}/v2/${repository}/manifests/v1`, { method: "DELETE" })).status,
      202,
    );
    assert.equal(
      (await fetch(`${registry.url}/v2/${repository}/manifests/${image.digest}`, { method: "DELETE" }))
        .status,
      202,
    );
    assert.equal(
      (await fetch(`${registry.url}/v2/${repository}/blobs/${image.layer.digest}`, { method: "DELETE" }))
        .status,
      202,
    );
    const deletes = await receiver.waitFor((requests) => {
      const events = envelopeEvents(requests).filter((e) => e.action === "delete");
      return events.length >= 3 ? events : undefined;
    });
    assert.deepEqual(find(deletes, "delete", { tag: "v1" })?.target, { repository, tag: "v1" });
    assert.equal(find(deletes, "delete", { digest: image.digest })?.target.repository, repository);
    assert.equal(
      find(deletes, "delete", { digest: image.layer.digest })?.target.url,
      `${registry.url}/v2/${repository}/blobs/${image.layer.digest}`,
    );
    // A delete that changes nothing sends nothing.
    assert.equal(
      (await fetch(`${registry.url}/v2/${repository}/manifests/v1`, { method: "DELETE" })).status,
      404,
    );

    // Repositories outside the endpoint's patterns are not sent; each event is delivered once here.
    await pushImage(registry.url, "elsewhere/app", "v1");
    const marker = await pushImage(registry.url, "hooks/marker", "v1");
    const all = await receiver.waitFor((requests) => {
      const events = envelopeEvents(requests);
      return find(events, "push", { digest: marker.digest }) ? events : undefined;
    });
    assert.ok(all.every((e) => e.target.repository.startsWith("hooks/")));
    assert.equal(new Set(all.map((e) => e.id)).size, all.length);
  });
});

describe("webhooks: CloudEvents", () => {
  test("an endpoint may take structured CloudEvents instead", async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    const registry = await startTestRegistry(
      notifications(endpoint(receiver, { format: "cloudevents", events: ["push"] })),
    );
    try {
      const image = await pushImage(registry.url, "cloud/app", "v2");
      const received = await receiver.waitFor((requests) =>
        requests.find((r) => (r.body as { data?: RegistryEvent }).data?.target.digest === image.digest),
      );
      assert.equal(received.headers["content-type"], "application/cloudevents+json");
      const cloudEvent = received.body as Record<string, unknown> & { data: RegistryEvent };
      assert.equal(cloudEvent.specversion, "1.0");
      assert.equal(cloudEvent.type, "io.berth.registry.push");
      assert.equal(cloudEvent.subject, "cloud/app:v2");
      assert.equal(cloudEvent.id, cloudEvent.data.id);
      assert.equal(typeof cloudEvent.source, "string");
      assert.equal(cloudEvent.datacontenttype, "application/json");
      assert.equal(cloudEvent.data.target.tag, "v2");
      assert.equal(cloudEvent.data.action, "push");
    } finally {
      await registry.close();
      await receiver.stop();
    }
  });
});

describe("webhooks: a dead endpoint never slows a push", () => {
  test("pushes complete while the endpoint hangs, and shutdown does not wait for it", async () => {
    const receiver = new WebhookReceiver();
    receiver.answer = "hang";
    await receiver.start();
    const registry = await startTestRegistry(notifications(endpoint(receiver, { timeoutSeconds: 600 })));
    try {
      await pushImage(registry.url, "slow/app", "v0");
      // Wait until delivery is stuck on the hanging endpoint, then push more.
      await receiver.waitFor(() => receiver.hanging.size > 0 || undefined);
      for (let i = 1; i <= 5; i++) await pushImage(registry.url, "slow/app", `v${i}`);
      await pushBlob(registry.url, "slow/app", randomBytes(256 * 1024));
      assert.ok(receiver.hanging.size > 0, "the endpoint was still hanging while every push completed");
      assert.equal(receiver.requests.length, 0);
    } finally {
      await registry.close();
      await receiver.stop();
    }
  });
});

describe("webhooks: bounded backlog", () => {
  test("a failing endpoint keeps only its newest events and the dropped ones are counted", async () => {
    const receiver = new WebhookReceiver();
    receiver.answer = "refuse";
    await receiver.start();
    const registry = await startTestRegistry(
      notifications(endpoint(receiver, { name: "bounded", events: ["push"], maxBacklog: 2 })),
    );
    try {
      await pushImage(registry.url, "bounded/app", "old");
      const newest = await pushImage(registry.url, "bounded/app", "new");
      const dropped = async () => {
        const text = await (await fetch(`${registry.url}/metrics`)).text();
        return Number(/^berth_events_dropped_total\{endpoint="bounded"\} (\d+)$/m.exec(text)?.[1] ?? 0);
      };
      const deadline = Date.now() + 30_000;
      while ((await dropped()) < 4 && Date.now() < deadline) await sleep(50);
      assert.equal(await dropped(), 4, "six push events, two kept");
      receiver.answer = "accept";
      const events = await receiver.waitFor((requests) => {
        const all = envelopeEvents(requests);
        return all.length >= 2 ? all : undefined;
      });
      await sleep(300);
      assert.deepEqual(
        envelopeEvents(receiver.requests)
          .map((e) => e.target.digest)
          .sort(),
        [newest.layer.digest, newest.digest].sort(),
      );
      assert.equal(events.length, 2);
    } finally {
      await registry.close();
      await receiver.stop();
    }
  });
});

describe("webhooks: who and what", () => {
  test("the actor is the authenticated user", async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    const dir = await mkdtemp(join(tmpdir(), "berth-hooks-auth-"));
    const registry = await startTestRegistry({
      ...notifications(endpoint(receiver, { events: ["push"] })),
      auth: { mode: "basic", htpasswd: await writeHtpasswd(dir), policy: testPolicy },
    });
    try {
      const image = await withAuthorization(basic("writer", users.writer), () =>
        pushImage(registry.url, "team/app", "v1"),
      );
      const event = await receiver.waitFor((requests) =>
        find(envelopeEvents(requests), "push", { digest: image.digest }),
      );
      assert.deepEqual(event.actor, { name: "writer" });
    } finally {
      await registry.close();
      await receiver.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("nothing is written to the outbox that no endpoint wants", async () => {
    const plain = await startTestRegistry();
    try {
      assert.equal(plain.server.registry.ctx.notifier, undefined, "no endpoints, no notifier");
    } finally {
      await plain.close();
    }
    // The endpoint is down, so whatever is written stays in the outbox to be counted.
    const registry = await startTestRegistry(
      notifications({
        name: "picky",
        url: `http://127.0.0.1:${await freePort()}/`,
        events: ["delete"],
        repositories: ["only/**"],
        backoff: { initialSeconds: 60, maxSeconds: 60 },
      }),
    );
    try {
      for (const repository of ["other/app", "only/app"]) {
        await pushImage(registry.url, repository, "v1");
        await (
          await fetch(`${registry.url}/v2/${repository}/manifests/v1`, {
            headers: { Accept: types.ociManifest },
          })
        ).arrayBuffer();
      }
      assert.equal(
        (await fetch(`${registry.url}/v2/other/app/manifests/v1`, { method: "DELETE" })).status,
        202,
      );
      assert.equal(
        (await fetch(`${registry.url}/v2/only/app/manifests/v1`, { method: "DELETE" })).status,
        202,
      );
      await sleep(700);
      const db = new Database(join(registry.dataDir, "metadata.sqlite"), { readonly: true });
      try {
        const rows = db.prepare("SELECT endpoint, payload FROM event_outbox").all() as { payload: string }[];
        assert.equal(rows.length, 1);
        const event = JSON.parse(rows[0]?.payload ?? "{}") as RegistryEvent;
        assert.equal(event.action, "delete");
        assert.deepEqual(event.target, { repository: "only/app", tag: "v1" });
      } finally {
        db.close();
      }
    } finally {
      await registry.close();
    }
  });
});

describe("webhooks: instances sharing PostgreSQL", { skip: postgresSkip }, () => {
  test("two instances deliver every event, none twice", async () => {
    const schema = newSchemaName();
    const receiver = new WebhookReceiver();
    await receiver.start();
    const shared: BerthConfigInput = {
      ...notifications(endpoint(receiver, { events: ["push"], batchSize: 3 })),
      metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema, poolSize: 4 } },
    };
    const first = await startTestRegistry(shared);
    const second = await startTestRegistry(shared);
    try {
      const images = await Promise.all(
        Array.from({ length: 8 }, (_, i) => pushImage((i % 2 ? first : second).url, `shared/app-${i}`, "v1")),
      );
      // 8 manifests and 16 blobs.
      const events = await receiver.waitFor((requests) => {
        const all = envelopeEvents(requests);
        return all.length >= 24 ? all : undefined;
      });
      await sleep(500);
      const all = envelopeEvents(receiver.requests);
      assert.equal(all.length, 24, "no event delivered twice");
      assert.equal(new Set(all.map((e) => e.id)).size, 24);
      for (const image of images) assert.ok(find(events, "push", { digest: image.digest }));
      assert.equal(new Set(all.map((e) => e.source.instanceID)).size, 2);
    } finally {
      await first.close();
      await second.close();
      await receiver.stop();
      await dropSchema(schema);
    }
  });
});

/** The machine running the tests may be loaded far beyond its cores; a start is not what is measured. */
const startTimeoutMs = 90_000;

/** berth as a child process with a YAML/JSON config file, so it can be killed and started again. */
async function berthWithConfig(
  config: BerthConfigInput,
): Promise<{ berth: BerthProcess; cleanup(): Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), "berth-hooks-"));
  const configFile = join(dataDir, "config.json");
  await writeFile(configFile, JSON.stringify(config));
  const berth = new BerthProcess({ dataDir, port: await freePort(), env: { BERTH_CONFIG: configFile } });
  return {
    berth,
    async cleanup() {
      await berth.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

for (const engine of ["sqlite", "postgres"] as const) {
  describe(`webhooks: at-least-once across a crash (${engine})`, {
    skip: engine === "postgres" ? postgresSkip : false,
  }, () => {
    test("events written while the receiver is down arrive after berth is killed and restarted", async () => {
      const schema = newSchemaName();
      const receiver = new WebhookReceiver();
      const receiverPort = await freePort();
      const { berth, cleanup } = await berthWithConfig({
        ...notifications({
          name: "hooks",
          url: `http://127.0.0.1:${receiverPort}/events`,
          events: ["push", "delete"],
          // A delivery cut short by the kill holds its lease for this plus a few seconds.
          timeoutSeconds: 1,
          backoff: { initialSeconds: 0.1, maxSeconds: 0.5 },
        }),
        ...(engine === "postgres"
          ? { metadata: { driver: "postgres", postgres: { url: requirePostgresUrl(), schema, poolSize: 4 } } }
          : {}),
      });
      try {
        await berth.start(startTimeoutMs);
        const images: PushedImage[] = [];
        for (let i = 0; i < 3; i++) images.push(await pushImage(berth.url, "durable/app", `v${i}`));
        assert.equal(
          (await fetch(`${berth.url}/v2/durable/app/manifests/v0`, { method: "DELETE" })).status,
          202,
        );
        // Delivery has been failing against the closed port; kill berth without any chance to flush.
        await sleep(300);
        await berth.stop("SIGKILL");
        await receiver.start(receiverPort);
        await berth.start(startTimeoutMs);
        const events = await receiver
          .waitFor((requests) => {
            const all = envelopeEvents(requests);
            const done =
              images.every((image) => find(all, "push", { digest: image.digest })) &&
              find(all, "delete", { tag: "v0" });
            return done ? all : undefined;
          }, 60_000)
          .catch((error: Error) => {
            throw new Error(`${error.message}\nberth's output:\n${berth.stderr}`);
          });
        for (const image of images) {
          assert.ok(find(events, "push", { digest: image.layer.digest }), "blob push event");
          assert.ok(find(events, "push", { digest: image.config.digest }), "config push event");
        }
      } finally {
        await cleanup();
        await receiver.stop();
        if (engine === "postgres") await dropSchema(schema);
      }
    });
  });
}

describe("webhooks: removals by retention and garbage collection", () => {
  const receiver = new WebhookReceiver();
  let registry: TestRegistry;
  before(async () => {
    await receiver.start();
    registry = await startTestRegistry({
      ...notifications(endpoint(receiver, { events: ["delete"], repositories: ["kept/**"] })),
      policies: {
        retentionIntervalSeconds: 1,
        rules: [{ name: "newest-only", repositories: ["kept/**"], retention: { keepNewest: 1 } }],
      },
      // Scheduled GC off: the test runs the pass itself, with no grace period.
      gc: { enabled: false, graceSeconds: 0, deleteUntagged: true },
      // Removals happen outside any request: event URLs come from the public URL.
      publicUrl: "https://registry.example",
    });
  });
  after(async () => {
    await registry?.close();
    await receiver.stop();
  });

  test("a tag retention deletes and the manifest GC then removes each arrive as a delete event", async () => {
    const repository = "kept/app";
    const older = await pushImage(registry.url, repository, "v1");
    // Push times are compared in milliseconds: make sure v2 is newer.
    await sleep(5);
    const newer = await pushImage(registry.url, repository, "v2");

    const retained = await receiver.waitFor((requests) =>
      find(envelopeEvents(requests), "delete", { repository, tag: "v1" }),
    );
    assert.equal(retained.target.digest, older.digest);
    assert.deepEqual(retained.actor, { name: "retention" });
    assert.equal(
      (await fetch(`${registry.url}/v2/${repository}/manifests/v2`, { method: "HEAD" })).status,
      200,
    );

    const summary = await registry.server.gc.run();
    assert.ok(summary.manifests >= 1, "the untagged v1 manifest is collected");
    const collected = await receiver.waitFor((requests) =>
      find(envelopeEvents(requests), "delete", {
        repository,
        digest: older.digest,
        mediaType: types.ociManifest,
      }),
    );
    assert.deepEqual(collected.actor, { name: "gc" });
    assert.equal(collected.target.url, `https://registry.example/v2/${repository}/manifests/${older.digest}`);
    const unlinked = await receiver.waitFor((requests) =>
      find(envelopeEvents(requests), "delete", { repository, digest: older.layer.digest }),
    );
    assert.deepEqual(unlinked.actor, { name: "gc" });
    // Nothing of the tagged image went.
    assert.equal(find(envelopeEvents(receiver.requests), "delete", { digest: newer.digest }), undefined);

    const metrics = await (await fetch(`${registry.url}/metrics`)).text();
    assert.match(metrics, /^berth_gc_runs_total\{result="success"\} [1-9]/m);
    assert.match(metrics, /^berth_gc_removed_total\{kind="manifest"\} [1-9]/m);
  });
});
