"""No lock-in: objmount and s3fs-fuse read each other's files, plain S3 clients read
objmount's objects under the file names, and objects from other tools (rclone's float
mtime, no metadata at all) get sensible attributes.

SeaweedFS, the test server, drops user metadata on ``dir/`` marker objects, so directory
attributes are not compared; files and symlinks are compared fully.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from peers import run, s3fs_mount

# s3fs caches attributes for 900 s by default: these tests look right after writes.
S3FS_FRESH = "stat_cache_expire=1,enable_noobj_cache"

pytestmark = [pytest.mark.fuse, pytest.mark.s3]


# ------------------------------------------------------------------------ s3fs mount --
# --------------------------------------------------------------------------- helpers --
def describe(path: Path) -> tuple[Any, ...]:
    """Everything about a file or symlink that both file systems must agree on."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", os.readlink(path), st.st_uid, st.st_gid, int(st.st_mtime))
    assert stat.S_ISREG(st.st_mode), f"{path}: not a file: {oct(st.st_mode)}"
    return ("file", oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid, st.st_size,
            int(st.st_mtime), path.read_bytes())


def describe_all(root: Path, names: list[str]) -> dict[str, tuple[Any, ...]]:
    return {name: describe(root / name) for name in names}


def assert_same(expected: dict[str, tuple[Any, ...]], actual: dict[str, tuple[Any, ...]]
                ) -> None:
    diffs = {k: (expected[k], actual.get(k)) for k in expected if expected[k] != actual.get(k)}
    assert not diffs, "differ (expected, actual):\n" + "\n".join(
        f"  {k}: {v[0]!r:.300} != {v[1]!r:.300}" for k, v in sorted(diffs.items()))


