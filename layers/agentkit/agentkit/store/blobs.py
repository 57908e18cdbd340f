"""The claim-check bucket: what is too large for a DynamoDB item lives in S3, and the item
keeps an `s3://bucket/key` reference to it."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from agentkit import aws

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class ClaimChecks:
    def __init__(self, bucket: str | None, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    def put(self, key_stem: str, data: bytes, *, content_type: str, what: str) -> str:
        """Store `data` at `<key_stem>-<digest>` and return its reference. Content-addressed,
        so a retried write never changes what an existing reference points to."""
        if not self.bucket:
            raise ValueError(
                f"{what} of {len(data)} bytes is too large for the table "
                "and no ARTIFACTS_BUCKET is configured to hold it"
            )
        suffix = ".txt" if content_type.startswith("text/plain") else ".json"
        key = f"{key_stem}-{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return f"s3://{self.bucket}/{key}"

    def get(self, ref: str) -> bytes:
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = aws.client("s3")
        return self._client
