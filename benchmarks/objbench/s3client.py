"""The raw clients: botocore for small requests and listing, obstore for bulk transfer;
and the polling the benchmark does to see what a plain S3 client sees."""

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


def list_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """Every object under ``prefix`` (key, size, ...), directory markers included."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def list_keys(client: Any, bucket: str, prefix: str) -> Iterator[str]:
    """Every key under ``prefix``, directory markers (keys ending in "/") left out."""
    for obj in list_objects(client, bucket, prefix):
        if not obj["Key"].endswith("/"):
            yield obj["Key"]


def is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("404", "NoSuchKey", "NotFound")


def object_size(client: Any, bucket: str, key: str) -> int | None:
    try:
        return int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except client.exceptions.ClientError as exc:
        if is_missing(exc):
            return None
        raise


def read_range(client: Any, bucket: str, key: str, start: int, length: int) -> bytes:
    """``length`` bytes from ``start`` (a ranged GET); b"" if there is no such object."""
    try:
        body = client.get_object(Bucket=bucket, Key=key,
                                 Range=f"bytes={start}-{start + length - 1}")["Body"]
    except client.exceptions.ClientError as exc:
        if is_missing(exc) or "InvalidRange" in str(exc):
            return b""
        raise
    data: bytes = body.read()
    return data


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f} s")
        time.sleep(POLL_INTERVAL)


def wait_visible_object(client: Any, bucket: str, key: str, size: int, timeout: float) -> None:
    wait_until(lambda: object_size(client, bucket, key) == size, timeout,
               f"{key} ({size} bytes) visible in the bucket")


def wait_visible_keys(client: Any, bucket: str, prefix: str, keys: set[str],
                      timeout: float) -> None:
    """Until LIST under ``prefix`` shows every one of ``keys``."""
    wait_until(lambda: keys <= set(list_keys(client, bucket, prefix)), timeout,
               f"{len(keys)} objects under {prefix} visible in the bucket")


def wait_gone(client: Any, bucket: str, prefix: str, timeout: float) -> None:
    """Until LIST shows nothing under ``prefix`` (markers included)."""
    wait_until(lambda: next(list_objects(client, bucket, prefix), None) is None, timeout,
               f"nothing left under {prefix}")


def wait_content(client: Any, bucket: str, key: str, size: int, start: int, data: bytes,
                 timeout: float) -> None:
    """Until the object is ``size`` bytes long and holds ``data`` at ``start``: an
    overwrite or append is durable once a plain client reads the new bytes (HEAD first,
    which is cheap, then a ranged GET of the changed range)."""
    def check() -> bool:
        return (object_size(client, bucket, key) == size
                and read_range(client, bucket, key, start, len(data)) == data)
    wait_until(check, timeout, f"{key}: the {len(data)} new bytes at {start} visible")
