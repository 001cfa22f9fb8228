import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { S3BlobStore } from "../../src/storage/s3/s3-blob-store.js";
import { dropSchema, newSchemaName, postgresSkip, requirePostgresUrl } from "../helpers/postgres.js";
import {
  type Answer,
  BerthProcess,
  call,
  describeAnswer,
  freePort,
  imageManifest,
  manifestType,
  seededRandom,
  sha256,
  sleep,
} from "../helpers/reliability.js";
import { deleteTestBucket, s3Skip, type TestBucket, testBucket } from "../helpers/s3.js";

/**
 * Two `berth serve` processes share PostgreSQL and one S3 bucket; one is SIGKILLed in the middle of
 * concurrent pushes. Whatever either instance acknowledged must be complete on the survivor (and on the
 * victim once restarted), and the survivor must never answer 5xx.
 */

const mebibyte = 1024 * 1024;
const clients = 6;
/** Images each client pushes at least; it also keeps going until it has pushed one after the kill. */
const minImages = 3;
const maxImages = 10;

interface Pushed {
  repository: string;
  tag: string;
  digest: string;
  manifest: Buffer;
  blobs: string[];
  acknowledgedBy: string;
}

/** A failure of the instance itself (connection refused or reset): the client moves to the other one. */
class InstanceDown extends Error {}

