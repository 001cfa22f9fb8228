/**
 * Summary of a bench invocation: medians over runs per registry, the ratio primary/comparison,
 * PASS/MISS against the project's targets, a plain-text table and a Markdown table.
 */
import { type Figure, median, round, type Sizes } from "./core.js";

/** One registry in one run. */
export interface TargetRun {
  figures: Record<string, Figure>;
  /** workload name -> error message (the workload reported no figures). */
  failures: Record<string, string>;
  workloads: Record<string, unknown>;
}

export interface RunRecord {
  run: number;
  order: string[];
  targets: Record<string, TargetRun>;
}

interface Spec {
  key: string;
  label: string;
  /** Workload whose failure explains a missing figure. */
  workload: string;
  better: "higher" | "lower";
  /** Target on the ratio primary/comparison: >= for "higher", <= for "lower". */
  ratio?: number;
  /** Target on the primary's own value. */
  absolute?: { text: string; ok: (value: number, sizes: Sizes) => boolean };
}

export const SPECS: Spec[] = [
  { key: "push_mono", label: "monolithic push", workload: "push_mono", better: "higher", ratio: 1.15 },
  {
    key: "push_chunked",
    label: "chunked push (16 MiB)",
    workload: "push_chunked",
    better: "higher",
    ratio: 1.15,
  },
  { key: "pull_verified", label: "pull, verified (sha256)", workload: "pull", better: "higher", ratio: 1 },
  { key: "pull_unverified", label: "pull, unverified", workload: "pull", better: "higher", ratio: 1.3 },
  { key: "range_1mib", label: "1 MiB range read (median)", workload: "pull", better: "lower" },
  {
    key: "small_images",
    label: "small images, 16 clients",
    workload: "small_images",
    better: "higher",
    ratio: 3,
  },
  {
    key: "small_images_req_rate",
    label: "  (their request rate)",
    workload: "small_images",
    better: "higher",
  },
  {
    key: "small_images_cold",
    label: "  (first pass, just started)",
    workload: "small_images",
    better: "higher",
  },
  {
    key: "manifest_get_rps",
    label: "manifest GET (wrk)",
    workload: "manifest_get",
    better: "higher",
    ratio: 5,
  },
  { key: "manifest_get_p99", label: "  p99", workload: "manifest_get", better: "lower", ratio: 1 / 3 },
  {
    key: "manifest_head_rps",
    label: "manifest HEAD (ab)",
    workload: "manifest_head",
    better: "higher",
    ratio: 5,
  },
  { key: "manifest_head_p99", label: "  p99", workload: "manifest_head", better: "lower", ratio: 1 / 3 },
  { key: "blob_head_rps", label: "blob HEAD (ab)", workload: "blob_head", better: "higher", ratio: 5 },
  { key: "blob_head_p99", label: "  p99", workload: "blob_head", better: "lower", ratio: 1 / 3 },
  {
    key: "tags_list_rps",
    label: "tags list, 1,000 tags (wrk)",
    workload: "tags_list",
    better: "higher",
    ratio: 5,
  },
  { key: "tags_list_p99", label: "  p99", workload: "tags_list", better: "lower", ratio: 1 / 3 },
  { key: "tag_put_rate", label: "tag PUTs, 16 clients", workload: "tags_list", better: "higher" },
  { key: "skopeo_push", label: "skopeo copy in", workload: "skopeo", better: "lower" },
  { key: "skopeo_pull", label: "skopeo copy out", workload: "skopeo", better: "lower" },
  {
    key: "server_rss_peak",
    label: "peak server memory",
    workload: "memory",
    better: "lower",
    absolute: { text: "< 250 MiB", ok: (v) => v < 250 },
  },
  {
    key: "rss_growth",
    label: "RSS growth, big vs 1/8 blob",
    workload: "memory",
    better: "lower",
    absolute: {
      text: "flat: <= max(16 MiB, 10% of size step)",
      ok: (v, sizes) => v <= Math.max(16, (0.1 * (sizes.blobBytes - sizes.probeBlobBytes)) / (1024 * 1024)),
    },
  },
  { key: "dd_fdatasync", label: "dd 1 MiB blocks + fdatasync", workload: "dd", better: "higher" },
  { key: "push_mono_vs_dd", label: "monolithic push / dd", workload: "dd", better: "higher" },
];

