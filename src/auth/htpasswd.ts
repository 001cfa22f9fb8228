import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import bcrypt from "bcryptjs";
import { LRUCache } from "lru-cache";

/**
 * An htpasswd file of bcrypt entries (`user:$2y$10$...`, what `htpasswd -B` writes). Other hash kinds
 * are refused: they are either weak (MD5, SHA-1, crypt) or not worth supporting.
 */

const bcryptPattern = /^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/;
// Checked against when the user is unknown, so a wrong name costs as long as a wrong password.
const decoyHash = bcrypt.hashSync(randomBytes(16).toString("hex"), 10);
/** How long a successful check is remembered, so basic auth does not pay bcrypt on every request. */
const verifiedTtlMs = 60_000;
/** The file is stat'ed at most this often to pick up changes (`berth user add` on a running registry). */
const reloadCheckMs = 1000;

export function parseHtpasswd(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const hash = line.slice(colon + 1);
    if (!bcryptPattern.test(hash)) continue;
    entries.set(line.slice(0, colon), hash);
  }
  return entries;
}

export function formatHtpasswd(entries: Map<string, string>): string {
  return [...entries].map(([user, hash]) => `${user}:${hash}\n`).join("");
}

/** A bcrypt hash in the `$2y$` form Apache's htpasswd writes (identical algorithm to `$2b$`). */
export function hashPassword(password: string, cost = 10): string {
  return bcrypt.hashSync(password, cost).replace(/^\$2b\$/, "$2y$");
}

export function isValidUserName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/.test(name);
}

/** Reads an htpasswd file; a missing file is empty. */
export function readHtpasswdFile(path: string): Map<string, string> {
  try {
    return parseHtpasswd(readFileSync(path, "utf8"));
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return new Map();
    throw error;
  }
}

/** Replaces the file atomically, readable by its owner only. */
export async function writeHtpasswdFile(path: string, entries: Map<string, string>): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`;
  await writeFile(temporary, formatHtpasswd(entries), { mode: 0o600 });
  await rename(temporary, path);
}

export class Htpasswd {
  private entries = new Map<string, string>();
  private loadedMtimeMs = -1;
  private checkedAt = 0;
  private readonly cacheKey = randomBytes(32);
  private readonly verified = new LRUCache<string, Buffer>({ max: 10_000, ttl: verifiedTtlMs });

  constructor(private readonly path: string) {
    this.reload(true);
  }

  private reload(force = false): void {
    const now = Date.now();
    if (!force && now - this.checkedAt < reloadCheckMs) return;
    this.checkedAt = now;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(this.path).mtimeMs;
    } catch (error) {
      if (force) throw new Error(`cannot read htpasswd file ${this.path}: ${(error as Error).message}`);
      return;
    }
    if (mtimeMs === this.loadedMtimeMs) return;
    this.entries = parseHtpasswd(readFileSync(this.path, "utf8"));
    this.loadedMtimeMs = mtimeMs;
    this.verified.clear();
  }

  /** The user's current entry (their bcrypt hash), or undefined when the file no longer lists them. */
  entry(user: string): string | undefined {
    this.reload();
    return this.entries.get(user);
  }

  /** True when the password matches the user's entry. */
  async verify(user: string, password: string): Promise<boolean> {
    this.reload();
    const hash = this.entries.get(user);
    // Remembered as a keyed hash of user, password and entry, never the password itself.
    const proof = createHmac("sha256", this.cacheKey)
      .update(`${user}\0${password}\0${hash ?? ""}`)
      .digest();
    const remembered = this.verified.get(user);
    if (remembered && timingSafeEqual(remembered, proof)) return true;
    const ok = await bcrypt.compare(password, hash ?? decoyHash);
    if (ok && hash !== undefined) {
      this.verified.set(user, proof);
      return true;
    }
    return false;
  }
}
