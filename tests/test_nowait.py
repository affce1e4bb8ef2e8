"""The engine's *_nowait calls, which FUSE runs on its event loop to spare a hop to a
worker thread: each answers only when it needs no request and no wait for a lock, and
otherwise declines (None/False) so the worker does the real call."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from test_engine import GID, UID, make_engine

from objmount.core.engine import Engine
from objmount.core.inodes import ROOT_INO
from objmount.store.memory import MemoryAccount, MemoryStore


@pytest.fixture
def account() -> MemoryAccount:
    account = MemoryAccount("b")
    account.stores["b"].put("old", b"stored bytes", {})
    return account


@pytest.fixture
def store(account: MemoryAccount) -> MemoryStore:
    return account.stores["b"]


@pytest.fixture
def engine(account: MemoryAccount, tmp_path: Path) -> Engine:
    return make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)


def test_a_new_file_is_created_written_and_closed_without_a_worker(
        engine: Engine, store: MemoryStore) -> None:
    flags = os.O_WRONLY | os.O_CREAT
    # Nothing is known of the root yet: only the store can say the name is free.
    assert engine.create_nowait(ROOT_INO, b"new", 0o644, flags, UID, GID) is None
    engine.lookup_entry(ROOT_INO, b"old")  # lists the root's names
    store.requests.clear()
    made = engine.create_nowait(ROOT_INO, b"new", 0o644, flags, UID, GID)
    assert made is not None
    fh, _attr = made
    assert engine.write_nowait(fh, 0, b"hello") == 5
    assert not engine.flush_nowait(fh)  # there is an upload to do: the worker's
    assert store.requests == {}
    engine.flush(fh)
    assert engine.release_nowait(fh)
    assert store.get("new") == b"hello"
    # An existing name is the worker's too (O_EXCL, or an open of what is there).
    assert engine.create_nowait(ROOT_INO, b"old", 0o644, flags, UID, GID) is None


def test_what_could_wait_is_declined(engine: Engine) -> None:
    ino = engine.lookup(ROOT_INO, b"old").ino
    fh = engine.open(ino, os.O_RDWR)
    assert engine.write_nowait(fh, 0, b"x") is None  # stored bytes to fetch around it
    engine.write(fh, 0, b"S")
    assert not engine.release_nowait(fh)  # the last close of a changed file uploads
    holder = threading.Thread(target=engine._ns_lock.acquire)  # a rename, say
    holder.start()
    holder.join()
    assert engine.create_nowait(ROOT_INO, b"other", 0o644, os.O_CREAT, UID, GID) is None
