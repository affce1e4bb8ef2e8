"""The raw clients: botocore for small requests and listing, obstore for bulk transfer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
from botocore.config import Config

from objbench.config import S3Endpoint

POLL_INTERVAL = 0.05


def botocore_client(s3: S3Endpoint) -> Any:
    session = botocore.session.get_session()
    config = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3},
                    max_pool_connections=16)
    return session.create_client("s3", endpoint_url=s3.endpoint, region_name=s3.region,
                                 aws_access_key_id=s3.access_key,
                                 aws_secret_access_key=s3.secret_key, config=config)


def obstore_store(s3: S3Endpoint, bucket: str) -> Any:
    from obstore.store import S3Store

    return S3Store(bucket, endpoint=s3.endpoint, access_key_id=s3.access_key,
                   secret_access_key=s3.secret_key, region=s3.region,
                   virtual_hosted_style_request=False, client_options={"allow_http": True})


def list_keys(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix``, directory markers (keys ending in "/") left out."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj["Key"]


def object_size(client: Any, bucket: str, key: str) -> int | None:
    try:
        return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def wait_visible_object(client: Any, bucket: str, key: str, size: int, timeout: float) -> None:
    wait_until(lambda: object_size(client, bucket, key) == size, timeout,
               f"{key} ({size} bytes) visible in the bucket")


def wait_visible_count(client: Any, bucket: str, prefix: str, count: int,
                       timeout: float) -> None:
    wait_until(lambda: sum(1 for _ in list_keys(client, bucket, prefix)) >= count, timeout,
               f"{count} objects under {prefix} visible in the bucket")
