import { randomBytes } from "node:crypto";
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";

const inCI = !["", "0", "false"].includes(process.env.CI ?? "");

/**
 * The S3 store the tests use, from the environment `../shared/s3/start-s3.sh` prints (S3_ENDPOINT,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION). Without it the S3 tests are skipped with this
 * reason, except in CI (CI set, as test/helpers/clients.ts reads it), where a missing store is a failure.
 */
export const s3Endpoint = process.env.S3_ENDPOINT;

export const s3Skip: string | false =
  s3Endpoint === undefined && !inCI
    ? "S3_ENDPOINT is not set (run: bash ../shared/s3/start-s3.sh >/tmp/s3.env && . /tmp/s3.env)"
    : false;

export interface TestBucket {
  endpoint: string;
  bucket: string;
  forcePathStyle: boolean;
}

/** A fresh bucket name per call (the store creates it); tests share the RGW, never a bucket. */
export function testBucket(): TestBucket {
  if (s3Endpoint === undefined) throw new Error("CI is set but S3_ENDPOINT is not set");
  return {
    endpoint: s3Endpoint,
    bucket: `berth-test-${randomBytes(6).toString("hex")}`,
    forcePathStyle: process.env.S3_FORCE_PATH_STYLE !== "false",
  };
}

/** Empties and deletes a test bucket, so a long-lived local RGW (memstore) does not fill up. */
export async function deleteTestBucket(bucket: TestBucket): Promise<void> {
  const client = new S3Client({
    endpoint: bucket.endpoint,
    region: process.env.AWS_REGION ?? "us-east-1",
    forcePathStyle: bucket.forcePathStyle,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  try {
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket.bucket }));
    for (const upload of uploads.Uploads ?? []) {
      await client.send(
        new AbortMultipartUploadCommand({
          Bucket: bucket.bucket,
          Key: upload.Key,
          UploadId: upload.UploadId,
        }),
      );
    }
    for (;;) {
      const page = await client.send(new ListObjectsV2Command({ Bucket: bucket.bucket }));
      const objects = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (objects.length === 0) break;
      await client.send(new DeleteObjectsCommand({ Bucket: bucket.bucket, Delete: { Objects: objects } }));
    }
    await client.send(new DeleteBucketCommand({ Bucket: bucket.bucket }));
  } finally {
    client.destroy();
  }
}
