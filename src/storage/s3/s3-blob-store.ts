import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  type Part as UploadedPart,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { LRUCache } from "lru-cache";
import { type Digest, parseDigest } from "../../oci/digest.js";
import type { ByteRange } from "../../oci/range.js";
import { BlobNotFoundError, type BlobStore, type StoredBlob, type StoredUpload } from "../blob-store.js";
import { type Part, PartLayout } from "./part-layout.js";

export interface S3BlobStoreOptions {
  bucket: string;
  /** Key prefix, empty or ending in "/". */
  prefix: string;
  endpoint?: string;
  region?: string;
  forcePathStyle: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Creates the bucket when it does not exist (convenient for tests and single-tenant stores). */
  createBucket?: boolean;
  /** When set, `redirectUrl` presigns GETs valid this many seconds; unset, blobs are streamed. */
  redirectExpirySeconds?: number;
  /** How offsets map to parts; the default suits production, tests shrink the tiers to cross them cheaply. */
  partLayout?: PartLayout;
}

/** How long a data object must stay unnamed by any link, over two GC passes, before it is deleted. */
const leftoverConfirmMs = 60_000;

const uploadIdGrammar = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Object metadata (x-amz-meta-*) of a blob key that points at data stored under another key. */
const linkDataKey = "berth-data-key";
const linkSize = "berth-size";

/**
 * Blobs in an S3-compatible bucket, shared by any number of berth instances. Layout under the prefix:
 *
 * - `uploads/<id>/seg-<offset>`: the upload's bytes from `offset` (the start of a part of the
 *   PartLayout), one object per part, so any instance can read them back to rebuild a running hash (S3 cannot GET a part
 *   of an unfinished multipart upload). The last segment is the tail shorter than a part; a later chunk
 *   rewrites it longer, and once it is a full part it is uploaded as a part too.
 * - `data/<id>`: the upload's multipart upload; each full segment is also its part (numbered by the PartLayout).
 *   The UploadId and part ETags are recovered with ListMultipartUploads and ListParts, so no instance
 *   keeps state. CompleteMultipartUpload assembles the blob in place: its bytes are never copied.
 * - `blobs/<algorithm>/<hex>`: the published blob. For uploads it is an empty link object whose metadata
 *   names the `data/<id>` key and the size (S3 has no rename, and a copy is limited to 5 GiB); for
 *   putBlob (manifests) it holds the bytes. The link is written after the data is complete, so a crash
 *   leaves only unreferenced garbage. Links are immutable, so they are cached.
 *
 * Cost: every byte of a chunked or monolithic upload is sent to the store twice (part and segment), in
 * parallel; a chunk that does not end on a part boundary rewrites the tail segment (up to 5 MiB), so many
 * tiny PATCH requests cost up to 5 MiB each. At most one part is buffered in memory per upload.
 */
