"""Faults at the HTTP level, between the real clients (botocore, obstore) and the real
SeaweedFS, injected by tests/faultproxy.py: 5xx answers, resets, stalls, truncated bodies
and corrupted uploads. Every byte is checked with a plain client that bypasses the proxy."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from faultproxy import ALL_FAULTS, FaultPlan, FaultProxy
from intercept import Intercept, dirs_env, private_dirs, stop_daemons
from treesnap import snapshot

from objmount.config import S3Config
from objmount.errors import StoreUnavailable
from objmount.store.retry import RetryPolicy
from objmount.store.s3 import S3Account, S3ObjectStore

pytestmark = pytest.mark.s3
MIB = 1024 * 1024
PATIENT = RetryPolicy(attempts=10, base_delay=0.01, max_delay=0.1)


@pytest.fixture
def proxy(s3_server: Any) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint) as p:
        yield p


def store_via(proxy: FaultProxy, server: Any, bucket: str, *, stall: float = 0.5,
              retry: RetryPolicy = PATIENT) -> S3ObjectStore:
    config = S3Config(proxy.endpoint, "us-east-1", server.access_key, server.secret_key,
                      None, True, True, "test proxy")
    return S3Account(config, part_size=5 * MIB, retry=retry, stall_timeout=stall).bucket(bucket)


def body(client: Any, bucket: str, key: str) -> bytes:
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_every_operation_gets_through_a_30_percent_fault_rate(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    proxy.set_plan(FaultPlan(rate=0.3, stall_seconds=5, seed=11))
    store = store_via(proxy, s3_server, bucket)
    rounds = 4
    for i in range(rounds):
        data = os.urandom(3000 + i)
        odd_key = f"odd\x7fkey {i}"  # botocore's path: obstore cannot address it
        for key in (f"k{i}", odd_key):
            store.put(key, data, {"mode": "33188"}, "text/plain")
            assert store.get(key) == data
            assert store.get_range(key, 10, 200) == data[10:200]
            info = store.head(key)
            assert (info.size, info.metadata.get("mode")) == (len(data), "33188")
            store.copy(key, key + ".copy")
            assert body(s3_client, bucket, key + ".copy") == data
        got = bytearray(len(data))

        def sink(offset: int, chunk: memoryview, into: bytearray = got) -> None:
            into[offset:offset + len(chunk)] = chunk
        store.read_into(f"k{i}", 0, len(data), sink)
        assert bytes(got) == data
        names = {o.key for o in store.list("", None).objects}
        assert {f"k{i}", f"k{i}.copy", odd_key} <= names, sorted(names)
        store.delete(odd_key)
        store.delete_many([odd_key + ".copy"])
    # A multipart upload by parts (the engine's partial writes and streaming) ...
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB)]
    upload = store.create_upload("mp", {"mode": "33152"})
    etags = [(n, store.upload_part("mp", upload, n, p)) for n, p in enumerate(parts, 1)]
    store.complete_upload("mp", upload, etags)
    assert body(s3_client, bucket, "mp") == b"".join(parts)
    # ... and obstore's own multipart upload from a descriptor, then a download.
    big = os.urandom(12 * MIB + 5)
    with tempfile.TemporaryFile() as src, tempfile.TemporaryFile() as dst:
        src.write(big)
        src.flush()
        store.upload("big", src.fileno(), len(big), {"mode": "33188"})
        assert hashlib.sha256(body(s3_client, bucket, "big")).digest() == \
            hashlib.sha256(big).digest()
        store.download("big", dst.fileno())
        dst.seek(0)
        assert dst.read() == big
    # The faults were there: every kind of them, on reads and on writes.
    kinds = {k.split()[0] for k in proxy.stats.injected}
    assert kinds == set(ALL_FAULTS), proxy.stats.injected
    methods = {k.split()[1] for k in proxy.stats.injected}
    assert {"GET", "PUT", "HEAD", "POST", "DELETE"} <= methods, proxy.stats.injected
    print(f"store operations at 30%: {sum(proxy.stats.injected.values())} faults in "
          f"{proxy.stats.requests} requests, survived")


def test_a_stalled_request_is_asked_again_after_the_stall_timeout(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    data = os.urandom(4 * MIB)
    s3_client.put_object(Bucket=bucket, Key="k", Body=data)
    store = store_via(proxy, s3_server, bucket, stall=0.5)
    for fault, method in (("stall", "HEAD"), ("stall", "GET"), ("stall_body", "GET"),
                          ("stall", "PUT")):
        proxy.set_plan(FaultPlan(faults=(fault,), methods=frozenset({method}), first_only=1,
                                 stall_seconds=60))
        started = time.monotonic()
        if method == "HEAD":
            assert store.head("k").size == len(data)
        elif method == "GET":
            assert store.get("k") == data
        else:
            store.put("k", data, {})
        took = time.monotonic() - started
        assert proxy.stats.injected[f"{fault} {method}"] >= 1
        assert took < 5, f"{fault} {method}: {took:.1f}s, the stall was waited out"
    assert body(s3_client, bucket, "k") == data


def test_a_truncated_body_is_fetched_again_never_taken_for_data(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    data = os.urandom(3 * MIB + 7)
    s3_client.put_object(Bucket=bucket, Key="k", Body=data)
    store = store_via(proxy, s3_server, bucket)
    reads = {
        "get": lambda: store.get("k"),
        "get_range": lambda: store.get_range("k", 5, len(data)),
    }
    for name, read in reads.items():
        proxy.set_plan(FaultPlan(faults=("truncate",), methods=frozenset({"GET"}), first_only=1))
        expected = data if name == "get" else data[5:]
        assert read() == expected, name
    proxy.set_plan(FaultPlan(faults=("truncate",), methods=frozenset({"GET"}), first_only=2))
    with tempfile.TemporaryFile() as dst:
        store.download("k", dst.fileno())
        dst.seek(0)
        assert dst.read() == data
    assert proxy.stats.injected["truncate GET"] == 4


def test_a_body_corrupted_on_the_way_is_refused_by_the_store(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    """Uploads carry a checksum the store verifies: obstore's x-amz-checksum-sha256,
    botocore's Content-MD5. A changed byte is refused (BadDigest), and sent again."""
    store = store_via(proxy, s3_server, bucket)
    data = os.urandom(MIB)
    for key in ("odd\x7fkey", "plain"):  # botocore, then obstore
        proxy.set_plan(FaultPlan(faults=("corrupt",), methods=frozenset({"PUT"}), first_only=1))
        store.put(key, data, {})
        assert body(s3_client, bucket, key) == data, key
    proxy.set_plan(FaultPlan(faults=("corrupt",), methods=frozenset({"PUT"}), first_only=1))
    upload = store.create_upload("mp", {})
    part = os.urandom(5 * MIB)
    store.complete_upload("mp", upload, [(1, store.upload_part("mp", upload, 1, part))])
    assert body(s3_client, bucket, "mp") == part
    assert proxy.stats.injected["corrupt PUT"] == 3


