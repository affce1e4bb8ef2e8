"""Partial writes: a change to part of a large object sends only the parts it is in and
copies the others in the store (UploadPartCopy, pinned to the version seen at open)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from s3fixtures import server_traffic
from test_engine import make_engine, read_file

import objmount.core.openfile as openfile
import objmount.core.upload as upload
from objmount.core.engine import Engine
from objmount.core.inodes import ROOT_INO
from objmount.errors import FsError
from objmount.server import ServerInfo
from objmount.store.memory import MemoryAccount, MemoryStore

BLOCK = 4096
PART = 2 * BLOCK


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
    return make_engine(account, tmp_path, block_size=BLOCK, whole_file_size=0,
                       read_ahead=0, cache_size=0)


def big(store: MemoryStore, parts: int = 10) -> bytes:
    data = os.urandom(parts * PART)
    store.put("big", data, {})
    return data


def change(engine: Engine, offset: int, payload: bytes, flags: int = os.O_WRONLY) -> None:
    ino = engine.lookup(ROOT_INO, b"big").ino
    fh = engine.open(ino, flags)
    engine.write(fh, offset, payload)
    engine.flush(fh)
    engine.release(fh)


def moved(store: MemoryStore) -> dict[str, int]:
    """Requests that move or copy bytes (not lookups, nor starting and completing an
    upload)."""
    bookkeeping = ("head", "list", "create_upload", "complete_upload")
    return {op: n for op, n in store.requests.items() if op not in bookkeeping}


def test_a_small_change_sends_only_its_part(engine: Engine, store: MemoryStore) -> None:
    data = big(store)
    store.requests.clear()
    change(engine, 4 * PART + 100, b"changed")
    # The block the change is in is fetched (its other bytes stay); the other block of
    # that part too, as the part is sent whole; the four parts before it and the five
    # after are copied in the store, each run by one request.
    assert moved(store) == {"read_into": 2, "upload_part": 1, "copy_part": 2}
    expected = data[:4 * PART + 100] + b"changed" + data[4 * PART + 107:]
    assert store.get("big") == expected


def test_an_append_sends_only_the_last_part(engine: Engine, store: MemoryStore) -> None:
    data = big(store)
    store.requests.clear()
    change(engine, 0, b"tail" * 100, os.O_WRONLY | os.O_APPEND)
    assert moved(store) == {"upload_part": 1, "copy_part": 1}  # the old object, whole
    assert store.get("big") == data + b"tail" * 100


def test_whole_blocks_overwritten_are_not_fetched(engine: Engine, store: MemoryStore) -> None:
    data = big(store)
    store.requests.clear()
    change(engine, 2 * PART, b"x" * PART)
    assert moved(store) == {"upload_part": 1, "copy_part": 2}
    assert store.get("big") == data[:2 * PART] + b"x" * PART + data[3 * PART:]


def test_after_a_spliced_upload_every_byte_reads_back(engine: Engine,
                                                      store: MemoryStore) -> None:
    """Through the same descriptor after the upload (the blocks copied in the store were
    never here: they come from the new version), and after the next open."""
    data = big(store)
    expected = data[:5] + b"head" + data[9:]
    ino = engine.lookup(ROOT_INO, b"big").ino
    fh = engine.open(ino, os.O_RDWR)
    engine.write(fh, 5, b"head")
    engine.flush(fh)
    assert engine.read(fh, 0, len(data)) == expected
    engine.release(fh)
    assert read_file(engine, ino) == expected


def test_truncate_then_write(engine: Engine, store: MemoryStore) -> None:
    data = big(store)
    ino = engine.lookup(ROOT_INO, b"big").ino
    fh = engine.open(ino, os.O_RDWR)
    engine.setattr(ino, size=3 * PART + 10, fh=fh)
    engine.write(fh, 5 * PART, b"after a hole")
    engine.flush(fh)
    engine.release(fh)
    expected = data[:3 * PART + 10] + bytes(2 * PART - 10) + b"after a hole"
    assert store.get("big") == expected


def test_another_clients_version_is_never_spliced_in(engine: Engine,
                                                     store: MemoryStore) -> None:
    """Replaced between open and close: the close fails (ESTALE), the store keeps the
    other client's object whole."""
    big(store)
    ino = engine.lookup(ROOT_INO, b"big").ino
    fh = engine.open(ino, os.O_WRONLY)
    engine.write(fh, 10, b"mine")
    theirs = os.urandom(10 * PART)
    store.put("big", theirs, {})
    with pytest.raises(FsError) as failed:
        engine.flush(fh)
    assert failed.value.errno == errno.ESTALE
    engine.release(fh)
    assert store.get("big") == theirs


