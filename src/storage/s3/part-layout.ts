/**
 * How an upload's bytes map to S3 multipart parts. Every instance must agree on the part holding a given
 * offset without asking anyone, so the layout is a pure function of the offset. Parts grow in tiers: the
 * first `partsPerTier` parts are `basePartSize` (the S3 minimum, so small blobs buffer little), the next
 * tier twice that, and so on. With the defaults (5 MiB, 1,000 parts per tier, 10 tiers) a blob may reach
 * about 268 GiB within S3's 10,000-part limit, while the buffer of one upload stays at most 50 MiB.
 */
export interface Part {
  /** S3 part number, from 1. */
  number: number;
  /** Offset of the part's first byte in the blob. */
  start: number;
  /** Size of the part when full (the blob's last part may be shorter). */
  size: number;
}

export class PartLayout {
  /** Bytes the layout can hold; a larger blob is refused. */
  readonly maxBytes: number;

  constructor(
    private readonly basePartSize = 5 * 1024 * 1024,
    private readonly partsPerTier = 1000,
    private readonly tiers = 10,
  ) {
    this.maxBytes = basePartSize * partsPerTier * ((tiers * (tiers + 1)) / 2);
  }

  /** The part that holds byte `offset`; throws when the offset lies past `maxBytes`. */
  partAt(offset: number): Part {
    let tierStart = 0;
    for (let tier = 0; tier < this.tiers; tier++) {
      const size = this.basePartSize * (tier + 1);
      const tierBytes = size * this.partsPerTier;
      if (offset < tierStart + tierBytes) {
        const index = Math.floor((offset - tierStart) / size);
        return { number: tier * this.partsPerTier + index + 1, start: tierStart + index * size, size };
      }
      tierStart += tierBytes;
    }
    throw new Error(`blob too large: the S3 store holds at most ${this.maxBytes} bytes per blob`);
  }

  /** The parts of a blob of `size` bytes (> 0), in order; the last one's size is what remains. */
  *partsOf(size: number): Generator<Part> {
    for (let start = 0; start < size; ) {
      const part = this.partAt(start);
      yield { ...part, size: Math.min(part.size, size - start) };
      start += part.size;
    }
  }
}
