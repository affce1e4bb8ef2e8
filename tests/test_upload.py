"""Streamed uploads (core/upload.py): the parts of a large file written from its start go
to the store while it is written, and close() only sends what is left. Asserted on the
requests an in-memory store receives, then once through the FUSE mount and SeaweedFS."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Mount
from s3fixtures import server_requests, server_traffic
from test_engine import GID, UID, make_engine, read_file

from objmount.core.engine import Engine
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import parse_time
from objmount.errors import StoreError, StoreUnavailable
from objmount.server import ServerInfo
from objmount.store.faults import FaultyStore
from objmount.store.memory import MemoryAccount, MemoryStore

PART = 8192
PARTS = 6


@pytest.fixture
def account() -> MemoryAccount:
    return MemoryAccount("b")


@pytest.fixture
def store(account: MemoryAccount) -> MemoryStore:
    s = account.stores["b"]
    s.part_size = PART
    return s


@pytest.fixture
def engine(account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> Engine:
    return make_engine(account, tmp_path, block_size=PART // 2, whole_file_size=0,
                       read_ahead=0)


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def create(engine: Engine, name: bytes = b"f") -> tuple[int, int]:
    fh, attr = engine.create(ROOT_INO, name, 0o640, os.O_WRONLY | os.O_CREAT, UID, GID)
    return fh, attr.ino


def write_parts(engine: Engine, fh: int, data: bytes, chunk: int = 1000) -> None:
    for offset in range(0, len(data), chunk):
        engine.write(fh, offset, data[offset:offset + chunk])


def test_parts_go_out_while_the_file_is_written(engine: Engine, store: MemoryStore) -> None:
    data = os.urandom(PARTS * PART + 123)
    fh, ino = create(engine)
    write_parts(engine, fh, data)
    # Every whole part is sent before close, without being asked.
    wait_until(lambda: store.requests.get("upload_part", 0) == PARTS, "the early parts")
    assert "b" not in {o.key for o in store.list("", None).objects}  # nothing visible yet
    engine.flush(fh)
    engine.release(fh)
    assert store.requests["upload_part"] == PARTS + 1  # each part once: the tail at close
    assert store.requests["create_upload"] == store.requests["complete_upload"] == 1
    assert "put" not in store.requests and "copy_part" not in store.requests
    assert store.get("f") == data
    assert read_file(engine, ino) == data
    assert not store.uploads


def test_the_stored_times_are_those_of_the_upload_start_and_stat_agrees(
        engine: Engine, store: MemoryStore) -> None:
    fh, ino = create(engine)
    write_parts(engine, fh, os.urandom(2 * PART))
    wait_until(lambda: store.requests.get("upload_part", 0) == 2, "the early parts")
    time.sleep(0.01)
    engine.write(fh, 2 * PART, b"tail")
    engine.flush(fh)
    engine.release(fh)
    stored = parse_time(store.head("f").metadata["mtime"])
    assert engine.getattr(ino).mtime_ns == stored  # what others see, we see
    assert "copy_part" not in store.requests


def test_attributes_set_after_the_upload_began_cost_one_copy(
        engine: Engine, store: MemoryStore) -> None:
    """cp -a and rsync set mode and times just before close."""
    data = os.urandom(3 * PART)
    fh, ino = create(engine)
    write_parts(engine, fh, data)
    wait_until(lambda: store.requests.get("upload_part", 0) == 3, "the early parts")
    engine.setattr(ino, mode=0o600, mtime_ns=1_500_000_000 * 10**9, fh=fh)
    engine.flush(fh)
    engine.release(fh)
    head = store.head("f")
    assert head.metadata["mtime"] == "1500000000"
    assert stat.S_IMODE(int(head.metadata["mode"])) == 0o600
    assert store.requests["upload_part"] == 3  # nothing sent twice
    assert store.requests["copy_part"] == 1  # copied onto itself, with the new metadata
    assert store.get("f") == data


def test_a_part_written_again_is_sent_again(engine: Engine, store: MemoryStore) -> None:
    data = bytearray(os.urandom(4 * PART))
    fh, _ino = create(engine)
    write_parts(engine, fh, bytes(data))
    wait_until(lambda: store.requests.get("upload_part", 0) == 4, "the early parts")
    engine.write(fh, 10, b"header")  # like tar or zip fixing up their start
    data[10:16] = b"header"
    engine.flush(fh)
    engine.release(fh)
    assert store.get("f") == bytes(data)
    assert store.requests["upload_part"] == 5  # part 1 again


def test_a_truncated_file_sends_the_parts_it_changed(engine: Engine, store: MemoryStore) -> None:
    data = os.urandom(4 * PART)
    fh, ino = create(engine)
    write_parts(engine, fh, data)
    wait_until(lambda: store.requests.get("upload_part", 0) == 4, "the early parts")
    engine.setattr(ino, size=2 * PART + 5, fh=fh)
    engine.setattr(ino, size=3 * PART, fh=fh)  # grown again: zeros, not the old bytes
    engine.flush(fh)
    engine.release(fh)
    assert store.get("f") == data[:2 * PART + 5] + bytes(PART - 5)


def test_a_file_cut_to_one_part_is_one_put(engine: Engine, store: MemoryStore) -> None:
    data = os.urandom(3 * PART)
    fh, ino = create(engine)
    write_parts(engine, fh, data)
    wait_until(lambda: store.requests.get("upload_part", 0) == 3, "the early parts")
    engine.setattr(ino, size=100, fh=fh)
    engine.flush(fh)
    engine.release(fh)
    assert store.get("f") == data[:100]
    assert store.requests["abort_upload"] == 1 and not store.uploads


def test_an_unlinked_or_renamed_file_leaves_no_upload(engine: Engine, store: MemoryStore) -> None:
    fh, _ino = create(engine, b"gone")
    write_parts(engine, fh, os.urandom(3 * PART))
    wait_until(lambda: store.requests.get("upload_part", 0) == 3, "the early parts")
    engine.unlink(ROOT_INO, b"gone")
    engine.release(fh)
    assert not store.uploads and "gone" not in {o.key for o in store.list("", None).objects}

    data = os.urandom(3 * PART)
    fh, _ino = create(engine, b"old")
    write_parts(engine, fh, data)
    wait_until(lambda: store.requests.get("upload_part", 0) == 6, "the early parts")
    engine.rename(ROOT_INO, b"old", ROOT_INO, b"new", 0)
    engine.flush(fh)
    engine.release(fh)
    assert store.get("new") == data
    assert not store.uploads


def test_an_early_part_that_failed_is_sent_at_close(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    failures = {"upload_part": 2}

    def rule(op: str, key: str) -> Exception | None:
        if failures.get(op, 0) > 0:
            failures[op] -= 1
            return StoreUnavailable("injected")
        return None

    faulty = FaultyStore(store, rule)
    account.stores["b"] = faulty  # type: ignore[assignment]
    engine = make_engine(account, tmp_path, block_size=PART // 2, whole_file_size=0,
                         read_ahead=0)
    data = os.urandom(4 * PART + 1)
    fh, _ino = create(engine)
    write_parts(engine, fh, data)
    engine.flush(fh)
    engine.release(fh)
    assert store.get("f") == data
    assert not store.uploads


def test_a_failed_upload_leaves_the_old_object_and_no_upload(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    store.put("f", b"old bytes", {})

    def rule(op: str, key: str) -> Exception | None:
        return StoreUnavailable("injected") if op == "complete_upload" else None

    account.stores["b"] = FaultyStore(store, rule)  # type: ignore[assignment]
    engine = make_engine(account, tmp_path, block_size=PART // 2, whole_file_size=0,
                         read_ahead=0)
    ino = engine.lookup(ROOT_INO, b"f").ino
    fh = engine.open(ino, os.O_WRONLY | os.O_TRUNC)
    engine.setattr(ino, size=0, fh=fh)
    write_parts(engine, fh, os.urandom(3 * PART))
    with pytest.raises(StoreError):
        engine.flush(fh)
    assert store.get("f") == b"old bytes"
    assert not store.uploads  # aborted
    engine.release(fh)


def test_a_large_file_streams_through_the_mount(
        mounted: Mount, s3_server: ServerInfo, bucket: str) -> None:
    """Through FUSE and SeaweedFS: while the program still holds the file open, most of
    its parts are already at the server; close() sends the rest, each byte once."""
    size = 6 * (8 << 20) + 12345
    data = os.urandom(size)
    path = mounted.path / "streamed.bin"
    before = server_traffic(s3_server, bucket)["received"]
    requests_before = server_requests(s3_server, bucket)
    with open(path, "wb") as f:
        for offset in range(0, size, 1 << 20):
            f.write(data[offset:offset + (1 << 20)])
        f.flush()

        def early() -> bool:
            got = server_traffic(s3_server, bucket)["received"] - before
            return got >= 5 * (8 << 20)
        wait_until(early, "parts at the server before close")
    received = server_traffic(s3_server, bucket)["received"] - before
    assert size <= received < size + (1 << 20)  # every byte once
    assert path.read_bytes() == data
    asked = server_requests(s3_server, bucket) - requests_before
    assert not [kind for kind in asked if kind.startswith("COPY")]
