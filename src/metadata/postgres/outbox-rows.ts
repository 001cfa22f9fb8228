import type pg from "pg";
import type { NewOutboxEvent } from "../metadata-store.js";

/** Appends outbox rows with the statement (and in the transaction) of the caller's connection. */
export async function appendEventRows(
  db: pg.Pool | pg.PoolClient,
  events: NewOutboxEvent[] | undefined,
): Promise<void> {
  if (!events?.length) return;
  await db.query(
    `INSERT INTO event_outbox (endpoint, payload, attempts, available_at, created_at)
     SELECT endpoint, payload, 0, created_at, created_at
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS e(endpoint, payload, created_at)`,
    [events.map((e) => e.endpoint), events.map((e) => e.payload), events.map((e) => e.createdAt)],
  );
}
