import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PartLayout } from "../../src/storage/s3/part-layout.js";

const mebibyte = 1024 * 1024;
const gibibyte = 1024 * mebibyte;

describe("S3 part layout", () => {
  const layout = new PartLayout();

  test("the first tier is the S3 minimum part size, numbered from 1", () => {
    assert.deepEqual(layout.partAt(0), { number: 1, start: 0, size: 5 * mebibyte });
    assert.deepEqual(layout.partAt(5 * mebibyte - 1), { number: 1, start: 0, size: 5 * mebibyte });
    assert.deepEqual(layout.partAt(5 * mebibyte), { number: 2, start: 5 * mebibyte, size: 5 * mebibyte });
  });

  test("part 1001 starts the second tier with parts twice as large", () => {
    const tierStart = 1000 * 5 * mebibyte;
    assert.deepEqual(layout.partAt(tierStart - 1).number, 1000);
    assert.deepEqual(layout.partAt(tierStart), { number: 1001, start: tierStart, size: 10 * mebibyte });
  });

  test("blobs past S3's 5 GiB copy limit and the old 48.8 GiB cap fit within 10,000 parts", () => {
    for (const size of [5 * gibibyte + 1, 49 * gibibyte, 200 * gibibyte]) {
      const last = layout.partAt(size - 1);
      assert.ok(last.number <= 10_000, `${size} bytes need part ${last.number}`);
    }
    assert.ok(layout.maxBytes > 268 * gibibyte);
    assert.throws(() => layout.partAt(layout.maxBytes), /blob too large/);
  });

  test("parts tile a blob: contiguous, numbered in order, every part but the last at least 5 MiB", () => {
    const small = new PartLayout(5 * mebibyte, 3, 4);
    for (const size of [1, 5 * mebibyte, 5 * mebibyte + 1, 47 * mebibyte + 3, small.maxBytes]) {
      const parts = [...small.partsOf(size)];
      let next = 0;
      for (const [index, part] of parts.entries()) {
        assert.equal(part.number, index + 1);
        assert.equal(part.start, next);
        if (index < parts.length - 1) assert.ok(part.size >= 5 * mebibyte);
        assert.deepEqual(small.partAt(part.start).start, part.start);
        next += part.size;
      }
      assert.equal(next, size);
    }
  });
});
