"""Descriptor-level behaviour under interception, driven by a small C program
(tests/c/objtest.c): fork, vfork, exec with inherited descriptors, the dup family,
close_range, *at() calls and fchdir, mmap, stdio, a program that never closes, and local
paths that must behave exactly as without the shim. What the store holds is checked
with a plain S3 client."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest
from intercept import Intercept

pytestmark = [pytest.mark.s3]

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def objtest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("c") / "objtest"
    subprocess.run(["gcc", "-O1", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(HERE / "c" / "objtest.c")], check=True)
    return exe


def body(s3_client: Any, bucket: str, key: str) -> bytes:
    return bytes(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_fork_child_writes_through_inherited_descriptor(om: Intercept, objtest: Path,
                                                        s3_client: Any) -> None:
    out = om.run(objtest, "fork", om.path).stdout
    assert out == "parent1\nchild\nparent2\n"
    assert body(s3_client, om.bucket, "forked") == b"parent1\nchild\nparent2\n"


def test_vfork_exec_child_writes_inherited_descriptor(om: Intercept, objtest: Path,
                                                      s3_client: Any) -> None:
    assert om.run(objtest, "vfork", om.path).stdout == "from-vfork-child\n"
    assert body(s3_client, om.bucket, "vforked") == b"from-vfork-child\n"


def test_exec_keeps_object_descriptors_working(om: Intercept, objtest: Path) -> None:
    out = om.run(objtest, "exec", om.path).stdout
    assert out == "inherited across exec\n22\n"


def test_dup_family_shares_the_description(om: Intercept, objtest: Path,
                                           s3_client: Any) -> None:
    out = om.run(objtest, "dup", om.path).stdout
    assert out == "size via dup 5\nX1234\nstored by dup2\n"
    assert body(s3_client, om.bucket, "dup") == b"X1234"
    assert body(s3_client, om.bucket, "replaced") == b"stored by dup2\n"


def test_close_range_stores_every_file(om: Intercept, objtest: Path, s3_client: Any) -> None:
    out = om.run(objtest, "close_range", om.path).stdout
    assert out == "".join(f"file {i}\n" for i in range(5))
    for i in range(5):
        assert body(s3_client, om.bucket, f"cr{i}") == f"file {i}\n".encode()


def test_at_calls_and_fchdir_with_object_directory_fds(om: Intercept, objtest: Path,
                                                       s3_client: Any) -> None:
    out = om.run(objtest, "at", om.path).stdout
    assert out.splitlines() == [
        "size 11 mode 600", "mode 640 mtime 1500000000.123456789",
        "cwd is the object directory", "relative after fchdir", "via openat"]
    head = s3_client.head_object(Bucket=om.bucket, Key="g")
    assert head["Metadata"]["mode"] == str(0o100640)
    assert head["Metadata"]["mtime"] == "1500000000.123456789"


def test_mmap_reads_and_shared_writes_are_stored(om: Intercept, objtest: Path,
                                                 s3_client: Any) -> None:
    out = om.run(objtest, "mmap", om.path).stdout
    assert out == "read mapping ok\nWRITTEN THROUGH A MAPPING\nTAIL!\n"
    data = body(s3_client, om.bucket, "mapped")
    assert data[1000:1025] == b"WRITTEN THROUGH A MAPPING"
    assert data[-5:] == b"TAIL!"


def test_fread_of_a_large_object_reads_every_byte(om: Intercept, objtest: Path,
                                                  s3_client: Any) -> None:
    """stdio reads through glibc-internal calls the shim never sees: the whole object
    must be in the cache before fopen returns, never zeros."""
    data = os.urandom(20 * 1024 * 1024 + 3)
    s3_client.put_object(Bucket=om.bucket, Key="large.bin", Body=data)
    out = om.run(objtest, "fread", f"{om.path}/large.bin").stdout
    size, crc = out.split()
    assert int(size) == len(data)
    assert int(crc, 16) == zlib.crc32(data)


def test_redirection_by_a_program_that_never_closes_is_stored(om: Intercept, objtest: Path,
                                                              s3_client: Any) -> None:
    """The shell opens the object, the exec'd program writes and _exits: only the kernel
    closes the descriptor. objmount run returns after the upload."""
    om.sh(f"{objtest} exitwrite > {om.path}/exited.txt")
    assert body(s3_client, om.bucket, "exited.txt") == \
        b"written by a program that never closes\n"


def test_local_paths_behave_exactly_as_without_the_shim(om: Intercept, objtest: Path,
                                                        tmp_path: Path) -> None:
    plain_dir, shim_dir = tmp_path / "plain", tmp_path / "shim"
    plain_dir.mkdir()
    shim_dir.mkdir()
    plain = subprocess.run([str(objtest), "local", str(plain_dir)], capture_output=True,
                           text=True, check=True)
    shimmed = om.run(objtest, "local", shim_dir)
    assert shimmed.stdout == plain.stdout
    assert "done" in plain.stdout
    assert sorted(os.listdir(shim_dir)) == sorted(os.listdir(plain_dir)) == []


def test_signal_handler_using_object_paths_during_a_request(om: Intercept,
                                                            objtest: Path) -> None:
    """A handler that asks the daemon while the program waits for it runs after the
    answer instead of waiting for the program's lock forever."""
    assert om.run(objtest, "signals", om.path, timeout=60).stdout == "handled\n"
