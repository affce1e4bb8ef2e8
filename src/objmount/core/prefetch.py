"""Read prediction: how far ahead of a reader to fetch, and fetching blocks concurrently.

:class:`ReadAhead` watches the reads of one open file. A read that starts where the
previous one ended — or inside what was fetched ahead for it (a program that reads
cached bytes without asking, as under interception, is only seen when it reaches a
missing block) — is sequential, and the window of blocks fetched ahead doubles, from one
block up to ``max_blocks``; any other read resets it to nothing, so random access fetches
only the blocks it touches.

:class:`BlockFetcher` runs the fetches of one open file on a shared, bounded pool (the
store clients release the GIL while they wait for the network), a run of consecutive
blocks per request, and remembers which are in flight, so that a read of a block
already on its way waits for it instead of asking again. Whatever changes the file
other than a fetch (a reset, a truncate, a write, a close) first calls
:meth:`BlockFetcher.settle`, so no fetched bytes land after it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, wait


class ReadAhead:
    def __init__(self, max_blocks: int) -> None:
        self.max_blocks = max(0, max_blocks)
        self.window = 0  # blocks fetched ahead at the last read
        self._next = -1  # block just after the last read
        self._ahead_end = -1  # block just after what was fetched ahead of it

    def continues(self, first: int) -> bool:
        """Would a read starting in block ``first`` count as sequential?"""
        return self._next >= 0 and self._next - 1 <= first <= max(self._next, self._ahead_end)

    def advise(self, first: int, end: int) -> range:
        """A read of blocks [first, end): the blocks to fetch ahead of it."""
        if self.continues(first):
            self.window = min(max(1, self.window * 2), self.max_blocks)
        else:
            self.window = 0
        self._next = end
        ahead = range(end, end + self.window)
        self._ahead_end = ahead.stop
        return ahead


class ReadCounters:
    """How programs' reads found their blocks, over all open files: ``hits`` present,
    ``ahead`` on their way already (read-ahead), ``misses`` fetched for the read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.hits = self.ahead = self.misses = 0

    def count(self, needed: int, in_flight: int) -> None:
        with self._lock:
            if not needed:
                self.hits += 1
            elif needed == in_flight:
                self.ahead += 1
            else:
                self.misses += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"hits": self.hits, "ahead": self.ahead, "misses": self.misses}


# fetch(first, count, landed): blocks [first, first + count) in one request, calling
# landed(block) as soon as each one is present.
FetchRun = Callable[[int, int, Callable[[int], None]], None]
_DONE: Future[None] = Future()
_DONE.set_result(None)


def runs(blocks: Iterable[int], max_run: int) -> Iterator[list[int]]:
    """``blocks`` (ascending) as runs of consecutive blocks, each at most ``max_run``."""
    run: list[int] = []
    for block in blocks:
        if run and (block != run[-1] + 1 or len(run) >= max_run):
            yield run
            run = []
        run.append(block)
    if run:
        yield run


class BlockFetcher:
    """Concurrent fetches of the blocks of one cache file. Missing blocks asked for
    together are fetched as runs of consecutive blocks, one request per run of at most
    ``max_run`` (a few large GETs cost less than many small ones); each block has its
    own future, done as soon as that block is present. Fetches run on ``pool``, or
    inline without one."""

    def __init__(self, pool: Executor | None, present: Callable[[int], bool],
                 max_run: int = 1) -> None:
        self._pool = pool
        self._present = present  # a fetch marks its block present before it completes
        self.max_run = max(1, max_run)
        # Reentrant: a future that is already done runs its callback in the caller.
        self._lock = threading.RLock()
        self._inflight: dict[int, Future[None]] = {}

    def start(self, blocks: Iterable[int], fetch: FetchRun) -> list[Future[None]]:
        """Fetch ``blocks`` (ascending) in the background, those not already on their
        way; the futures of all of them."""
        futures: list[Future[None]] = []
        new: list[int] = []
        with self._lock:
            for block in blocks:
                future = self._inflight.get(block)
                if future is None and self._present(block):
                    future = _DONE  # fetched since the caller looked
                # A failed fetch whose callback has not run yet is no fetch in flight.
                elif future is None or (future.done() and future.exception() is not None):
                    future = Future()
                    self._inflight[block] = future
                    future.add_done_callback(functools.partial(self._done, block))
                    new.append(block)
                futures.append(future)
            submitted = [(run, [self._inflight[b] for b in run])
                         for run in runs(new, self.max_run)]
        for run, run_futures in submitted:
            self._submit(run, run_futures, fetch)
        return futures

    def not_in_flight(self, blocks: Iterable[int]) -> list[int]:
        with self._lock:
            return [b for b in blocks if b not in self._inflight]

    def in_flight_of(self, blocks: Iterable[int]) -> set[int]:
        """Which of ``blocks`` are being fetched now."""
        with self._lock:
            return {b for b in blocks if b in self._inflight and not self._inflight[b].done()}

    def _submit(self, run: list[int], futures: list[Future[None]], fetch: FetchRun) -> None:
        by_block = dict(zip(run, futures, strict=True))

        def landed(block: int) -> None:
            future = by_block[block]
            if not future.done():
                future.set_result(None)

        def task() -> None:
            try:
                fetch(run[0], len(run), landed)
            except BaseException as exc:
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            for future in futures:  # a fetch that returned without them is a bug
                if not future.done():
                    future.set_exception(RuntimeError("block not fetched"))

        if self._pool is None:
            task()
        else:
            self._pool.submit(task)

    def _done(self, block: int, future: Future[None]) -> None:
        with self._lock:
            if self._inflight.get(block) is future:
                del self._inflight[block]

    def get(self, blocks: Iterable[int], fetch: FetchRun) -> None:
        """Fetch ``blocks`` (concurrently) and wait for them; raise the first error."""
        futures = self.start(blocks, fetch)
        wait(futures)
        for future in futures:
            future.result()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def settle(self) -> None:
        """Wait until no fetch is in flight (their errors are the readers' business)."""
        while True:
            with self._lock:
                pending = list(self._inflight.values())
            if not pending:
                return
            wait(pending)