def test_a_replaced_object_held_whole_is_stored_whole(engine: Engine,
                                                      store: MemoryStore) -> None:
    """With every byte here, a conflict ends as for any file: the last close wins."""
    data = big(store)
    ino = engine.lookup(ROOT_INO, b"big").ino
    fh = engine.open(ino, os.O_RDWR)
    assert engine.read(fh, 0, len(data)) == data
    engine.write(fh, 10, b"mine")
    store.put("big", os.urandom(10 * PART), {})
    engine.flush(fh)
    engine.release(fh)
    assert store.get("big") == data[:10] + b"mine" + data[14:]


def test_a_store_without_part_copy_gets_the_whole_file(
        engine: Engine, store: MemoryStore, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openfile, "_told_no_part_copy", False)
    store.copy_parts = False
    data = big(store)
    with caplog.at_level(logging.WARNING):
        change(engine, 7, b"seven")
    assert store.get("big") == data[:7] + b"seven" + data[12:]
    assert "cannot copy parts" in caplog.text


def test_parts_grow_to_stay_within_the_part_limit(
        engine: Engine, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upload, "MAX_PARTS", 4)
    data = big(store)
    store.requests.clear()
    change(engine, 1, b"!")
    assert moved(store)["upload_part"] + moved(store)["copy_part"] <= 4
    assert store.get("big") == data[:1] + b"!" + data[2:]


def test_a_new_large_file_goes_in_parts_that_grow_to_stay_within_the_limit(
        engine: Engine, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file stored whole (no version to copy from) goes as parts, each retried on its
    own; with the part limit lowered, the parts grow so that there are no more of them."""
    monkeypatch.setattr(upload, "MAX_PARTS", 3)
    data = os.urandom(10 * PART + 7)
    fh, _ = engine.create(ROOT_INO, b"new", 0o644, os.O_WRONLY | os.O_CREAT, 0, 0)
    engine.write(fh, 0, data)
    store.requests.clear()
    engine.release(fh)
    assert store.get("new") == data
    assert 1 < moved(store)["upload_part"] <= 3
    assert moved(store).get("upload", 0) == 0 and moved(store).get("put", 0) == 0


def test_a_small_file_is_one_put(engine: Engine, store: MemoryStore) -> None:
    store.put("big", b"s" * PART, {})
    store.requests.clear()
    change(engine, 1, b"!")
    assert store.get("big") == b"s!" + b"s" * (PART - 2)
    assert "copy_part" not in store.requests and store.requests["put"] == 1


def test_a_small_change_through_the_mount_moves_one_part(
        mounted: Mount, s3_server: ServerInfo, s3_client: Any, bucket: str) -> None:
    """Counted at the real server: 4 KiB changed in a 40 MiB object sends one 8 MiB part
    and fetches one block; appending 1 MiB sends 1 MiB and fetches nothing."""
    data = os.urandom(40 << 20)
    s3_client.put_object(Bucket=bucket, Key="big", Body=data)
    path = mounted.path / "big"
    before = server_traffic(s3_server, bucket)
    with open(path, "r+b") as f:
        f.seek(20 << 20)
        f.write(b"x" * 4096)
    after = server_traffic(s3_server, bucket)
    assert after["received"] - before["received"] <= (8 << 20) + (64 << 10)
    assert after["sent"] - before["sent"] <= (8 << 20) + (64 << 10)
    data = data[:20 << 20] + b"x" * 4096 + data[(20 << 20) + 4096:]
    assert s3_client.get_object(Bucket=bucket, Key="big")["Body"].read() == data
    tail = os.urandom(1 << 20)
    before = server_traffic(s3_server, bucket)  # not counting the check just made
    with open(path, "ab") as f:
        f.write(tail)
    after = server_traffic(s3_server, bucket)
    assert after["received"] - before["received"] <= (1 << 20) + (64 << 10)
    assert after["sent"] - before["sent"] <= 64 << 10
    assert s3_client.get_object(Bucket=bucket, Key="big")["Body"].read() == data + tail


def test_runs_of_copies_are_one_request_up_to_the_copy_limit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """splice_plan: unchanged parts next to each other are one UploadPartCopy, never more
    than S3 copies in one (5 GiB; 3 parts here)."""
    monkeypatch.setattr(upload, "MAX_COPY_PART", 3 * PART)
    plan = upload.splice_plan(10 * PART, 10 * PART, {(6 * PART) // BLOCK}, BLOCK, PART)
    assert plan == [upload.Part(0, 3 * PART, True), upload.Part(3 * PART, 6 * PART, True),
                    upload.Part(6 * PART, 7 * PART, False),
                    upload.Part(7 * PART, 10 * PART, True)]