export interface SummaryRow {
  key: string;
  label: string;
  unit: string;
  tool: string;
  values: Record<
    string,
    { median: number | null; min: number | null; max: number | null; ok: number; runs: number }
  >;
  errors: Record<string, string[]>;
  ratio: number | null;
  target: string;
  verdict: "PASS" | "MISS" | "FAIL" | "";
}

export function summarize(runs: RunRecord[], names: string[], sizes: Sizes): SummaryRow[] {
  const [primary, comparison] = names;
  const rows: SummaryRow[] = [];
  for (const spec of SPECS) {
    const row: SummaryRow = {
      key: spec.key,
      label: spec.label,
      unit: "",
      tool: "",
      values: {},
      errors: {},
      ratio: null,
      target: "",
      verdict: "",
    };
    let present = false;
    for (const name of names) {
      const values: number[] = [];
      const errors: string[] = [];
      for (const run of runs) {
        const target = run.targets[name];
        const figure = target?.figures[spec.key];
        if (figure) {
          values.push(figure.value);
          row.unit = figure.unit;
          row.tool = figure.tool;
          present = true;
        } else {
          const error = target?.failures[spec.workload];
          if (error) errors.push(`run ${run.run}: ${error}`);
        }
      }
      row.values[name] = {
        median: median(values),
        min: values.length ? Math.min(...values) : null,
        max: values.length ? Math.max(...values) : null,
        ok: values.length,
        runs: runs.length,
      };
      if (errors.length) {
        row.errors[name] = errors;
        present = true;
      }
    }
    if (!present) continue;
    const a = primary ? row.values[primary]?.median : null;
    const b = comparison ? row.values[comparison]?.median : null;
    if (a != null && b != null && b !== 0) row.ratio = a / b;
    const primaryFailed = primary !== undefined && (row.errors[primary]?.length ?? 0) > 0;
    const comparisonFailed = comparison !== undefined && (row.errors[comparison]?.length ?? 0) > 0;
    if (spec.ratio !== undefined) {
      row.target = spec.better === "higher" ? `>= ${fmtRatio(spec.ratio)}x` : `<= ${fmtRatio(spec.ratio)}x`;
      if (primaryFailed || comparisonFailed) row.verdict = "FAIL";
      else if (row.ratio !== null) {
        const ok = spec.better === "higher" ? row.ratio >= spec.ratio : row.ratio <= spec.ratio + 1e-9;
        row.verdict = ok ? "PASS" : "MISS";
      }
    } else if (spec.absolute) {
      row.target = spec.absolute.text;
      if (primaryFailed) row.verdict = "FAIL";
      else if (a != null) row.verdict = spec.absolute.ok(a, sizes) ? "PASS" : "MISS";
    } else if (primaryFailed || comparisonFailed) {
      row.verdict = "FAIL";
    }
    rows.push(row);
  }
  return rows;
}

function fmtRatio(value: number): string {
  if (Math.abs(value - 1 / 3) < 1e-9) return "0.33";
  return String(round(value, 2));
}

export function fmtValue(value: number | null | undefined, unit = ""): string {
  if (value == null) return "-";
  if (unit === "fraction") return value.toFixed(2);
  const abs = Math.abs(value);
  if (abs >= 1000) return String(Math.round(value));
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  return value.toFixed(abs >= 1 ? 2 : 3);
}

function cell(row: SummaryRow, name: string): string {
  const v = row.values[name];
  if (!v) return "-";
  if ((row.errors[name]?.length ?? 0) > 0) return v.ok > 0 ? `FAIL ${v.runs - v.ok}/${v.runs}` : "FAIL";
  return fmtValue(v.median, row.unit);
}

function rangeCell(row: SummaryRow, name: string): string {
  const v = row.values[name];
  if (!v || v.median === null) return cell(row, name);
  const base = cell(row, name);
  if (v.ok < 2 || v.min === null || v.max === null) return base;
  return `${base} (${fmtValue(v.min, row.unit)} to ${fmtValue(v.max, row.unit)})`;
}

