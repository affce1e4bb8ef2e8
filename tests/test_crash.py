"""A daemon killed with SIGKILL: the store never holds a half-written object, and the
dead mount can be cleaned up and mounted again."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Mount, is_mounted, run_objmount

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

MIB = 1024 * 1024
OLD_SIZE = 64 * MIB
NEW_SIZE = 300 * MIB


WRITER = """
import os, sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "wb", buffering=0) as f:
    for _ in range(size // (1 << 20)):
        f.write(os.urandom(1 << 20))
"""


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    return proc.stderr.read().decode(errors="replace") if proc.stderr else ""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_sha(s3_client: Any, bucket: str, key: str) -> tuple[int, str]:
    body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return len(body), sha256(body)


def wait_for_uploads(s3_client: Any, bucket: str) -> list[Any]:
    """The multipart uploads under way (the streamed one, once its first part is ready)."""
    deadline = time.monotonic() + 30
    while True:
        uploads: list[Any] = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if uploads or time.monotonic() > deadline:
            return uploads
        time.sleep(0.05)


def bytes_written(pid: int) -> int:
    """What a process has passed to write(2) so far."""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


def wait_dead(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} still alive after SIGKILL")


def umount_dead(m: Mount) -> None:
    """``objmount umount`` must clean up a mount whose daemon is dead."""
    res = run_objmount("umount", str(m.path), env=m.env, timeout=60)
    if res.returncode != 0 or is_mounted(m.path):
        # Leave nothing behind for the next test, then report the bug.
        subprocess.run(["fusermount3", "-u", "-z", str(m.path)], check=False)
        pytest.fail(f"objmount umount of a dead mount failed: exit {res.returncode}, "
                    f"stderr {res.stderr.strip()!r}, still mounted: {is_mounted(m.path)}")
    m.pid = None


def test_sigkill_during_upload_leaves_old_object(mount_factory: Callable[..., Mount],
                                                 s3_client: Any, bucket: str) -> None:
    old = os.urandom(OLD_SIZE)
    s3_client.put_object(Bucket=bucket, Key="big", Body=old)
    old_sha = sha256(old)
    del old

    # Another client's upload under way in the same bucket: never objmount's to abort.
    others = s3_client.create_multipart_upload(Bucket=bucket, Key="theirs")["UploadId"]

    m = mount_factory(f"s3://{bucket}")
    m.mount()
    assert m.pid is not None
    assert os.stat(m.path / "big").st_size == OLD_SIZE

    # The writer opens once (O_TRUNC), writes 300 MiB and closes once. (Not dd or a shell
    # redirection: those dup2() the descriptor and close the original right after the
    # O_TRUNC open, and that close() rightly stores the then empty file.) Its parts go
    # to the store while it writes (a streamed multipart upload), so the kill comes half
    # way through the writing, with the upload under way and far from complete.
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(m.path / "big"),
                               str(NEW_SIZE)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while bytes_written(writer.pid) < NEW_SIZE // 2:
            assert writer.poll() is None, f"writer ended early: {_stderr(writer)}"
            assert time.monotonic() < deadline, "the writer did not write in 120 s"
            time.sleep(0.01)
        uploads = wait_for_uploads(s3_client, bucket)
        assert uploads, "no multipart upload under way half way through the writing"
        assert writer.poll() is None, "close() returned before the kill"
        os.kill(m.pid, signal.SIGKILL)
        wait_dead(m.pid)
        writer.wait(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    # The writer must have been told that its close failed: the data is not stored.
    assert writer.returncode != 0, "close() reported success although the daemon was killed"

    # The store holds exactly the old object: no half-written or truncated version.
    assert stored_sha(s3_client, bucket, "big") == (OLD_SIZE, old_sha)
    listing = s3_client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listing.get("Contents", [])] == ["big"]
    print(f"multipart uploads in flight at the kill: {len(uploads)}")

    umount_dead(m)
    assert not is_mounted(m.path)
    # Mounting again shows the old object, and aborts the upload the killed daemon left
    # unfinished (it recorded it in its cache directory), and only that one.
    m.mount()
    assert os.stat(m.path / "big").st_size == OLD_SIZE
    left = s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [("theirs", others)]
    assert "aborted multipart upload" in m.read_log()
    h = hashlib.sha256()
    with open(m.path / "big", "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    assert h.hexdigest() == old_sha


def test_sigkill_then_umount_and_mount_again(mount_factory: Callable[..., Mount], s3_client: Any,
                                            bucket: str) -> None:
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    (m.path / "before.txt").write_text("written before the crash\n")
    assert m.pid is not None
    os.kill(m.pid, signal.SIGKILL)
    wait_dead(m.pid)
    # The mount is dead: the kernel says so, it is still in the mount table.
    assert is_mounted(m.path)
    with pytest.raises(OSError):
        os.listdir(m.path)

    umount_dead(m)
    assert not is_mounted(m.path)
    assert os.listdir(m.path) == []

    m.mount()
    assert m.pid is not None
    assert (m.path / "before.txt").read_text() == "written before the crash\n"
    (m.path / "after.txt").write_text("written after the crash\n")
    body = s3_client.get_object(Bucket=bucket, Key="after.txt")["Body"].read()
    assert body == b"written after the crash\n"
    m.umount()
    assert not is_mounted(m.path)



SMALL_WRITER = r"""
import os, sys
root = sys.argv[1]
for i in range(100_000):
    data = f"file {i}\n".encode() * (i % 50 + 1)
    with open(os.path.join(root, f"s{i}"), "wb") as f:
        f.write(data)
    print(i, flush=True)  # after close() returned 0
"""


def test_sigkill_during_many_small_writes_keeps_every_closed_file(
        mount_factory: Callable[..., Mount], s3_client: Any, bucket: str) -> None:
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    assert m.pid is not None
    writer = subprocess.Popen([sys.executable, "-c", SMALL_WRITER, str(m.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert writer.stdout is not None
    acknowledged = -1
    for line in writer.stdout:
        acknowledged = int(line)
        if acknowledged >= 150:
            break
    os.kill(m.pid, signal.SIGKILL)
    wait_dead(m.pid)
    for line in writer.stdout:  # whatever it printed before it noticed
        acknowledged = int(line)
    writer.wait(timeout=60)
    umount_dead(m)
    stored = {o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket) for o in page.get("Contents", [])}
    for i in range(acknowledged + 1):
        assert f"s{i}" in stored, f"s{i} was closed before the kill and is not stored"
        body = s3_client.get_object(Bucket=bucket, Key=f"s{i}")["Body"].read()
        assert body == f"file {i}\n".encode() * (i % 50 + 1)
    # At most the file being written at the kill is beyond those: none half written.
    for key in stored - {f"s{i}" for i in range(acknowledged + 1)}:
        i = int(key[1:])
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body in (b"", f"file {i}\n".encode() * (i % 50 + 1)), key
    print(f"{acknowledged + 1} files closed before the kill, all stored")


def test_sigkill_during_a_directory_rename_leaves_every_file_under_one_name_or_both(
        mount_factory: Callable[..., Mount], s3_client: Any, bucket: str) -> None:
    """SEMANTICS: a directory rename copies every key, then deletes the old ones; a crash
    half way leaves keys under both names, never under neither."""
    files = 300
    for i in range(files):
        s3_client.put_object(Bucket=bucket, Key=f"old/sub{i % 3}/f{i}", Body=f"{i}".encode())
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    assert m.pid is not None
    mover = subprocess.Popen(["mv", str(m.path / "old"), str(m.path / "new")],
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:  # kill once the copying has begun, before it ends
        copied = s3_client.list_objects_v2(Bucket=bucket, Prefix="new/").get("KeyCount", 0)
        if copied >= 20 or mover.poll() is not None:
            break
        assert time.monotonic() < deadline, "the rename did not start"
        time.sleep(0.005)
    os.kill(m.pid, signal.SIGKILL)
    wait_dead(m.pid)
    mover.wait(timeout=60)
    umount_dead(m)
    keys = {o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket) for o in page.get("Contents", [])}
    both = 0
    for i in range(files):
        names = {f"{side}/sub{i % 3}/f{i}" for side in ("old", "new")} & keys
        assert names, f"f{i} is under neither name"
        both += len(names) == 2
        for key in names:
            assert s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == f"{i}".encode()
    print(f"killed during the rename: {both} of {files} files under both names")
