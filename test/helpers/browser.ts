import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { inCI } from "./clients.js";

/** Debian's chromium (`apt-get install chromium`); playwright-core never downloads a browser of its own. */
export const chromiumPath = "/usr/bin/chromium";

/** Screenshots of the UI tests; CI keeps this folder as build artifacts. */
export const screenshotDir = fileURLToPath(new URL("../../../test-artifacts/ui/", import.meta.url));

/** Skipped, saying why, when chromium is missing; in CI it runs and fails at launch instead. */
export function requireChromium(): { skip?: string } {
  if (existsSync(chromiumPath) || inCI) return {};
  return { skip: `chromium not installed at ${chromiumPath} (apt-get install chromium)` };
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    // Tests run as root in containers, where chromium's sandbox cannot start.
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
    headless: true,
  });
}

/** Saves a full-page screenshot as `<dir>/<prefix>-<name>.png` and returns its path. */
export async function screenshot(page: Page, prefix: string, name: string): Promise<string> {
  await mkdir(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${prefix}-${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