/** Plain-text table for the terminal. */
export function renderTable(rows: SummaryRow[], names: string[], runs: number): string {
  const header = [
    "figure",
    "unit",
    "tool",
    ...names,
    ...(names.length > 1 ? ["ratio"] : []),
    "target",
    "result",
  ];
  const body = rows.map((row) => [
    row.label,
    row.unit,
    row.tool,
    ...names.map((n) => cell(row, n)),
    ...(names.length > 1 ? [row.ratio === null ? "-" : `${row.ratio.toFixed(2)}x`] : []),
    row.target,
    row.verdict,
  ]);
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  const numeric = new Set(names.map((_, i) => 3 + i).concat(names.length > 1 ? [3 + names.length] : []));
  const line = (r: string[]) =>
    r
      .map((text, c) => (numeric.has(c) ? text.padStart(widths[c] ?? 0) : text.padEnd(widths[c] ?? 0)))
      .join("  ")
      .trimEnd();
  const out = [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)];
  out.push("");
  out.push(
    `${runs > 1 ? `median of ${runs} runs; ` : ""}ratio = ${names[0]} / ${names[1] ?? "-"} of the medians; ` +
      "GET rates from wrk, HEAD rates from ab (compare registry to registry, not GET to HEAD).",
  );
  const errors = rows.flatMap((row) =>
    Object.entries(row.errors).flatMap(([name, list]) => list.map((e) => `${row.key} [${name}] ${e}`)),
  );
  for (const error of [...new Set(errors)]) out.push(`FAIL ${error}`);
  return out.join("\n");
}

/** Markdown table (median, with min-max when there were several runs). */
export function renderMarkdown(rows: SummaryRow[], names: string[]): string {
  const header = [
    "figure",
    "unit",
    "tool",
    ...names,
    ...(names.length > 1 ? ["ratio"] : []),
    "target",
    "result",
  ];
  const align = [
    "---",
    "---",
    "---",
    ...names.map(() => "---:"),
    ...(names.length > 1 ? ["---:"] : []),
    "---",
    "---",
  ];
  const lines = [`| ${header.join(" | ")} |`, `| ${align.join(" | ")} |`];
  for (const row of rows) {
    const cells = [
      row.label.trim(),
      row.unit,
      row.tool,
      ...names.map((n) => rangeCell(row, n)),
      ...(names.length > 1 ? [row.ratio === null ? "-" : `${row.ratio.toFixed(2)}x`] : []),
      row.target,
      row.verdict ? `**${row.verdict}**` : "",
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

export interface ResourceRow {
  workload: string;
  cpu: Record<string, number | null>;
  wall: Record<string, number | null>;
  rss: Record<string, number | null>;
  other: Record<string, number | null>;
}

/** Median server CPU seconds, wall seconds and phase RSS peak per workload and registry. */
export function summarizeResources(runs: RunRecord[], names: string[], workloads: string[]): ResourceRow[] {
  return workloads.map((workload) => {
    const row: ResourceRow = { workload, cpu: {}, wall: {}, rss: {}, other: {} };
    for (const name of names) {
      const pick = (field: string) => {
        const values: number[] = [];
        for (const run of runs) {
          const w = run.targets[name]?.workloads[workload] as
            | { resources?: Record<string, number> }
            | undefined;
          const value = w?.resources?.[field];
          if (typeof value === "number") values.push(value);
        }
        return median(values);
      };
      row.cpu[name] = pick("server_cpu_s");
      row.wall[name] = pick("wall_s");
      row.rss[name] = pick("server_rss_peak_mib");
      row.other[name] = pick("other_busy_cores");
    }
    return row;
  });
}

export function renderResources(rows: ResourceRow[], names: string[], markdown: boolean): string {
  const header = [
    "workload",
    ...names.map((n) => `${n} CPU s`),
    ...names.map((n) => `${n} wall s`),
    ...names.map((n) => `${n} RSS MiB`),
    ...names.map((n) => `other cores (${n})`),
  ];
  const body = rows.map((r) => [
    r.workload,
    ...names.map((n) => fmtValue(r.cpu[n])),
    ...names.map((n) => fmtValue(r.wall[n])),
    ...names.map((n) => fmtValue(r.rss[n])),
    ...names.map((n) => fmtValue(r.other[n])),
  ]);
  if (markdown) {
    return [
      `| ${header.join(" | ")} |`,
      `| ${header.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
      ...body.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
  }
  const all = [header, ...body];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all
    .map((r) => r.map((t, c) => (c === 0 ? t.padEnd(widths[c] ?? 0) : t.padStart(widths[c] ?? 0))).join("  "))
    .join("\n");
}
