"""The object cache: bytes kept after the last close, reused while the store still has
the same version, bounded with LRU eviction."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import mmap
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from intercept import Intercept
from s3fixtures import server_requests
from test_engine import make_engine, read_file, write_file

from objmount.core.cache import ObjectCache
from objmount.core.inodes import ROOT_INO
from objmount.server import ServerInfo
from objmount.store.memory import MemoryAccount, MemoryStore

BLOCK = 4096


@pytest.fixture
def account() -> MemoryAccount:
    return MemoryAccount("b")


@pytest.fixture
def store(account: MemoryAccount) -> MemoryStore:
    return account.stores["b"]


def parked_file(cache: ObjectCache, size: int) -> Path:
    path = cache.new_path()
    path.write_bytes(os.urandom(size))
    return path


def test_least_recently_used_files_go_first(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path / "c", capacity=3 * BLOCK)
    for name in ("a", "b", "c"):
        cache.park("bk", name, parked_file(cache, BLOCK), "e", BLOCK, frozenset({0}))
    taken = cache.take("bk", "a")  # used again: now the most recent
    assert taken is not None
    cache.park("bk", "a", taken.path, "e", BLOCK, frozenset({0}))
    cache.park("bk", "d", parked_file(cache, BLOCK), "e", BLOCK, frozenset({0}))
    assert cache.take("bk", "b") is None  # the oldest use went
    assert all(cache.take("bk", k) is not None for k in ("a", "c", "d"))
    assert cache.snapshot()["evictions"] == 1
    assert len(list((tmp_path / "c").iterdir())) == 3  # the evicted file is gone too


def test_open_files_count_against_the_bound_and_are_never_evicted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    open_use = [0]
    cache = ObjectCache(tmp_path / "c", capacity=4 * BLOCK, open_use=lambda: open_use[0])
    cache.park("bk", "a", parked_file(cache, 2 * BLOCK), "e", 2 * BLOCK, frozenset({0}))
    open_use[0] = 3 * BLOCK
    cache.park("bk", "b", parked_file(cache, BLOCK), "e", BLOCK, frozenset({0}))
    assert cache.take("bk", "a") is None and cache.take("bk", "b") is not None
    open_use[0] = 5 * BLOCK
    with caplog.at_level(logging.WARNING):
        cache.park("bk", "c", parked_file(cache, BLOCK), "e", BLOCK, frozenset({0}))
    assert cache.take("bk", "c") is None
    assert "more than cache_size" in caplog.text


def test_a_new_cache_removes_what_an_earlier_daemon_left(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "obj-1").write_bytes(b"old")
    ObjectCache(tmp_path / "c", capacity=BLOCK)
    assert list((tmp_path / "c").iterdir()) == []


def test_a_second_read_of_an_unchanged_object_moves_no_bytes(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, block_size=BLOCK, whole_file_size=0,
                      cache_size=1 << 20)
    data = os.urandom(10 * BLOCK + 5)
    store.put("f", data, {})
    ino = eng.lookup(ROOT_INO, b"f").ino
    assert read_file(eng, ino) == data
    store.requests.clear()
    assert read_file(eng, ino) == data
    assert store.requests == {"head": 1}  # close-to-open still asks; no bytes move
    store.put("f", b"replaced", {})  # another client's change: fetched anew
    store.requests.clear()
    assert read_file(eng, ino) == b"replaced"
    assert store.requests.get("read_into", 0) + store.requests.get("download", 0) == 1
    assert eng.cache.snapshot()["hits"] == 1


def test_what_was_written_here_is_read_back_from_the_cache(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, block_size=BLOCK, cache_size=1 << 20)
    data = os.urandom(3 * BLOCK)
    attr = write_file(eng, ROOT_INO, "w", data)
    store.requests.clear()
    assert read_file(eng, attr.ino) == data
    assert store.requests == {"head": 1}


def test_a_partly_read_object_keeps_the_blocks_it_has(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, block_size=BLOCK, whole_file_size=0,
                      cache_size=1 << 20, read_ahead=0)
    data = os.urandom(8 * BLOCK)
    store.put("p", data, {})
    ino = eng.lookup(ROOT_INO, b"p").ino
    fh = eng.open(ino, os.O_RDONLY)
    assert eng.read(fh, 0, BLOCK) == data[:BLOCK]
    eng.release(fh)
    store.requests.clear()
    fh = eng.open(ino, os.O_RDONLY)
    assert eng.read(fh, 0, 2 * BLOCK) == data[:2 * BLOCK]
    eng.release(fh)
    assert store.requests == {"head": 1, "read_into": 1}  # block 1 only


def test_cache_size_zero_keeps_nothing(account: MemoryAccount, store: MemoryStore,
                                       tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, block_size=BLOCK, whole_file_size=0,
                      cache_size=0)
    store.put("f", os.urandom(BLOCK), {})
    ino = eng.lookup(ROOT_INO, b"f").ino
    read_file(eng, ino)
    store.requests.clear()
    read_file(eng, ino)
    assert store.requests.get("read_into", 0) == 1
    assert list(eng.cache.directory.iterdir()) == []


def test_reading_a_file_again_through_the_mount_moves_no_bytes(
        mounted: Mount, s3_server: ServerInfo, s3_client: Any, bucket: str) -> None:
    """Counted at the real server: the second read of an unchanged 20 MiB object costs
    one HEAD; after another client replaced it, the next read gets the new bytes."""
    data = os.urandom(20 << 20)
    s3_client.put_object(Bucket=bucket, Key="big", Body=data)
    assert (mounted.path / "big").read_bytes() == data
    before = server_requests(s3_server, bucket)
    assert (mounted.path / "big").read_bytes() == data
    assert server_requests(s3_server, bucket) - before == Counter({"GET 200": 1})
    new = os.urandom(1 << 20)
    s3_client.put_object(Bucket=bucket, Key="big", Body=new)
    assert (mounted.path / "big").read_bytes() == new


def resident_pages(fd: int, size: int) -> int:
    """How many of the file's pages the kernel's page cache holds now (mincore(2) on a
    mapping of it: no page is read by asking)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value), os.strerror(ctypes.get_errno())
    try:
        pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        vec = ctypes.create_string_buffer(pages)
        assert libc.mincore(addr, size, vec) == 0, os.strerror(ctypes.get_errno())
        return sum(b & 1 for b in vec.raw)
    finally:
        libc.munmap(addr, size)


