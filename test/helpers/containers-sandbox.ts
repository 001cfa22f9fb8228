import { mkdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ClientOptions, type ClientResult, runClient } from "./clients.js";
import type { OciLayoutFixture } from "./oci-layout.js";

/**
 * Private state for the containers/image tools (skopeo, podman): config files, auth file,
 * signature policy, storage and temp dirs all live under one temp dir, so nothing on the
 * machine (or left by an earlier run) changes what a test sees.
 */
export interface ContainersSandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  policyPath: string;
  /** Global podman flags selecting this sandbox's vfs storage. */
  podmanGlobalArgs: string[];
  skopeo(args: string[], options?: ClientOptions): Promise<ClientResult>;
  podman(args: string[], options?: ClientOptions): Promise<ClientResult>;
  remove(): Promise<void>;
}

// As root, containers/image keeps its blob-info cache at the fixed path
// /var/lib/containers/cache (no flag or env var moves it). That cache remembers which
// repositories already hold a blob, and makes later copies skip uploads or try cross-repo
// mounts, so a cache shared with other tests or earlier runs changes what berth is asked.
// Each call runs in a private mount namespace with the sandbox's own directory bind-mounted
// there: calls through one sandbox share a cache, as one user's would; sandboxes share nothing.
const ROOT_CACHE_PARENT = "/var/lib/containers";
const isRoot = process.getuid?.() === 0;

export async function createContainersSandbox(): Promise<ContainersSandbox> {
  const dir = await mkdtemp(join(tmpdir(), "berth-containers-"));
  const paths = {
    policy: join(dir, "policy.json"),
    registries: join(dir, "registries.conf"),
    storageConf: join(dir, "storage.conf"),
    containersConf: join(dir, "containers.conf"),
    auth: join(dir, "auth.json"),
    storage: join(dir, "storage"),
    run: join(dir, "run"),
    libpodTmp: join(dir, "libpod-tmp"),
    tmp: join(dir, "tmp"),
    xdg: join(dir, "xdg"),
    varLibContainers: join(dir, "var-lib-containers"),
  };
  await Promise.all(
    [paths.storage, paths.run, paths.libpodTmp, paths.tmp, paths.xdg, paths.varLibContainers].map((p) =>
      mkdir(p),
    ),
  );
  await writeFile(paths.policy, JSON.stringify({ default: [{ type: "insecureAcceptAnything" }] }));
  // No search registries: every reference in the tests is fully qualified.
  await writeFile(paths.registries, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  await writeFile(
    paths.storageConf,
    `[storage]\ndriver = "vfs"\ngraphroot = "${paths.storage}"\nrunroot = "${paths.run}"\n`,
  );
  await writeFile(
    paths.containersConf,
    `[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\ntmp_dir = "${paths.libpodTmp}"\n`,
  );
  await writeFile(paths.auth, "{}");

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINERS_CONF: paths.containersConf,
    CONTAINERS_REGISTRIES_CONF: paths.registries,
    CONTAINERS_STORAGE_CONF: paths.storageConf,
    REGISTRY_AUTH_FILE: paths.auth,
    TMPDIR: paths.tmp,
    // Where rootless runs keep the blob-info cache and other per-user state.
    XDG_DATA_HOME: paths.xdg,
    XDG_CONFIG_HOME: paths.xdg,
    XDG_RUNTIME_DIR: paths.xdg,
  };
  if (isRoot) mkdirSync(ROOT_CACHE_PARENT, { recursive: true });
  const mountSetup = isRoot ? `mount --bind '${paths.varLibContainers}' ${ROOT_CACHE_PARENT}` : undefined;
  const podmanGlobalArgs = [
    "--root",
    paths.storage,
    "--runroot",
    paths.run,
    "--storage-driver",
    "vfs",
    "--tmpdir",
    paths.libpodTmp,
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "none",
  ];

  return {
    dir,
    env,
    policyPath: paths.policy,
    podmanGlobalArgs,
    skopeo: (args, options = {}) =>
      runClient("skopeo", ["--policy", paths.policy, "--tmpdir", paths.tmp, ...args], {
        env,
        mountSetup,
        ...options,
      }),
    podman: (args, options = {}) =>
      runClient("podman", [...podmanGlobalArgs, ...args], { env, mountSetup, ...options }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Copies the fixture's OCI image, two-platform index and Docker schema 2 image into the registry with
 * skopeo, as seed/image:v1, seed/multiarch:v1 and seed/docker:v1, for clients that then pull them.
 */
export async function seedRegistry(
  sandbox: ContainersSandbox,
  host: string,
  layout: OciLayoutFixture,
): Promise<void> {
  const seed = (source: string, repoAndTag: string) =>
    sandbox.skopeo(["copy", "--all", "--dest-tls-verify=false", source, `docker://${host}/${repoAndTag}`]);
  await seed(`oci:${layout.dir}:${layout.image.tag}`, "seed/image:v1");
  await seed(`oci:${layout.dir}:${layout.multiarch.tag}`, "seed/multiarch:v1");
  await seed(`dir:${layout.docker.dir}`, "seed/docker:v1");
}
