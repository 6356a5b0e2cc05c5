"""Shared by the media tests (issue 17): an S3-compatible server on loopback (moto's server mode, a real HTTP
server speaking S3's wire format) with an empty bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import boto3
from moto.server import ThreadedMotoServer

from scripts import devservices

BUCKET = "encargo-media"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@contextmanager
def s3_server() -> Iterator[str]:
    """Yields a MEDIA_STORE_URL for bucket BUCKET, prefix prod/media, on a fresh moto server."""
    port = devservices.free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS).create_bucket(Bucket=BUCKET)
        yield f"s3://{BUCKET}/prod/media?endpoint_url={endpoint}&region=us-east-1"
    finally:
        server.stop()
