import type { FastifyReply } from "fastify";
import type { BlobReader } from "../storage/blob-store.js";

/** Bytes read and written per step; two of these are in use per response. */
const chunkBytes = 512 * 1024;
/** Spare chunk buffers kept for the next responses, so a busy server allocates almost none. */
const spareLimit = 64;
const spares: Buffer[] = [];

/**
 * Sends bytes `start`..`end` of a blob as the response body by reading into two reused buffers: one is
 * filled from the file while the socket sends the other. A buffer is filled again only after the socket's
 * write callback says it is done with it, so no byte the client gets can be overwritten. Headers set on
 * `reply` are sent as they are; the reply is hijacked, as Fastify cannot pipe a body it does not own
 * (its onResponse hooks still run).
 */
export async function sendBlobBody(
  reply: FastifyReply,
  status: number,
  reader: BlobReader,
  start: number,
  end: number,
): Promise<void> {
  reply.hijack();
  const response = reply.raw;
  const slots: Slot[] = [
    { buffer: take(), writing: Promise.resolve() },
    { buffer: take(), writing: Promise.resolve() },
  ];
  // Resolves when the connection ends either way: write callbacks of a destroyed response may never come.
  const closed = new Promise<void>((resolve) => response.once("close", () => resolve()));
  try {
    for (const [name, value] of Object.entries(reply.getHeaders()))
      if (value !== undefined) response.setHeader(name, typeof value === "number" ? String(value) : value);
    response.writeHead(status);
    let position = start;
    for (let turn = 0; position <= end && !response.destroyed; turn++) {
      const slot = slots[turn % 2] as Slot;
      await Promise.race([slot.writing, closed]);
      if (response.destroyed) break;
      const read = await reader.read(slot.buffer, Math.min(slot.buffer.length, end - position + 1), position);
      if (read === 0) throw new Error(`blob ended at ${position}, before byte ${end}`);
      position += read;
      slot.writing = new Promise((resolve, reject) =>
        response.write(slot.buffer.subarray(0, read), (error) => (error ? reject(error) : resolve())),
      );
      // A failed write rejects when awaited; keep it from counting as unhandled meanwhile.
      slot.writing.catch(() => undefined);
      if (response.writableNeedDrain) await drainedOrClosed(response);
    }
    await Promise.race([Promise.all(slots.map((slot) => slot.writing)), closed]);
    if (!response.destroyed) response.end();
  } catch {
    // Headers (and maybe bytes) are out: the only honest signal left is a cut connection.
    response.destroy();
  } finally {
    await reader.close().catch(() => undefined);
    // Every write settled only on a response that finished; a cut one may still hold its buffers.
    if (!response.destroyed) for (const slot of slots) give(slot.buffer);
  }
}

interface Slot {
  buffer: Buffer;
  writing: Promise<void>;
}

function drainedOrClosed(response: FastifyReply["raw"]): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}

function take(): Buffer {
  return spares.pop() ?? Buffer.allocUnsafeSlow(chunkBytes);
}

function give(buffer: Buffer): void {
  if (spares.length < spareLimit) spares.push(buffer);
}