def test_an_unchanged_file_is_read_again_from_the_kernels_page_cache(
        mounted: Mount, s3_client: Any, bucket: str) -> None:
    """keep_cache: opening an unchanged file again keeps the kernel's pages of it (so
    its reads never reach the daemon); one changed by another client (another ETag at
    open), or written here, reads right."""
    size = 8 << 20
    data = os.urandom(size)
    s3_client.put_object(Bucket=bucket, Key="big", Body=data)
    path = mounted.path / "big"
    assert path.read_bytes() == data
    # Asked right at the next open, which would drop them without keep_cache. (The
    # daemon's read counts are no measure: published once a second, and reads of bytes
    # it holds are not counted.)
    fd = os.open(path, os.O_RDONLY)
    try:
        kept = resident_pages(fd, size)
        assert os.read(fd, size) == data
    finally:
        os.close(fd)
    # All of them, unless the kernel reclaimed a few meanwhile; none without keep_cache.
    assert kept > size // mmap.PAGESIZE // 2, kept
    new = os.urandom(8 << 20)
    s3_client.put_object(Bucket=bucket, Key="big", Body=new)
    assert path.read_bytes() == new
    with open(path, "r+b") as f:
        f.seek(5 << 20)
        f.write(b"written here")
    new = new[:5 << 20] + b"written here" + new[(5 << 20) + 12:]
    assert path.read_bytes() == new
    assert s3_client.get_object(Bucket=bucket, Key="big")["Body"].read() == new


def test_reading_a_file_again_under_interception_moves_no_bytes(
        om: Intercept, s3_server: ServerInfo, s3_client: Any, bucket: str) -> None:
    data = os.urandom(12 << 20)
    s3_client.put_object(Bucket=bucket, Key="big", Body=data)
    digest = hashlib.md5(data).hexdigest()
    assert om.run("md5sum", f"{om.path}/big").stdout.split()[0] == digest
    before = server_requests(s3_server, bucket)
    assert om.run("md5sum", f"{om.path}/big").stdout.split()[0] == digest
    assert server_requests(s3_server, bucket) - before == Counter({"GET 200": 1})
