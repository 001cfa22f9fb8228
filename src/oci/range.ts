/**
 * Byte ranges: `Content-Range` on chunk uploads (distribution-spec "Pushing a blob in chunks":
 * inclusive `<start>-<end>`) and `Range` on blob reads (RFC 9110 "Range Requests").
 */

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

// The spec's form is `^[0-9]+-[0-9]+$`; some clients send the RFC 9110 form `bytes 0-99/*`, which costs nothing to accept.
const contentRangeGrammar = /^(?:bytes[ =])?(\d{1,15})-(\d{1,15})(?:\/(?:\d{1,15}|\*))?$/;

/** Returns undefined when the header does not parse, or when end < start. */
export function parseContentRange(header: string): ByteRange | undefined {
  const match = contentRangeGrammar.exec(header.trim());
  if (!match) return undefined;
  const start = Number(match[1]);
  const end = Number(match[2]);
  if (end < start) return undefined;
  return { start, end };
}

export type RangeRequest =
  | { kind: "none" }
  | { kind: "satisfiable"; range: ByteRange }
  | { kind: "unsatisfiable" };

const rangeGrammar = /^bytes=(\d{0,15})-(\d{0,15})$/;

/**
 * Interprets a `Range` header against a representation of `size` bytes. Multiple ranges and
 * malformed headers are ignored (RFC 9110 allows serving the whole content instead).
 */
export function parseRangeHeader(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: "none" };
  const match = rangeGrammar.exec(header.trim());
  if (!match) return { kind: "none" };
  const [, first, last] = match;
  if (first === "" && last === "") return { kind: "none" };
  if (first === "") {
    // Suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0 || size === 0) return { kind: "unsatisfiable" };
    return { kind: "satisfiable", range: { start: Math.max(0, size - length), end: size - 1 } };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== "" && Number(last) < start) return { kind: "none" };
  if (start >= size) return { kind: "unsatisfiable" };
  return { kind: "satisfiable", range: { start, end } };
}
