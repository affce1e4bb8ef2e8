"""Pytest fixtures backed by a real S3 server: one private SeaweedFS per test session.

Load with ``pytest_plugins = ["s3fixtures"]`` (or ``from s3fixtures import *``).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from objmount.server import (
    ServerError,
    ServerInfo,
    botocore_client,
    free_ports,
    start_server,
    stop_server,
    weed_binary,
)

__all__ = ["bucket", "isolated_aws_env", "moto_server", "s3_client", "s3_env", "s3_server",
           "seaweedfs_server", "server_requests", "server_traffic"]

log = logging.getLogger(__name__)

SESSION_BUCKET = "objmount-test"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session", autouse=True)
def isolated_aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep the developer's AWS setup out of every test, in-process and in subprocesses:
    no inherited AWS_* variables (an AWS_PROFILE naming a missing profile breaks SDKs) and
    config/credentials files that do not exist. Yields that nonexistent directory."""
    nowhere = tmp_path_factory.mktemp("no-aws") / "absent"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                mp.delenv(name)
        mp.setenv("AWS_CONFIG_FILE", str(nowhere / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(nowhere / "credentials"))
        yield nowhere


@pytest.fixture(scope="session")
def s3_server(seaweedfs_server: ServerInfo) -> ServerInfo:
    """The S3 server of the session: SeaweedFS. (both_stores.py makes it either.)"""
    return seaweedfs_server


@pytest.fixture(scope="session")
def seaweedfs_server(
    tmp_path_factory: pytest.TempPathFactory, isolated_aws_env: Path
) -> Iterator[ServerInfo]:
    """A SeaweedFS server with random credentials and the bucket ``objmount-test``."""
    try:
        weed_binary()
    except ServerError as e:
        if _in_ci():
            pytest.fail(f"{e} (CI is set, so the real S3 server is required)")
        pytest.skip(f"{e} (tests that need a real S3 server are skipped)")
    info = start_server(
        tmp_path_factory.mktemp("s3server"),
        [SESSION_BUCKET],
        access_key="test-" + secrets.token_hex(8),
        secret_key=secrets.token_hex(20),
    )
    try:
        yield info
    finally:
        stop_server(info.pid)


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory,
                isolated_aws_env: Path) -> Iterator[ServerInfo]:
    """moto's S3 server, the second S3 implementation: unlike SeaweedFS it keeps user
    metadata on ``dir/`` markers. Started on a free port, stopped by PID."""
    moto = Path(sys.executable).with_name("moto_server")
    if not moto.exists():
        if _in_ci():
            pytest.fail("moto_server is not installed (CI is set, so it is required)")
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    workdir = tmp_path_factory.mktemp("moto")
    log_file = workdir / "moto.log"
    port = free_ports(1)[0]
    with open(log_file, "wb") as out:
        proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    info = ServerInfo(pid=proc.pid, endpoint=f"http://127.0.0.1:{port}",
                      access_key="moto-" + secrets.token_hex(4),
                      secret_key=secrets.token_hex(20), data_dir=workdir, log_file=log_file,
                      metrics_port=0)
    client = botocore_client(info.endpoint, info.access_key, info.secret_key)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start: {log_file.read_text()[-2000:]}")
            time.sleep(0.1)
    try:
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def s3_client(s3_server: ServerInfo) -> Any:
    """A botocore S3 client (path style, no retries) with the server's credentials."""
    return botocore_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, empty bucket named ``t-<hex>``; emptied and deleted afterwards."""
    name = f"t-{secrets.token_hex(6)}"
    s3_client.create_bucket(Bucket=name)
    yield name
    _delete_bucket(s3_client, name)


def _delete_bucket(client: Any, name: str) -> None:
    """Best effort: a failed cleanup must not turn a passing test into an error."""
    try:
        uploads = client.list_multipart_uploads(Bucket=name).get("Uploads", [])
        for up in uploads:
            client.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=name)
    except Exception:
        log.warning("could not delete test bucket %s", name, exc_info=True)


@pytest.fixture(scope="session")
def s3_env(s3_server: ServerInfo, isolated_aws_env: Path) -> dict[str, str]:
    """Environment variables for subprocesses that talk to the server (merge over
    os.environ). AWS config/credentials files point to nowhere so ~/.aws is never read."""
    return {
        **s3_server.env(),
        "AWS_CONFIG_FILE": str(isolated_aws_env / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(isolated_aws_env / "credentials"),
    }


_REQUEST_METRIC = re.compile(
    r'^SeaweedFS_s3_request_total\{bucket="([^"]*)",code="(\d+)",type="(\w+)"\} (\d+)$',
    re.MULTILINE)


def server_requests(server: ServerInfo, bucket: str | None = None) -> Counter[str]:
    """Requests the server has answered since it started, by its request type (it counts
    HEAD as GET) and status code, e.g. ``"GET 404"``: what a client cannot under-count."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for m in _REQUEST_METRIC.finditer(text):
        if bucket is None or m.group(1) == bucket:
            counts[f"{m.group(3)} {m.group(2)}"] += int(m.group(4))
    return counts


_TRAFFIC_METRIC = re.compile(
    r'^SeaweedFS_s3_bucket_traffic_(received|sent)_bytes_total\{bucket="([^"]*)"\} (\S+)$',
    re.MULTILINE)


def server_traffic(server: ServerInfo, bucket: str) -> dict[str, int]:
    """Bytes the server has received from and sent to clients for ``bucket``."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    traffic = {"received": 0, "sent": 0}
    for m in _TRAFFIC_METRIC.finditer(text):
        if m.group(2) == bucket:
            traffic[m.group(1)] = int(float(m.group(3)))
    return traffic
