"""Odd and hostile input through the FUSE mount: names of every kind, metadata another tool
wrote wrong, a cache directory deleted under the daemon, a bucket deleted while mounted,
the server going away and coming back. Each gets a clear error or a documented
behaviour; the daemon never dies and nothing acknowledged is lost."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import time
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Mount
from faultproxy import FaultProxy

pytestmark = pytest.mark.s3

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
ODD_NAMES = ["with space", "new\nline", "tab\there", NFC, NFD, "ü" * 127, "x" * 255,
             "-dash", "*star?", "'quote\"", "%41percent", "emoji-\U0001F600"]


def alive(m: Mount) -> None:
    assert m.pid is not None
    os.kill(m.pid, 0)
    (m.path / ".alive").write_bytes(b"ok")
    assert (m.path / ".alive").read_bytes() == b"ok"
    (m.path / ".alive").unlink()


def test_odd_names_and_empty_files_round_trip(mounted: Mount, s3_client: Any,
                                               bucket: str) -> None:
    assert NFC != NFD
    for i, name in enumerate(ODD_NAMES):
        (mounted.path / name).write_bytes(name.encode() * (i % 3))  # some are empty
    mounted.remount()
    assert sorted(os.listdir(mounted.path)) == sorted(ODD_NAMES)
    for i, name in enumerate(ODD_NAMES):
        assert (mounted.path / name).read_bytes() == name.encode() * (i % 3), repr(name)
    # One object per name, under exactly that name: NFC and NFD are two keys.
    keys = sorted(o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == sorted(ODD_NAMES)


def test_a_long_key_made_elsewhere_is_shown_and_one_too_long_is_refused(
        mounted: Mount, s3_client: Any, bucket: str) -> None:
    segments = ["d" * 250, "e" * 250, "f" * 250, "g" * 250]
    key = "/".join(segments) + "/" + "h" * (1024 - 4 * 251)
    assert len(key.encode()) == 1024
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"deep")
    assert (mounted.path / key).read_bytes() == b"deep"
    with pytest.raises(OSError) as caught:
        (mounted.path / (key + "x")).write_bytes(b"too long")
    assert caught.value.errno == errno.ENAMETOOLONG


def test_garbage_metadata_shows_defaults_and_never_ends_the_daemon(
        mounted: Mount, s3_client: Any, bucket: str) -> None:
    garbage = [
        {"mode": "banana", "uid": "99999999999999999999", "gid": "-5", "mtime": "-1e999"},
        {"mode": "4294967295", "uid": "4294967295", "atime": "9" * 40, "ctime": "1.2.3"},
        {"mode": "0o755", "uid": " 12 ", "gid": "0x10", "mtime": "99999999999.5"},
        {"mode": str(stat.S_IFLNK | 0o777), "mtime": "nan"},  # a "symlink" of 5 bytes
    ]
    for i, meta in enumerate(garbage):
        s3_client.put_object(Bucket=bucket, Key=f"g{i}", Body=b"bytes", Metadata=meta)
    listing = sorted(os.listdir(mounted.path))
    assert listing == [f"g{i}" for i in range(len(garbage))]
    for name in listing:
        st = os.lstat(mounted.path / name)
        assert 0 <= st.st_uid < 2**32 - 1 and 0 <= st.st_gid < 2**32 - 1
    assert os.stat(mounted.path / "g2").st_uid == 12  # what is a number is used
    assert (mounted.path / "g0").read_bytes() == b"bytes"
    assert os.readlink(mounted.path / "g3") == "bytes"
    alive(mounted)


def test_a_deleted_cache_directory_is_made_again(mount_factory: Callable[..., Mount],
                                                 bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="old", Body=b"old bytes")
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    assert (m.path / "old").read_bytes() == b"old bytes"
    # (The daemon may remove a file of its own while this runs: missing ones are fine.)
    shutil.rmtree(m.workdir / "cache", ignore_errors=True)
    (m.path / "new").write_bytes(b"new bytes")
    assert (m.path / "old").read_bytes() == b"old bytes"
    assert s3_client.get_object(Bucket=bucket, Key="new")["Body"].read() == b"new bytes"
    assert stat.S_IMODE((m.workdir / "cache").stat().st_mode) == 0o700
    assert "was deleted: making it again" in m.read_log()


def test_a_bucket_deleted_while_mounted(mount_factory: Callable[..., Mount],
                                        s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="f", Body=b"x")
    m = mount_factory(f"s3://{bucket}", options="attr_timeout=0,negative_timeout=0")
    m.mount()
    assert os.listdir(m.path) == ["f"]
    s3_client.delete_object(Bucket=bucket, Key="f")
    s3_client.delete_bucket(Bucket=bucket)
    with pytest.raises(OSError) as caught:
        (m.path / "g").write_bytes(b"y")
    assert caught.value.errno == errno.ENOENT
    assert "the bucket is gone" in m.read_log()
    assert m.pid is not None
    os.kill(m.pid, 0)  # still serving
    s3_client.create_bucket(Bucket=bucket)  # back: the mount works again
    (m.path / "g").write_bytes(b"y")
    assert s3_client.get_object(Bucket=bucket, Key="g")["Body"].read() == b"y"


def test_the_server_going_away_and_coming_back(mount_factory: Callable[..., Mount],
                                               s3_server: Any, s3_env: dict[str, str],
                                               s3_client: Any, bucket: str) -> None:
    """Connections refused (the proxy in front of the server stopped): operations give
    EIO after the retries; at the same address again, the same mount works again."""
    s3_client.put_object(Bucket=bucket, Key="f", Body=b"x")
    proxy = FaultProxy(s3_server.endpoint).start()
    m = mount_factory(f"s3://{bucket}", options="attr_timeout=0,negative_timeout=0",
                      env={**s3_env, "AWS_ENDPOINT_URL": proxy.endpoint})
    m.mount()
    port = proxy.port
    proxy.stop()
    try:
        started = time.monotonic()
        with pytest.raises(OSError) as caught:
            (m.path / "g").write_bytes(b"y")
        assert caught.value.errno == errno.EIO
        assert time.monotonic() - started < 60
        proxy = FaultProxy(s3_server.endpoint, port=port).start()
        (m.path / "g").write_bytes(b"y")
        assert (m.path / "f").read_bytes() == b"x"
        assert s3_client.get_object(Bucket=bucket, Key="g")["Body"].read() == b"y"
    finally:
        proxy.stop()
