import { randomBytes } from "node:crypto";
import pg from "pg";

const inCI = !["", "0", "false"].includes(process.env.CI ?? "");

/**
 * The PostgreSQL the tests use, from TEST_POSTGRES_URL, which `.ci/start-postgres.sh` prints (not a BERTH_*
 * name: berth rejects unknown BERTH_ variables, and child processes inherit the environment). Without it the
 * tests that need PostgreSQL are skipped with this reason, except in CI (CI set, as test/helpers/clients.ts
 * reads it), where a missing database is a failure: CI must run them.
 */
export const postgresUrl = process.env.TEST_POSTGRES_URL;

export const postgresSkip: string | false =
  postgresUrl === undefined && !inCI
    ? "TEST_POSTGRES_URL is not set (run: bash .ci/start-postgres.sh >/tmp/pg.env && . /tmp/pg.env)"
    : false;

export function requirePostgresUrl(): string {
  if (postgresUrl === undefined) throw new Error("CI is set but TEST_POSTGRES_URL is not set");
  return postgresUrl;
}

/** A fresh schema name; `dropSchema` removes it with everything in it. */
export function newSchemaName(): string {
  return `berth_test_${randomBytes(6).toString("hex")}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: requirePostgresUrl() });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