def test_an_answer_lost_after_the_store_acted_is_not_an_error(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    """CompleteMultipartUpload and AbortMultipartUpload asked again after the store acted:
    AWS answers NoSuchUpload, and objmount then recognises the completed object by its
    ETag (an aborted upload is gone, as asked). SeaweedFS answers the repeat with success,
    so here the test shows the outcome, not which of the two paths led to it."""
    store = store_via(proxy, s3_server, bucket)
    part = os.urandom(5 * MIB)
    upload = store.create_upload("mp", {})
    etag = store.upload_part("mp", upload, 1, part)
    proxy.set_plan(FaultPlan(faults=("reset_after",), methods=frozenset({"POST"}),
                             first_only=1))
    store.complete_upload("mp", upload, [(1, etag), (2, store.upload_part("mp", upload, 2,
                                                                          b"tail"))])
    assert body(s3_client, bucket, "mp") == part + b"tail"
    upload = store.create_upload("gone", {})
    proxy.set_plan(FaultPlan(faults=("reset_after",), methods=frozenset({"DELETE"}),
                             first_only=1))
    store.abort_upload("gone", upload)
    assert proxy.stats.injected["reset_after POST"] == 1
    assert proxy.stats.injected["reset_after DELETE"] == 1
    uploads = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert all(u["UploadId"] != upload for u in uploads)


def test_faults_past_the_retry_budget_fail_in_bounded_time_and_keep_the_old_object(
        proxy: FaultProxy, s3_server: Any, s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"old")
    store = store_via(proxy, s3_server, bucket,
                      retry=RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2))
    for faults in (("503",), ("reset",), ("stall",)):
        proxy.set_plan(FaultPlan(rate=1.0, faults=faults, methods=frozenset({"PUT"}),
                                 stall_seconds=60))
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.put("k", b"new bytes", {})
        # Stalls: 0.5 + 0.5 + 2 + 2 s of waiting, then the error.
        assert time.monotonic() - started < 12, faults
        assert body(s3_client, bucket, "k") == b"old"


