import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseContentRange, parseRangeHeader } from "../../src/oci/range.js";

describe("oci/range: parseContentRange (Pushing a blob in chunks)", () => {
  test("parses the spec's inclusive <start>-<end>", () => {
    assert.deepEqual(parseContentRange("0-21"), { start: 0, end: 21 });
    assert.deepEqual(parseContentRange("22-41"), { start: 22, end: 41 });
    assert.deepEqual(parseContentRange("5-5"), { start: 5, end: 5 });
  });

  test("also takes the RFC 9110 form some clients send", () => {
    assert.deepEqual(parseContentRange("bytes 0-99/*"), { start: 0, end: 99 });
    assert.deepEqual(parseContentRange("bytes 100-199/1000"), { start: 100, end: 199 });
    assert.deepEqual(parseContentRange("bytes=0-9"), { start: 0, end: 9 });
  });

  test("rejects malformed ranges and end before start", () => {
    for (const header of ["", "0", "0-", "-5", "a-b", "21-0", "0-21-42", "bytes */100", "0 - 21", "1.5-2"]) {
      assert.equal(parseContentRange(header), undefined, JSON.stringify(header));
    }
  });
});

describe("oci/range: parseRangeHeader (RFC 9110 Range Requests)", () => {
  const size = 100;

  test("no header, or one it cannot use, means the whole representation", () => {
    for (const header of [undefined, "", "items=0-5", "bytes=0-1,5-6", "bytes=-", "bytes=abc", "bytes=9-3"]) {
      assert.deepEqual(parseRangeHeader(header, size), { kind: "none" }, String(header));
    }
  });

  test("a closed range, clamped to the end", () => {
    assert.deepEqual(parseRangeHeader("bytes=0-9", size), {
      kind: "satisfiable",
      range: { start: 0, end: 9 },
    });
    assert.deepEqual(parseRangeHeader("bytes=95-1000", size), {
      kind: "satisfiable",
      range: { start: 95, end: 99 },
    });
    assert.deepEqual(parseRangeHeader("bytes=99-99", size), {
      kind: "satisfiable",
      range: { start: 99, end: 99 },
    });
  });

  test("an open-ended range runs to the last byte", () => {
    assert.deepEqual(parseRangeHeader("bytes=90-", size), {
      kind: "satisfiable",
      range: { start: 90, end: 99 },
    });
    assert.deepEqual(parseRangeHeader("bytes=0-", size), {
      kind: "satisfiable",
      range: { start: 0, end: 99 },
    });
  });

  test("a suffix range is the last N bytes, all of them when N exceeds the size", () => {
    assert.deepEqual(parseRangeHeader("bytes=-10", size), {
      kind: "satisfiable",
      range: { start: 90, end: 99 },
    });
    assert.deepEqual(parseRangeHeader("bytes=-1000", size), {
      kind: "satisfiable",
      range: { start: 0, end: 99 },
    });
  });

  test("a range starting at or past the end, or an empty suffix, is unsatisfiable", () => {
    for (const header of ["bytes=100-", "bytes=100-200", "bytes=-0"]) {
      assert.deepEqual(parseRangeHeader(header, size), { kind: "unsatisfiable" }, header);
    }
    assert.deepEqual(parseRangeHeader("bytes=0-0", 0), { kind: "unsatisfiable" });
    assert.deepEqual(parseRangeHeader("bytes=-5", 0), { kind: "unsatisfiable" });
  });
});
