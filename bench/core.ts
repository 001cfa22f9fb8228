/**
 * Shared types and small helpers of the benchmark suite (`npm run bench`).
 */
import type { HttpClient } from "./http.js";
import type { RegistryProcess } from "./registry-process.js";

export const MiB = 1024 * 1024;

/** A failed verification: the workload reports this message instead of a figure. */
export class CheckError extends Error {}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckError(message);
}

export function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function round(value: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length % 2 === 1) return sorted[mid] ?? null;
  return ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

export function log(message: string): void {
  process.stdout.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export function isLoopbackHost(host: string): boolean {
  return /^127(\.\d{1,3}){3}$/.test(host) || host === "localhost" || host === "[::1]" || host === "::1";
}

/** Who produced the traffic behind a figure. */
export type Tool = "bench" | "wrk" | "ab" | "skopeo" | "dd" | "proc";

export interface Figure {
  value: number;
  unit: string;
  tool: Tool;
  /** Informational figures have no target. */
  info?: boolean;
}

export interface Sizes {
  blobBytes: number;
  chunkBytes: number;
  probeBlobBytes: number;
  images: number;
  imageWorkers: number;
  tags: number;
  loadSeconds: number;
  loadConnections: number;
  wrkThreads: number;
  skopeoLayers: number;
  skopeoLayerBytes: number;
  rangeReads: number;
  ddMiB: number;
  settleSeconds: number;
}

/** Per-target state that later workloads take from earlier ones (e.g. pull needs push_mono's blob). */
export interface TargetState {
  monoRepo?: string;
  smallRepo?: string;
  smallTag?: string;
  smallImage?: import("./oci.js").Image;
  [key: string]: unknown;
}

export interface Target {
  /** "berth" or the name of the comparison registry. */
  name: string;
  label: string;
  base: URL;
  client: HttpClient;
  process: RegistryProcess | null;
  state: TargetState;
}

export interface BlobFile {
  file: string;
  size: number;
  digest: string;
}

export interface SharedData {
  mono: BlobFile;
  chunked: BlobFile;
  probe: BlobFile;
}

export interface WorkloadContext {
  target: Target;
  sizes: Sizes;
  data: SharedData;
  /** Unique per bench invocation and run: repository names are built from it. */
  runTag: string;
  workDir: string;
  figure(key: string, value: number, unit: string, tool: Tool, info?: boolean): void;
  details: Record<string, unknown>;
}

export interface Workload {
  name: string;
  /** Short description for the JSON and the docs. */
  description: string;
  run(ctx: WorkloadContext): Promise<void>;
}

export function repoName(ctx: WorkloadContext, suffix: string): string {
  return `bench/${ctx.runTag}/${suffix}`;
}

/** A pool of `workers` async workers over `count` items; the first error wins. */
export async function pool(
  workers: number,
  count: number,
  fn: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (next < count && failure === null) {
      const index = next++;
      try {
        await fn(index);
      } catch (error) {
        failure ??= error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, count) }, worker));
  if (failure !== null) throw failure;
}
