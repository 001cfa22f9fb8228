import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import bcrypt from "bcryptjs";

/** Test users and their passwords; bcrypt cost 4 keeps the tests fast. */
export const users = {
  reader: "reader-secret",
  writer: "writer-secret",
  admin: "admin-secret",
  outsider: "outsider-secret",
} as const;

export type UserName = keyof typeof users;

/** The access policy the auth tests share. */
export const testPolicy = {
  admins: ["admin"],
  groups: { writers: ["writer"] },
  anonymous: [{ repositories: ["public/**"], actions: ["pull" as const] }],
  rules: [
    { repositories: ["team/**"], users: ["reader"], actions: ["pull" as const] },
    { repositories: ["team/**"], groups: ["writers"], actions: ["pull" as const, "push" as const] },
    { repositories: ["scratch/**"], users: ["outsider"], actions: ["pull" as const, "push" as const] },
  ],
};

export async function writeHtpasswd(dir: string, entries: Record<string, string> = users): Promise<string> {
  const path = join(dir, "htpasswd");
  const lines = Object.entries(entries).map(
    ([user, password]) => `${user}:${bcrypt.hashSync(password, 4).replace(/^\$2b\$/, "$2y$")}\n`,
  );
  await writeFile(path, lines.join(""));
  return path;
}

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

/** Parses `Bearer realm="...",service="...",scope="..."` into its parameters. */
export function parseChallenge(header: string | null): { scheme: string; params: Record<string, string> } {
  assert.ok(header, "no WWW-Authenticate header");
  const space = header.indexOf(" ");
  const params: Record<string, string> = {};
  for (const match of header.slice(space + 1).matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) {
    params[match[1] as string] = (match[2] as string).replace(/\\(.)/g, "$1");
  }
  return { scheme: header.slice(0, space), params };
}

/** Asks a token endpoint for a token, as a client does after a Bearer challenge. */
export async function fetchToken(
  realm: string,
  service: string,
  scopes: string[],
  authorization?: string,
): Promise<Response> {
  const url = new URL(realm);
  url.searchParams.set("service", service);
  for (const scope of scopes) url.searchParams.append("scope", scope);
  return fetch(url, { headers: authorization ? { Authorization: authorization } : {} });
}

/**
 * Runs `body` with every global fetch carrying an Authorization header, so the shared push helpers
 * can seed a registry that has auth on.
 */
export async function withAuthorization<T>(authorization: string, body: () => Promise<T>): Promise<T> {
  const original = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set("Authorization", authorization);
    return original(input, { ...init, headers });
  };
  try {
    return await body();
  } finally {
    globalThis.fetch = original;
  }
}