def write_sample(root: Path) -> list[str]:
    """Files, a symlink, chmod/chown, explicit times: written through whichever mount
    ``root`` is. Returns the names of the files and symlinks."""
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "plain.txt").write_bytes(b"plain text\n")
    (root / "dir" / "binary.bin").write_bytes(os.urandom(300_000))
    (root / "dir" / "sub" / "ünïcödé.txt").write_text("non-ASCII ✓\n")
    (root / "empty").write_bytes(b"")
    (root / "exec.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "exec.sh", 0o750)
    (root / "private").write_text("secret\n")
    os.chmod(root / "private", 0o600)
    os.chown(root / "private", 1234, 5678)
    os.chown(root / "dir" / "binary.bin", 1000, 100)
    os.chmod(root / "dir" / "binary.bin", 0o640)
    run("touch", "-d", "2021-03-04 05:06:07", root / "plain.txt")
    run("touch", "-d", "2019-12-31 23:59:59.75", root / "dir" / "binary.bin")
    os.symlink("dir/sub/ünïcödé.txt", root / "link")
    os.symlink("../plain.txt", root / "dir" / "uplink")
    os.lchown(root / "link", 4321, 8765)
    return ["plain.txt", "dir/binary.bin", "dir/sub/ünïcödé.txt", "empty", "exec.sh",
            "private", "link", "dir/uplink"]


def list_keys(s3_client: Any, bucket: str) -> set[str]:
    found: set[str] = set()
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update(o["Key"] for o in page.get("Contents", []))
    return found


# ----------------------------------------------------------------------------- tests --
def test_objmount_writes_s3fs_reads(mounted: Mount, s3_server: Any, bucket: str,
                                    tmp_path: Path) -> None:
    names = write_sample(mounted.path)
    written = describe_all(mounted.path, names)
    # Sanity: objmount itself shows what was asked for.
    assert written["private"][1:4] == ("0o600", 1234, 5678)
    assert written["plain.txt"][5] == int(time.mktime((2021, 3, 4, 5, 6, 7, 0, 0, -1)))
    with s3fs_mount(s3_server, bucket, tmp_path / "s3fs", tmp_path, S3FS_FRESH) as s3fs:
        assert_same(written, describe_all(s3fs, names))
        assert (s3fs / "dir" / "sub").is_dir()


def test_s3fs_writes_objmount_reads(mount_factory: Callable[..., Mount], s3_server: Any,
                                    bucket: str, tmp_path: Path) -> None:
    with s3fs_mount(s3_server, bucket, tmp_path / "s3fs", tmp_path, S3FS_FRESH) as s3fs:
        names = write_sample(s3fs)
        written = describe_all(s3fs, names)
    # Sanity: s3fs itself shows what was asked for.
    assert written["private"][1:4] == ("0o600", 1234, 5678)
    assert written["link"][:4] == ("symlink", "dir/sub/ünïcödé.txt", 4321, 8765)
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    assert_same(written, describe_all(m.path, names))
    assert (m.path / "dir" / "sub").is_dir()
    assert sorted(os.listdir(m.path)) == sorted(
        ["dir", "empty", "exec.sh", "link", "plain.txt", "private"])


def test_plain_s3_client_reads_same_keys_and_bytes(mounted: Mount, s3_client: Any,
                                                   bucket: str) -> None:
    names = write_sample(mounted.path)
    stored = list_keys(s3_client, bucket)
    # Exactly the file paths as keys, plus at most a key per directory: a dir/ marker,
    # or where markers keep no metadata (SeaweedFS) an empty object of the directory's
    # name, of Content-Type application/x-directory (older s3fs's form).
    dirs = {k for k in stored - set(names) if not k.endswith("/")}
    assert set(names) <= stored and dirs <= {"dir", "dir/sub"}
    assert {k for k in stored if k.endswith("/")} <= {"dir/", "dir/sub/"}
    for key in dirs:
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert (head["ContentLength"], head["ContentType"]) == (0, "application/x-directory")
    for name in names:
        body = s3_client.get_object(Bucket=bucket, Key=name)["Body"].read()
        path = mounted.path / name
        if path.is_symlink():
            assert body == os.readlink(path).encode()
        else:
            assert body == path.read_bytes(), name
        # No lock-in: no special encoding, the object is what a plain client expects.
        head = s3_client.head_object(Bucket=bucket, Key=name)
        assert head["ContentLength"] == len(body)


def test_foreign_objects_get_sensible_attributes(mount_factory: Callable[..., Mount],
                                                 s3_client: Any, s3_server: Any,
                                                 bucket: str, tmp_path: Path) -> None:
    put = s3_client.put_object
    put(Bucket=bucket, Key="rclone/float.txt", Body=b"rclone style\n",
        Metadata={"mtime": "1700000000.123456789"})
    put(Bucket=bucket, Key="rclone/short.txt", Body=b"short float\n",
        Metadata={"mtime": "1700000001.5"})
    put(Bucket=bucket, Key="bare.txt", Body=b"no metadata\n")
    put(Bucket=bucket, Key="implicit/sub/file.bin", Body=b"\x00\x01")
    put(Bucket=bucket, Key="marker-only/", Body=b"")
    # And a real rclone upload of a file with a known mtime.
    local = tmp_path / "local.txt"
    local.write_bytes(b"uploaded by rclone\n")
    os.utime(local, ns=(1_690_000_000_987_654_321, 1_690_000_000_987_654_321))
    env = {**os.environ, "RCLONE_CONFIG_T_TYPE": "s3", "RCLONE_CONFIG_T_PROVIDER": "Other",
           "RCLONE_CONFIG_T_ENDPOINT": s3_server.endpoint,
           "RCLONE_CONFIG_T_ACCESS_KEY_ID": s3_server.access_key,
           "RCLONE_CONFIG_T_SECRET_ACCESS_KEY": s3_server.secret_key,
           "RCLONE_CONFIG_T_FORCE_PATH_STYLE": "true", "RCLONE_CONFIG": "/dev/null"}
    res = subprocess.run(["rclone", "copyto", str(local), f"t:{bucket}/rclone/real.txt"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    real_meta = s3_client.head_object(Bucket=bucket, Key="rclone/real.txt")["Metadata"]
    assert "mtime" in real_meta, real_meta

    m = mount_factory(f"s3://{bucket}")
    m.mount()
    p = m.path
    uid, gid = os.getuid(), os.getgid()

    st = os.stat(p / "rclone" / "float.txt")
    assert st.st_mtime_ns == 1_700_000_000_123_456_789
    assert (st.st_mode, st.st_uid, st.st_gid) == (stat.S_IFREG | 0o644, uid, gid)
    assert os.stat(p / "rclone" / "short.txt").st_mtime_ns == 1_700_000_001_500_000_000
    st = os.stat(p / "rclone" / "real.txt")
    assert int(st.st_mtime) == 1_690_000_000
    assert abs(st.st_mtime_ns - 1_690_000_000_987_654_321) < 1000  # rclone's float digits
    assert (p / "rclone" / "real.txt").read_bytes() == b"uploaded by rclone\n"

    for name in ("bare.txt", "implicit/sub/file.bin"):
        st = os.stat(p / name)
        head = s3_client.head_object(Bucket=bucket, Key=name)
        assert (st.st_mode, st.st_uid, st.st_gid) == (stat.S_IFREG | 0o644, uid, gid), name
        assert abs(st.st_mtime - head["LastModified"].timestamp()) <= 2, name
    assert (p / "bare.txt").read_bytes() == b"no metadata\n"
    for name in ("implicit", "implicit/sub", "marker-only"):
        st = os.stat(p / name)
        assert (st.st_mode, st.st_uid, st.st_gid) == (stat.S_IFDIR | 0o755, uid, gid), name
    assert sorted(os.listdir(p)) == ["bare.txt", "implicit", "marker-only", "rclone"]
    assert os.listdir(p / "marker-only") == []
    # Defaults are options: another owner and modes for objects without metadata.
    m.umount()
    m2 = mount_factory(f"s3://{bucket}", options="uid=4242,gid=2424,file_mode=0600,"
                       "dir_mode=0700")
    m2.mount()
    st = os.stat(m2.path / "bare.txt")
    assert (st.st_mode, st.st_uid, st.st_gid) == (stat.S_IFREG | 0o600, 4242, 2424)
    st = os.stat(m2.path / "implicit")
    assert (st.st_mode, st.st_uid, st.st_gid) == (stat.S_IFDIR | 0o700, 4242, 2424)


def write_posix_sample(root: Path, directory: bool = True) -> None:
    """What goes beyond files and symlinks: a FIFO, extended attributes, a directory's
    own mode, owner and time."""
    os.mkfifo(root / "fifo", 0o640)
    (root / "tagged").write_text("x")
    os.setxattr(root / "tagged", "user.color", b"blue")
    os.setxattr(root / "tagged", "user.bytes", bytes(range(256))[:40])
    if not directory:
        return
    (root / "private").mkdir()
    os.chmod(root / "private", 0o700)
    os.chown(root / "private", 1234, 5678)
    os.utime(root / "private", (1_600_000_000, 1_600_000_000))


def describe_posix(root: Path) -> dict[str, Any]:
    found = {"fifo": oct(os.lstat(root / "fifo").st_mode),
             "xattrs": {name: os.getxattr(root / "tagged", name)
                        for name in sorted(os.listxattr(root / "tagged"))}}
    if (root / "private").exists():
        private = os.stat(root / "private")
        found["private"] = (oct(private.st_mode), private.st_uid, private.st_gid,
                            int(private.st_mtime))
    return found


EXPECTED_POSIX = {"fifo": oct(stat.S_IFIFO | 0o640),
                  "xattrs": {"user.bytes": bytes(range(40)), "user.color": b"blue"},
                  "private": (oct(stat.S_IFDIR | 0o700), 1234, 5678, 1_600_000_000)}


@pytest.mark.parametrize("writer", ["objmount", "s3fs"])
def test_special_files_xattrs_and_directory_attributes_agree_with_s3fs(
        writer: str, mount_factory: Callable[..., Mount], s3_server: Any, bucket: str,
        tmp_path: Path) -> None:
    """s3fs cannot set a directory's attributes on SeaweedFS (its chmod of a directory
    there is ENOENT), so directories go only from objmount to s3fs."""
    m = mount_factory(f"s3://{bucket}", options="xattr")
    s3fs_options = S3FS_FRESH + ",use_xattr"
    expected = dict(EXPECTED_POSIX)
    if writer == "objmount":
        m.mount()
        write_posix_sample(m.path)
        m.umount()
    else:
        del expected["private"]
        with s3fs_mount(s3_server, bucket, tmp_path / "s3fs", tmp_path, s3fs_options) as s3fs:
            write_posix_sample(s3fs, directory=False)
            assert describe_posix(s3fs) == expected  # s3fs itself
    with s3fs_mount(s3_server, bucket, tmp_path / "s3fs2", tmp_path, s3fs_options) as s3fs:
        assert describe_posix(s3fs) == expected, "s3fs"
    m.mount()
    assert describe_posix(m.path) == expected, "objmount"