describe("scale-out: one of two instances SIGKILLed in the middle of pushes", {
  skip: postgresSkip || s3Skip,
}, () => {
  const schema = newSchemaName();
  const seed = Number(process.env.BERTH_TEST_SEED ?? Date.now() % 1_000_000);
  const random = seededRandom(seed);
  let dataDir: string;
  let bucket: TestBucket | undefined;
  const instances: BerthProcess[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "berth-crash-"));
    const shared = testBucket();
    bucket = shared;
    (await S3BlobStore.open({ ...shared, prefix: "", createBucket: true })).destroy();
    // BerthProcess passes only PATH and these: the SDK's credentials come from the AWS_* variables.
    const aws = Object.fromEntries(
      Object.entries(process.env).filter(
        (entry): entry is [string, string] => entry[0].startsWith("AWS_") && entry[1] !== undefined,
      ),
    );
    for (const name of ["a", "b"]) {
      instances.push(
        new BerthProcess({
          dataDir: join(dataDir, name),
          port: await freePort(),
          env: {
            ...aws,
            BERTH_STORAGE_DRIVER: "s3",
            BERTH_STORAGE_S3_ENDPOINT: shared.endpoint,
            BERTH_STORAGE_S3_BUCKET: shared.bucket,
            BERTH_STORAGE_S3_FORCE_PATH_STYLE: String(shared.forcePathStyle),
            BERTH_METADATA_DRIVER: "postgres",
            BERTH_METADATA_POSTGRES_URL: requirePostgresUrl(),
            BERTH_METADATA_POSTGRES_SCHEMA: schema,
          },
        }),
      );
    }
    await Promise.all(instances.map((instance) => instance.start()));
  });

  after(async () => {
    await Promise.all(instances.map((instance) => instance.stop("SIGTERM")));
    await dropSchema(schema);
    if (bucket) await deleteTestBucket(bucket);
    await rm(dataDir, { recursive: true, force: true });
  });

  test("every acknowledged push is complete on the survivor, which never answers 5xx", async (t) => {
    t.diagnostic(`seed ${seed} (replay with BERTH_TEST_SEED=${seed})`);
    const victimIndex = random() < 0.5 ? 0 : 1;
    const victim = instances[victimIndex] as BerthProcess;
    const survivor = instances[1 - victimIndex] as BerthProcess;
    /** Set just before the SIGKILL: from then on a failed request to the victim means it is down. */
    let killed = false;
    let killedAfterAcks = -1;
    const pushed: Pushed[] = [];
    const survivor5xx: string[] = [];
    let retries = 0;

    /** One request; a transport error becomes InstanceDown, a 5xx of the survivor is recorded. */
    const request = async (
      instance: BerthProcess,
      method: string,
      path: string,
      init: { body?: Uint8Array; headers?: Record<string, string> } = {},
    ): Promise<Answer> => {
      let answer: Answer;
      try {
        answer = await call(instance.url, method, path, { ...init, timeoutMs: 30_000 });
      } catch (error) {
        if (instance === victim && killed) throw new InstanceDown(String(error));
        throw error;
      }
      if (instance === survivor && answer.status >= 500)
        survivor5xx.push(`${method} ${path}: ${describeAnswer(answer)}`);
      return answer;
    };
    const expect = (answer: Answer, status: number, what: string): Answer => {
      assert.equal(answer.status, status, `${what}: ${describeAnswer(answer)}`);
      return answer;
    };
    const next = (answer: Answer): string => {
      const location = answer.headers.get("location");
      assert.ok(location, "Location header");
      const url = new URL(location, "http://placeholder");
      return `${url.pathname}${url.search}`;
    };
    const withDigest = (path: string, digest: string) =>
      `${path}${path.includes("?") ? "&" : "?"}digest=${digest}`;

    /** Monolithic: POST then a single PUT with the bytes. */
    const pushMonolithic = async (instance: BerthProcess, repository: string, bytes: Buffer) => {
      const started = expect(
        await request(instance, "POST", `/v2/${repository}/blobs/uploads/`),
        202,
        "POST",
      );
      const digest = sha256(bytes);
      expect(
        await request(instance, "PUT", withDigest(next(started), digest), {
          body: bytes,
          headers: { "Content-Type": "application/octet-stream" },
        }),
        201,
        "monolithic PUT",
      );
    };
    /** Chunked: POST, PATCHes across part boundaries, then a PUT without a body. */
    const pushChunked = async (instance: BerthProcess, repository: string, bytes: Buffer) => {
      let answer = expect(await request(instance, "POST", `/v2/${repository}/blobs/uploads/`), 202, "POST");
      const cuts = [0, Math.floor(bytes.length / 3), Math.floor((bytes.length * 2) / 3), bytes.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        const [start, end] = [cuts[i] as number, cuts[i + 1] as number];
        answer = expect(
          await request(instance, "PATCH", next(answer), {
            body: bytes.subarray(start, end),
            headers: {
              "Content-Type": "application/octet-stream",
              "Content-Range": `${start}-${end - 1}`,
            },
          }),
          202,
          "PATCH",
        );
      }
      expect(await request(instance, "PUT", withDigest(next(answer), sha256(bytes))), 201, "chunked PUT");
    };

    const pushOnce = async (
      instance: BerthProcess,
      repository: string,
      tag: string,
      config: Buffer,
      layers: Buffer[],
      chunked: boolean,
    ): Promise<Pushed> => {
      expect(
        await request(instance, "POST", `/v2/${repository}/blobs/uploads/?digest=${sha256(config)}`, {
          body: config,
          headers: { "Content-Type": "application/octet-stream" },
        }),
        201,
        "single POST",
      );
      for (const [index, layer] of layers.entries()) {
        if (chunked === (index % 2 === 0)) await pushChunked(instance, repository, layer);
        else await pushMonolithic(instance, repository, layer);
      }
      const manifest = imageManifest(config, layers);
      expect(
        await request(instance, "PUT", `/v2/${repository}/manifests/${tag}`, {
          body: manifest,
          headers: { "Content-Type": manifestType },
        }),
        201,
        "manifest PUT",
      );
      return {
        repository,
        tag,
        digest: sha256(manifest),
        manifest,
        blobs: [sha256(config), ...layers.map(sha256)],
        acknowledgedBy: instance === survivor ? "survivor" : "victim",
      };
    };

    const client = async (id: number): Promise<void> => {
      let afterKill = 0;
      for (let n = 0; n < maxImages && (n < minImages || afterKill === 0); n++) {
        const repository = `crash/client-${id}`;
        const tag = `image-${n}`;
        const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", id, n }));
        // Sizes straddle the 5 MiB part size, so some layers are multipart uploads of several parts.
        const layers = [randomBytes(Math.floor(random() * 7 * mebibyte) + 1), randomBytes(1024 + id + n)];
        const chunked = (id + n) % 2 === 0;
        // Alternate between the instances while both live; the survivor alone afterwards.
        let instance = !killed && (id + n) % 2 === victimIndex ? victim : survivor;
        const wasKilled = killed;
        for (;;) {
          try {
            pushed.push(await pushOnce(instance, repository, tag, config, layers, chunked));
            break;
          } catch (error) {
            if (!(error instanceof InstanceDown)) throw error;
            // The instance died under this push: push the whole image again to the other one.
            retries++;
            instance = survivor;
          }
        }
        if (wasKilled) afterKill++;
      }
    };

    const killer = (async () => {
      // A random moment once the victim has acknowledged a few images, so both kinds of push are checked.
      const target = 1 + Math.floor(random() * 3);
      const deadline = Date.now() + 10_000;
      while (pushed.filter((p) => p.acknowledgedBy === "victim").length < target && Date.now() < deadline)
        await sleep(20);
      await sleep(random() * 700);
      killedAfterAcks = pushed.length;
      killed = true;
      await victim.stop("SIGKILL");
    })();
    const started = Date.now();
    await Promise.all([killer, ...Array.from({ length: clients }, (_, id) => client(id))]);
    t.diagnostic(
      `killed instance ${victimIndex} after ${killedAfterAcks} acknowledged images; ${pushed.length} images ` +
        `in ${Date.now() - started} ms, ${retries} pushes retried on the survivor, ` +
        `${pushed.filter((p) => p.acknowledgedBy === "victim").length} acknowledged by the victim`,
    );
    assert.deepEqual(survivor5xx, [], "the survivor never answers 5xx");

    const verify = async (instance: BerthProcess, who: string) => {
      // The images in parallel; their blobs are distinct (random layers, configs naming client and image).
      const verifyImage = async (image: Pushed) => {
        const base = `/v2/${image.repository}`;
        const byTag = await call(instance.url, "GET", `${base}/manifests/${image.tag}`, {
          headers: { Accept: manifestType },
        });
        assert.equal(byTag.status, 200, `${who}: ${image.repository}:${image.tag}: ${describeAnswer(byTag)}`);
        assert.equal(byTag.headers.get("docker-content-digest"), image.digest);
        const byDigest = await call(instance.url, "GET", `${base}/manifests/${image.digest}`, {
          headers: { Accept: manifestType },
        });
        assert.equal(byDigest.status, 200, `${who}: ${image.digest}`);
        assert.ok(byDigest.body.equals(image.manifest), `${who}: manifest bytes of ${image.tag}`);
        for (const blob of image.blobs) {
          const fetched = await call(instance.url, "GET", `${base}/blobs/${blob}`);
          assert.equal(fetched.status, 200, `${who}: blob ${blob}: ${describeAnswer(fetched)}`);
          const hash = `sha256:${createHash("sha256").update(fetched.body).digest("hex")}`;
          assert.equal(hash, blob, `${who}: blob ${blob} re-hashes`);
        }
      };
      await Promise.all(pushed.map(verifyImage));
    };
    await verify(survivor, "survivor");

    // The killed instance comes back on the same store and serves the same content.
    await victim.start();
    await verify(victim, "restarted victim");
  });
});