export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly redirectExpirySeconds: number | undefined;
  private readonly layout: PartLayout;
  /**
   * digest -> data key and size of published links. gc: entries expire, because garbage collection (on any
   * instance) may delete a blob and a later push publish it under a new key. GC deletes only blobs no
   * repository could serve for a grace period (an hour by default), longer than an entry lives, so the entry
   * has expired by then; reads retry a stale entry fresh anyway.
   */
  private readonly links = new LRUCache<string, { key: string; size: number }>({
    max: 10_000,
    ttl: 5 * 60_000,
  });
  /** gc: data keys seen without a link by collectLeftovers, and since when. */
  private unnamedSince = new Map<string, number>();
  /** upload id -> S3 UploadId, for uploads this instance has seen. */
  private readonly multipartIds = new LRUCache<string, string>({ max: 10_000 });

  private constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.redirectExpirySeconds = options.redirectExpirySeconds;
    this.layout = options.partLayout ?? new PartLayout();
    this.client = new S3Client({
      endpoint: options.endpoint,
      region: options.region ?? process.env.AWS_REGION ?? "us-east-1",
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      // The default aws-chunked checksum trailers are rejected by some S3-compatible stores (Ceph RGW).
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
    });
  }

  static async open(options: S3BlobStoreOptions): Promise<S3BlobStore> {
    const store = new S3BlobStore(options);
    if (options.createBucket) {
      try {
        await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }));
      } catch (error) {
        if (!isNotFound(error)) throw error;
        await store.client.send(new CreateBucketCommand({ Bucket: store.bucket }));
      }
    }
    return store;
  }

  private uploadPrefix(uploadId: string): string {
    if (!uploadIdGrammar.test(uploadId)) throw new Error(`invalid upload id ${JSON.stringify(uploadId)}`);
    return `${this.prefix}uploads/${uploadId}/`;
  }

  private segmentKey(uploadId: string, offset: number): string {
    return `${this.uploadPrefix(uploadId)}seg-${offset.toString().padStart(15, "0")}`;
  }

  private dataKey(uploadId: string): string {
    this.uploadPrefix(uploadId);
    return `${this.prefix}data/${uploadId}`;
  }

  private blobKey(digest: Digest): string {
    return `${this.prefix}blobs/${digest.algorithm}/${digest.encoded}`;
  }

  async createUpload(uploadId: string): Promise<void> {
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.dataKey(uploadId) }),
    );
    if (!created.UploadId) throw new Error("CreateMultipartUpload returned no UploadId");
    this.multipartIds.set(uploadId, created.UploadId);
  }

  /** The S3 UploadId of an upload, from this instance's memory or the bucket's list of multipart uploads. */
  private async multipartId(uploadId: string): Promise<string> {
    const known = this.multipartIds.get(uploadId);
    if (known) return known;
    const key = this.dataKey(uploadId);
    const listed = await this.client.send(
      new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }),
    );
    const found = listed.Uploads?.find((u) => u.Key === key)?.UploadId;
    if (!found) throw new BlobNotFoundError(`upload ${uploadId}`);
    this.multipartIds.set(uploadId, found);
    return found;
  }

  async writeUpload(uploadId: string, offset: number, source: AsyncIterable<Buffer>): Promise<number> {
    const multipartId = await this.multipartId(uploadId);
    let part = this.layout.partAt(offset);
    let segmentStart = part.start;
    // The bytes already received of the part this chunk continues (the tail segment), at most one part.
    let buffer =
      offset > segmentStart ? await this.readSegment(uploadId, segmentStart, offset - segmentStart) : empty;
    let written = 0;
    for await (const chunk of source) {
      written += chunk.length;
      let rest = chunk;
      while (buffer.length + rest.length >= part.size) {
        const take = part.size - buffer.length;
        const full = Buffer.concat([buffer, rest.subarray(0, take)]);
        rest = rest.subarray(take);
        buffer = empty;
        await this.putPart(uploadId, multipartId, part, full);
        part = this.layout.partAt(part.start + part.size);
        segmentStart = part.start;
      }
      buffer = buffer.length === 0 ? Buffer.from(rest) : Buffer.concat([buffer, rest]);
    }
    if (buffer.length > 0) await this.putSegment(uploadId, segmentStart, buffer);
    return written;
  }

  /** A full part: uploaded as a multipart part and, readable, as a segment. */
  private async putPart(uploadId: string, multipartId: string, part: Part, bytes: Buffer): Promise<void> {
    await Promise.all([
      this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: this.dataKey(uploadId),
          UploadId: multipartId,
          PartNumber: part.number,
          Body: bytes,
          ContentLength: bytes.length,
        }),
      ),
      this.putSegment(uploadId, part.start, bytes),
    ]);
  }

  private async putSegment(uploadId: string, start: number, bytes: Buffer): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.segmentKey(uploadId, start),
        Body: bytes,
        ContentLength: bytes.length,
      }),
    );
  }

  /** The first `length` bytes of the segment at `start`; BlobNotFoundError when it has fewer. */
  private async readSegment(uploadId: string, start: number, length: number): Promise<Buffer> {
    const body = await this.getObject(
      this.segmentKey(uploadId, start),
      { start: 0, end: length - 1 },
      () => `upload ${uploadId}`,
    );
    const bytes = Buffer.from(await body.transformToByteArray());
    if (bytes.length !== length)
      throw new BlobNotFoundError(`upload ${uploadId} bytes ${start}-${start + length - 1}`);
    return bytes;
  }

  async readUpload(uploadId: string, length: number): Promise<Readable> {
    this.uploadPrefix(uploadId);
    const store = this;
    async function* segments(): AsyncGenerator<Buffer> {
      if (length === 0) return;
      for (const part of store.layout.partsOf(length)) {
        const body = await store.getObject(
          store.segmentKey(uploadId, part.start),
          { start: 0, end: part.size - 1 },
          () => `upload ${uploadId}`,
        );
        for await (const chunk of body as AsyncIterable<Buffer>) yield chunk;
      }
    }
    return Readable.from(segments(), { objectMode: false });
  }

  async commitUpload(uploadId: string, size: number, digest: Digest): Promise<void> {
    const multipartId = await this.multipartId(uploadId);
    const dataKey = this.dataKey(uploadId);
    if (size === 0) {
      // S3 has no empty multipart upload: an empty blob is stored as an ordinary (empty) object.
      await this.putBlob(digest, empty);
      await this.deleteUpload(uploadId);
      return;
    }
    const last = this.layout.partAt(size - 1);
    const tail = size - last.start;
    if (tail < last.size) {
      await this.client.send(
        new UploadPartCommand({
          Bucket: this.bucket,
          Key: dataKey,
          UploadId: multipartId,
          PartNumber: last.number,
          Body: await this.readSegment(uploadId, last.start, tail),
          ContentLength: tail,
        }),
      );
    }
    const uploaded = await this.listParts(dataKey, multipartId);
    const chosen: CompletedPart[] = [];
    for (const part of this.layout.partsOf(size)) {
      const found = uploaded.get(part.number);
      if (!found?.ETag || found.Size !== part.size)
        throw new BlobNotFoundError(`upload ${uploadId} part ${part.number}`);
      chosen.push({ PartNumber: part.number, ETag: found.ETag });
    }
    // Ceph RGW answers with an empty ETag; nothing here needs it.
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: dataKey,
        UploadId: multipartId,
        MultipartUpload: { Parts: chosen },
      }),
    );
    this.multipartIds.delete(uploadId);
    if ((await this.locate(digest, true)) === undefined) {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.blobKey(digest),
          Body: empty,
          ContentLength: 0,
          Metadata: { [linkDataKey]: dataKey, [linkSize]: String(size) },
        }),
      );
    } else {
      // Already published by another upload: this copy is not needed.
      await this.deleteObject(dataKey);
    }
    await this.deletePrefix(this.uploadPrefix(uploadId));
  }

  private async listParts(key: string, multipartId: string): Promise<Map<number, UploadedPart>> {
    const parts = new Map<number, UploadedPart>();
    let marker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListPartsCommand({
          Bucket: this.bucket,
          Key: key,
          UploadId: multipartId,
          PartNumberMarker: marker,
        }),
      );
      for (const part of page.Parts ?? [])
        if (part.PartNumber !== undefined) parts.set(part.PartNumber, part);
      if (!page.IsTruncated || page.NextPartNumberMarker === undefined) return parts;
      marker = page.NextPartNumberMarker;
    }
  }

  async deleteUpload(uploadId: string): Promise<void> {
    try {
      const multipartId = await this.multipartId(uploadId);
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.dataKey(uploadId),
          UploadId: multipartId,
        }),
      );
    } catch (error) {
      if (!(error instanceof BlobNotFoundError) && !isNotFound(error)) throw error;
    }
    this.multipartIds.delete(uploadId);
    await this.deletePrefix(this.uploadPrefix(uploadId));
  }

  async putBlob(digest: Digest, bytes: Buffer): Promise<void> {
    if ((await this.locate(digest, true)) !== undefined) return;
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: this.blobKey(digest),
        Body: bytes,
        ContentLength: bytes.length,
      }),
    );
  }

  /** Where a blob's bytes are: its own key, or the data key its link names. Undefined when absent. */
  private async locate(digest: Digest, fresh = false): Promise<{ key: string; size: number } | undefined> {
    // Content never changes, but another instance may delete it: writers ask the bucket, not the cache.
    const cached = fresh ? undefined : this.links.get(digest.value);
    if (cached) return cached;
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(digest) }),
      );
      const dataKey = head.Metadata?.[linkDataKey];
      const location = dataKey
        ? { key: dataKey, size: Number(head.Metadata?.[linkSize]) }
        : { key: this.blobKey(digest), size: head.ContentLength ?? 0 };
      this.links.set(digest.value, location);
      return location;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async readBlob(digest: Digest, range?: ByteRange): Promise<Readable> {
    return this.readLocated(digest, async (location) => {
      if (location.size === 0) return Readable.from([]);
      return (await this.getObject(location.key, range, () => digest.value)) as Readable;
    });
  }

  async readBlobBytes(digest: Digest): Promise<Buffer> {
    return this.readLocated(digest, async (location) => {
      if (location.size === 0) return empty;
      const body = await this.getObject(location.key, undefined, () => digest.value);
      return Buffer.from(await body.transformToByteArray());
    });
  }

  /**
   * Reads through the cached location, and once more through a fresh one when that is gone: garbage
   * collection (on any instance) may have deleted the blob, and a later push published it under a new key.
   */
  private async readLocated<T>(
    digest: Digest,
    read: (location: { key: string; size: number }) => Promise<T>,
  ): Promise<T> {
    const cached = this.links.get(digest.value);
    const location = cached ?? (await this.locate(digest));
    if (!location) throw new BlobNotFoundError(digest.value);
    try {
      return await read(location);
    } catch (error) {
      if (!(cached && error instanceof BlobNotFoundError)) throw error;
      const fresh = await this.locate(digest, true);
      if (!fresh) throw error;
      return read(fresh);
    }
  }

  /**
   * A presigned GetObject of the object holding the blob's bytes (the data key a link names), or
   * undefined when redirects are off or the blob is empty (nothing to fetch; streamed instead). The URL
   * covers the whole object; a client following the redirect sends its own Range header, which S3 honours.
   */
  async redirectUrl(digest: Digest): Promise<string | undefined> {
    if (this.redirectExpirySeconds === undefined) return undefined;
    const location = await this.locate(digest);
    if (!location) throw new BlobNotFoundError(digest.value);
    if (location.size === 0) return undefined;
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: location.key,
      }),
      { expiresIn: this.redirectExpirySeconds },
    );
  }

  async statBlob(digest: Digest): Promise<number | undefined> {
    return (await this.locate(digest))?.size;
  }

  async deleteBlob(digest: Digest): Promise<void> {
    const location = await this.locate(digest, true);
    this.links.delete(digest.value);
    if (!location) return;
    // The link first: from then on the data is unreferenced garbage at worst.
    await this.deleteObject(this.blobKey(digest));
    if (location.key !== this.blobKey(digest)) await this.deleteObject(location.key);
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  // gc: listings for garbage collection, scrub and fsck.

  private async *listObjects(
    prefix: string,
  ): AsyncGenerator<{ key: string; size: number; modifiedAt: number }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key, size: object.Size ?? 0, modifiedAt: object.LastModified?.getTime() ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async *listBlobs(): AsyncIterable<StoredBlob> {
    const prefix = `${this.prefix}blobs/`;
    for await (const object of this.listObjects(prefix)) {
      const [algorithm, encoded, ...rest] = object.key.slice(prefix.length).split("/");
      if (rest.length > 0) continue;
      let digest: Digest;
      try {
        digest = parseDigest(`${algorithm}:${encoded}`);
      } catch {
        continue;
      }
      // An empty object is a link (its size is in its metadata), or the empty blob itself.
      yield { digest, size: object.size > 0 ? object.size : undefined, modifiedAt: object.modifiedAt };
    }
  }

  async *listUploads(): AsyncIterable<StoredUpload> {
    const latest = new Map<string, number>();
    const note = (id: string | undefined, at: number) => {
      if (id !== undefined && uploadIdGrammar.test(id)) latest.set(id, Math.max(latest.get(id) ?? 0, at));
    };
    const segments = `${this.prefix}uploads/`;
    for await (const object of this.listObjects(segments))
      note(object.key.slice(segments.length).split("/")[0], object.modifiedAt);
    const data = `${this.prefix}data/`;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: data,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const upload of page.Uploads ?? [])
        note(upload.Key?.slice(data.length), upload.Initiated?.getTime() ?? 0);
      if (!page.IsTruncated) break;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
    for (const [id, modifiedAt] of latest) yield { id, modifiedAt };
  }

  /**
   * Completed `data/<id>` objects no link names: a crash between CompleteMultipartUpload and writing the
   * link, or a duplicate publish whose cleanup failed. Finding the names costs one HEAD per link.
   * A publish writes its link right after completing the data object, but the object's LastModified may
   * be when its multipart upload began (AWS), so age alone cannot tell a publish in progress from a
   * leftover: an object is deleted only once this instance has seen it unnamed for `leftoverConfirmMs`,
   * over two passes. A single `berth gc` run therefore reports such objects but leaves them.
   */
  async collectLeftovers(before: number, dryRun: boolean): Promise<{ key: string; size: number }[]> {
    const named = new Set<string>();
    const heads: Promise<void>[] = [];
    const blobs = `${this.prefix}blobs/`;
    for await (const object of this.listObjects(blobs)) {
      if (object.size > 0) continue;
      heads.push(
        this.client
          .send(new HeadObjectCommand({ Bucket: this.bucket, Key: object.key }))
          .then((head) => {
            const dataKey = head.Metadata?.[linkDataKey];
            if (dataKey) named.add(dataKey);
          })
          .catch((error: unknown) => {
            if (!isNotFound(error)) throw error;
          }),
      );
      if (heads.length >= 16) await Promise.all(heads.splice(0));
    }
    await Promise.all(heads);
    const leftovers: { key: string; size: number }[] = [];
    const now = Date.now();
    const seen = new Map<string, number>();
    for await (const object of this.listObjects(`${this.prefix}data/`)) {
      if (object.modifiedAt >= before || named.has(object.key)) continue;
      const first = this.unnamedSince.get(object.key) ?? now;
      seen.set(object.key, first);
      if (now - first >= leftoverConfirmMs) leftovers.push({ key: object.key, size: object.size });
    }
    this.unnamedSince = seen;
    if (!dryRun) for (const leftover of leftovers) await this.deleteObject(leftover.key);
    return leftovers;
  }

  private async getObject(key: string, range: ByteRange | undefined, what: () => string) {
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
      if (!response.Body) throw new Error(`GetObject ${key} returned no body`);
      return response.Body;
    } catch (error) {
      if (isNotFound(error) || httpStatus(error) === 416) throw new BlobNotFoundError(what());
      throw error;
    }
  }

  private async deleteObject(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  private async deletePrefix(prefix: string): Promise<void> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }),
      );
      const keys = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (keys.length > 0) {
        await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys, Quiet: true } }),
        );
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Releases the HTTP agent's sockets. */
  destroy(): void {
    this.client.destroy();
  }
}

const empty = Buffer.alloc(0);

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return httpStatus(error) === 404 || name === "NoSuchKey" || name === "NotFound" || name === "NoSuchUpload";
}
