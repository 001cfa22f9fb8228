// Bundles the web UI (ui/src) into dist/ui at build time: one hashed script and stylesheet, served by
// berth itself (src/http/routes/ui.ts); nothing is fetched from elsewhere at run time.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const outdir = join(root, "dist", "ui");

const result = await build({
  absWorkingDir: root,
  entryPoints: { app: "ui/src/main.tsx" },
  tsconfig: "ui/tsconfig.json",
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  outdir: join(outdir, "assets"),
  entryNames: "[name]-[hash]",
  metafile: true,
  logLevel: "warning",
});

let js;
let css;
for (const [path, output] of Object.entries(result.metafile.outputs)) {
  if (output.entryPoint !== undefined && path.endsWith(".js")) {
    js = basename(path);
    if (output.cssBundle) css = basename(output.cssBundle);
  }
}
if (!js || !css) throw new Error("esbuild produced no script or no stylesheet for the UI");

const template = await readFile(join(root, "ui", "index.html"), "utf8");
await mkdir(outdir, { recursive: true });
await writeFile(join(outdir, "index.html"), template.replace("{{js}}", js).replace("{{css}}", css));