def make_tree(root: Path) -> None:
    """Small files in nested directories with assorted modes and times, and one file of
    several parts."""
    for d in range(3):
        sub = root / f"d{d}" / "deeper"
        sub.mkdir(parents=True)
        for i in range(8):
            f = (root / f"d{d}" if i % 2 else sub) / f"f{i}"
            f.write_bytes(os.urandom(100 + 997 * i))
            f.chmod(0o600 + 0o44 * (i % 2) + 0o100 * (i % 3 == 0))
            os.utime(f, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_123_456_789 + d * i))
    (root / "big").write_bytes(os.urandom(21 * MIB + 3))
    os.utime(root / "big", ns=(1_500_000_000_000_000_000, 1_500_000_000_000_000_000))


def test_cp_a_of_a_tree_into_and_out_of_the_mount_under_10_percent_faults(
        proxy: FaultProxy, s3_env: dict[str, str], bucket: str, tmp_path: Path,
        mount_factory: Callable[..., Mount]) -> None:
    """The tree copied in through the faults is whole in the store (seen through a
    second mount without faults), and copied out through the faults is whole again."""
    src = tmp_path / "src"
    make_tree(src)
    proxy.set_plan(FaultPlan(rate=0.1, stall_seconds=20, seed=5))
    faulty = mount_factory(f"s3://{bucket}", env={**s3_env, "AWS_ENDPOINT_URL": proxy.endpoint},
                           args=("--stall-timeout", "0.5"))
    faulty.mount()
    subprocess.run(["cp", "-a", str(src), str(faulty.path / "t")], check=True, timeout=300)
    out = tmp_path / "out"
    subprocess.run(["cp", "-a", str(faulty.path / "t"), str(out)], check=True, timeout=300)
    assert snapshot(str(out)) == snapshot(str(src))
    faulty.umount()
    injected = sum(proxy.stats.injected.values())
    assert injected >= 10, proxy.stats.injected
    print(f"cp -a through the mount at 10%: {injected} faults in {proxy.stats.requests} "
          "requests, survived")
    clean = mount_factory(f"s3://{bucket}")
    clean.mount()
    assert snapshot(str(clean.path / "t")) == snapshot(str(src))


def test_cp_a_through_interception_under_10_percent_faults(
        proxy: FaultProxy, s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    proxy.set_plan(FaultPlan(rate=0.1, stall_seconds=20, seed=7))
    base = private_dirs()
    env = {**s3_env, **dirs_env(base), "AWS_ENDPOINT_URL": proxy.endpoint}
    try:
        om = Intercept(env, bucket)
        opts = ("--stall-timeout", "0.5")
        om.run("cp", "-a", src, f"{om.path}/t", options=opts, timeout=300)
        out = tmp_path / "out"
        om.run("cp", "-a", f"{om.path}/t", out, options=opts, timeout=300)
        assert snapshot(str(out)) == snapshot(str(src))
    finally:
        stop_daemons(env)
        shutil.rmtree(base, ignore_errors=True)
    assert sum(proxy.stats.injected.values()) >= 10, proxy.stats.injected
    print(f"cp -a through interception at 10%: {sum(proxy.stats.injected.values())} faults "
          f"in {proxy.stats.requests} requests, survived")


def test_close_gives_eio_in_bounded_time_when_the_store_keeps_failing(
        proxy: FaultProxy, s3_env: dict[str, str], s3_client: Any, bucket: str,
        mount_factory: Callable[..., Mount]) -> None:
    s3_client.put_object(Bucket=bucket, Key="f", Body=b"old")
    m = mount_factory(f"s3://{bucket}", env={**s3_env, "AWS_ENDPOINT_URL": proxy.endpoint},
                      args=("--stall-timeout", "0.5"))
    m.mount()
    proxy.set_plan(FaultPlan(rate=1.0, faults=("503", "reset", "stall"),
                             methods=frozenset({"PUT", "POST"}), stall_seconds=60))
    started = time.monotonic()
    with pytest.raises(OSError) as caught, open(m.path / "f", "wb") as f:
        f.write(b"new bytes")
    took = time.monotonic() - started
    assert caught.value.errno == errno.EIO
    # Six attempts, stalls waited out for 0.5, 0.5, 2, 2, 8, 8 s at most, plus backoff.
    assert took < 60, f"close took {took:.0f} s"
    assert body(s3_client, bucket, "f") == b"old"
    listing = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listing] == ["f"]
