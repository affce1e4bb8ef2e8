"""Read prediction: the window ahead of a sequential reader, concurrent block fetches,
and the safety rules around them, asserted on the requests an in-memory store receives."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from objmount.core.openfile import OpenFile
from objmount.core.prefetch import ReadAhead
from objmount.errors import StoreError
from objmount.store.base import Sink
from objmount.store.memory import MemoryStore

BLOCK = 4096
BLOCKS = 64


class WatchedStore(MemoryStore):
    """A MemoryStore that records each range GET, can hold them at a gate, can fail one
    block once, and measures how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.ranges: list[tuple[int, int]] = []  # block fetches
        self.direct: list[tuple[int, int]] = []  # reads answered straight from the store
        self.gate = threading.Event()
        self.gate.set()
        self.delay = 0.0
        self.fail_once: set[int] = set()
        self.running = 0
        self.most_running = 0
        self._watch = threading.Lock()

    def read_into(self, key: str, start: int, end: int, sink: Sink,
                  etag: str | None = None) -> None:
        with self._watch:
            self.ranges.append((start, end))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
            failing = start // BLOCK in self.fail_once
            self.fail_once.discard(start // BLOCK)
        try:
            self.gate.wait(10)
            time.sleep(self.delay)
            if failing:
                raise StoreError(f"injected failure of block {start // BLOCK}")
            super().read_into(key, start, end, sink, etag)
        finally:
            with self._watch:
                self.running -= 1

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        with self._watch:
            self.direct.append((start, end))
        return super().get_range(key, start, end, etag)

    def blocks_fetched(self) -> list[int]:
        """Every block a request carried, in order (a block fetched twice: twice)."""
        return sorted(b for lo, hi in self.ranges for b in range(lo // BLOCK, -(-hi // BLOCK)))


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as executor:
        yield executor


@pytest.fixture
def store() -> WatchedStore:
    s = WatchedStore()
    s.put("obj", bytes(random.Random(7).randbytes(BLOCK * BLOCKS)), {})
    return s


def open_file(tmp_path: Path, store: WatchedStore, pool: ThreadPoolExecutor | None,
              ahead: int = 8, run: int = 1) -> OpenFile:
    info = store.head("obj")
    return OpenFile(tmp_path, BLOCK, info.size, info.etag, fetch_pool=pool,
                    read_ahead_blocks=ahead, fetch_run_blocks=run)


def test_window_doubles_for_sequential_reads_and_resets_on_a_jump() -> None:
    ra = ReadAhead(8)
    windows = [len(ra.advise(b, b + 1)) for b in range(6)]
    assert windows == [0, 1, 2, 4, 8, 8]
    assert len(ra.advise(40, 41)) == 0  # a jump: random access fetches nothing ahead
    assert len(ra.advise(3, 4)) == 0
    # A reader that skipped the blocks it found cached lands inside the window: sequential.
    ra = ReadAhead(8)
    ra.advise(0, 1)
    ahead = ra.advise(1, 2)
    assert len(ra.advise(ahead.stop, ahead.stop + 1)) == 2


def test_sequential_read_fetches_each_block_once_and_ahead(tmp_path: Path, store: WatchedStore,
                                                            pool: ThreadPoolExecutor) -> None:
    of = open_file(tmp_path, store, pool)
    expected = store.get("obj")
    got = b"".join(of.read(store, "obj", off, 1024) for off in range(0, BLOCK * BLOCKS, 1024))
    of.settle()
    assert got == expected
    assert store.blocks_fetched() == list(range(BLOCKS))  # every block once, none twice
    # Ahead of the reader: after reading block 9, blocks up to 9 + 8 were fetched.
    store.ranges.clear()
    of2 = open_file(tmp_path, store, pool)
    for off in range(0, 10 * BLOCK, 1024):
        of2.read(store, "obj", off, 1024)
    of2.settle()
    assert max(lo for lo, _ in store.ranges) // BLOCK == 9 + 8
    of.close()
    of2.close()


def test_read_ahead_goes_out_in_runs_of_blocks(tmp_path: Path, store: WatchedStore,
                                               pool: ThreadPoolExecutor) -> None:
    """A few large GETs, not a GET per block: once the window is open, read-ahead waits
    until a whole run of blocks is missing and fetches it with one request."""
    store.chunk_size = 1000  # bytes arrive in pieces that straddle blocks
    of = open_file(tmp_path, store, pool, ahead=16, run=4)
    got = b"".join(of.read(store, "obj", off, 1024) for off in range(0, BLOCK * BLOCKS, 1024))
    of.settle()
    assert got == store.get("obj")
    assert store.blocks_fetched() == list(range(BLOCKS))
    sizes = [(hi - lo) // BLOCK for lo, hi in store.ranges]
    assert max(sizes) == 4
    assert sizes.count(4) >= (BLOCKS - 16) // 4  # in steady state, whole runs only
    of.close()


def test_random_reads_fetch_only_what_they_touch(tmp_path: Path, store: WatchedStore,
                                                 pool: ThreadPoolExecutor) -> None:
    """A small random read fetches its own bytes, not its block, and keeps nothing; a
    second one near it (locality) takes the whole block, which later reads find."""
    of = open_file(tmp_path, store, pool)
    data = store.get("obj")
    touched = [37, 5, 60, 12, 33, 2, 50]
    for block in touched:
        offset = block * BLOCK + 100
        assert of.read(store, "obj", offset, 200) == data[offset:offset + 200]
    of.settle()
    assert store.direct == [(b * BLOCK + 100, b * BLOCK + 300) for b in touched]
    assert store.ranges == []
    assert of.read(store, "obj", 33 * BLOCK + 150, 200) == data[33 * BLOCK + 150:33 * BLOCK + 350]
    assert store.ranges == [(33 * BLOCK, 34 * BLOCK)]
    at = 33 * BLOCK + 2000
    assert of.read(store, "obj", at, 100) == data[at:at + 100]
    assert len(store.direct) == len(touched)  # block 33 is here now: no ranged GET
    assert store.ranges[0] == (33 * BLOCK, 34 * BLOCK)  # (34 may be on its way ahead)
    # A read of a block or more, and a read from the start, are block reads as before.
    assert of.read(store, "obj", 20 * BLOCK, BLOCK) == data[20 * BLOCK:21 * BLOCK]
    assert of.read(store, "obj", 0, 100) == data[:100]
    of.settle()
    assert len(store.direct) == len(touched)
    # 34: fetched ahead of the second read in block 33, which counts as sequential.
    assert sorted(lo // BLOCK for lo, _ in store.ranges) == [0, 20, 33, 34]
    of.close()


def test_a_changed_object_forgets_where_random_reads_went(tmp_path: Path, store: WatchedStore,
                                                          pool: ThreadPoolExecutor) -> None:
    of = open_file(tmp_path, store, pool)
    of.read(store, "obj", 9 * BLOCK + 8, 16)
    of.read(store, "obj", 40 * BLOCK, 16)
    info = store.head("obj")
    of.reset(info.size, info.etag)
    of.read(store, "obj", 9 * BLOCK + 40, 16)  # where a read went before the change
    assert len(store.direct) == 3 and store.ranges == []
    of.close()


def test_fetches_run_concurrently_and_within_the_pool(tmp_path: Path, store: WatchedStore,
                                                      pool: ThreadPoolExecutor) -> None:
    store.delay = 0.02
    of = open_file(tmp_path, store, pool)
    for off in range(0, BLOCK * BLOCKS, BLOCK):
        of.read(store, "obj", off, BLOCK)
    of.settle()
    assert 2 <= store.most_running <= 8
    # A whole-file fill (before a write) asks for every missing block at once.
    store.most_running = 0
    of2 = open_file(tmp_path, store, pool)
    of2.read(store, "obj", 0, 1)
    of2.ensure(store, "obj", 0, BLOCK * BLOCKS)
    assert store.most_running >= 2
    of.close()
    of2.close()


def test_without_a_pool_reads_fetch_inline(tmp_path: Path, store: WatchedStore) -> None:
    of = open_file(tmp_path, store, None, ahead=0)
    assert of.read(store, "obj", BLOCK * 3, 10) == store.get("obj")[BLOCK * 3:BLOCK * 3 + 10]
    assert [lo // BLOCK for lo, _ in store.ranges] == [3]
    of.close()


def test_a_failed_read_ahead_is_fetched_again_by_the_read(tmp_path: Path, store: WatchedStore,
                                                          pool: ThreadPoolExecutor) -> None:
    store.fail_once = {6}
    of = open_file(tmp_path, store, pool)
    got = b"".join(of.read(store, "obj", off, BLOCK) for off in range(0, BLOCK * 12, BLOCK))
    assert got == store.get("obj")[:BLOCK * 12]
    assert [lo // BLOCK for lo, _ in store.ranges].count(6) == 2
    of.close()


def test_changes_wait_for_fetches_in_flight(tmp_path: Path, store: WatchedStore,
                                            pool: ThreadPoolExecutor) -> None:
    """No fetched bytes land after a reset, a truncate or a close: they wait."""
    of = open_file(tmp_path, store, pool)
    for off in range(0, 3 * BLOCK, BLOCK):
        of.read(store, "obj", off, BLOCK)  # the window is open: blocks ahead are fetched
    of.settle()
    assert 7 not in of.blocks
    store.gate.clear()
    # Hold the next read (and the read-ahead it starts) at the gate, then reset.
    reader = threading.Thread(target=of.read, args=(store, "obj", 7 * BLOCK, BLOCK))
    reader.start()
    time.sleep(0.05)
    assert store.running > 0
    resetter = threading.Thread(target=of.reset, args=(BLOCK * BLOCKS, "other-etag"))
    resetter.start()
    time.sleep(0.1)
    assert resetter.is_alive()  # waiting for the fetches
    store.gate.set()
    reader.join(10)
    resetter.join(10)
    assert not resetter.is_alive()
    assert of.blocks.empty() and store.running == 0
    assert os.pread(of.fd, BLOCK, 8 * BLOCK) == bytes(BLOCK)  # nothing landed after
    of.close()


def test_a_read_that_could_wait_is_not_answered_without_waiting(
        tmp_path: Path, store: WatchedStore, pool: ThreadPoolExecutor) -> None:
    """read_present (the FUSE handler's read on its event loop) answers only from bytes
    that are here while no one holds the file; anything else is left to read()."""
    data = store.get("obj")
    of = open_file(tmp_path, store, pool)
    assert of.read_present(store, "obj", 0, 10) is None  # not fetched yet
    assert of.read(store, "obj", 0, 10) == data[:10]
    assert of.read_present(store, "obj", 10, 10) == data[10:20]
    holder = threading.Thread(target=of.lock.acquire)  # an upload, say, holds it
    holder.start()
    holder.join()
    assert of.read_present(store, "obj", 10, 10) is None
    of.close()
