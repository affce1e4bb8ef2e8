"""Attributes that a listing does not carry, fetched when a program asks, and ahead.

A LIST gives each object's name, size and time, not its mode, owner or times of its
own (only a HEAD does). Listing a directory therefore leaves large files with
*provisional* attributes (see namespace.py), and their HEADs wait until a program asks
for the attributes: ``rm -r`` and ``find -type f`` never do, ``ls -l``, ``du`` and
``find -size`` ask for every entry, in the order of the listing. So when one entry is
asked for, the entries after it that need a HEAD (provisional, or expired since) are
fetched too, in parallel: a window that starts at ``first_window`` HEADs and doubles
each time the program gets past its middle (or reaches its end), and starts over when
the program jumps elsewhere.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from objmount.core.inodes import Inode

_DIRECTORIES_KEPT = 256  # listings whose order is remembered


@dataclass
class _Order:
    names: list[str]  # the files listed, in order
    index: dict[str, int]
    fetched_to: int = 0  # entries before this were asked for already
    window: int = 0


class AttrFetcher:
    def __init__(self, pool: Executor, head: Callable[[Inode], None],
                 needs_head: Callable[[Inode], bool],
                 child: Callable[[Inode, str], Inode | None], *, first_window: int = 32,
                 max_window: int = 1024) -> None:
        """``head(inode)`` fetches and records one inode's attributes; ``needs_head``
        says whether an inode's are provisional or expired; ``child`` finds an entry by name."""
        self._pool = pool
        self._head = head
        self._needs_head = needs_head
        self._child = child
        self.first_window = first_window
        self.max_window = max_window
        # Reentrant: a HEAD done before its callback is added runs the callback here.
        self._lock = threading.RLock()
        self._inflight: dict[int, Future[None]] = {}
        self._ahead: set[int] = set()  # fetched ahead of the program, not used yet
        self._orders: OrderedDict[int, _Order] = OrderedDict()

    def listed(self, directory: Inode, names: list[str]) -> None:
        """``names``, the files just listed in ``directory``, in the order programs will
        see them."""
        with self._lock:
            old = self._orders.pop(directory.ino, None)
            if old is not None:
                for name in old.names:  # no longer ahead of anything
                    child = self._child(directory, name)
                    if child is not None:
                        self._ahead.discard(child.ino)
            if names:
                self._orders[directory.ino] = _Order(names, {n: i for i, n in enumerate(names)})
                while len(self._orders) > _DIRECTORIES_KEPT:
                    self._orders.popitem(last=False)

    def fetch(self, inode: Inode) -> None:
        """Fetch ``inode``'s attributes (waiting for a HEAD already on its way) and start
        those of the entries after it; raises what its HEAD raised."""
        with self._lock:
            self._ahead.discard(inode.ino)
            future = self._inflight.get(inode.ino) or self._submit(inode)
            self._advance(inode, missed=True)
        future.result()

    def used(self, inode: Inode) -> None:
        """A program used attributes that were here: if they were fetched ahead, stay
        ahead of it (past the middle of the window, the next one goes out)."""
        if inode.ino not in self._ahead:  # the common case, without the lock
            return
        with self._lock:
            self._ahead.discard(inode.ino)
            self._advance(inode, missed=False)

    def _advance(self, inode: Inode, *, missed: bool) -> None:
        parent = inode.parent
        order = self._orders.get(parent.ino) if parent is not None else None
        at = order.index.get(inode.name) if order is not None else None
        if parent is None or order is None or at is None:
            return
        in_window = order.fetched_to - order.window <= at <= order.fetched_to
        if missed:
            # Reaching what was fetched ahead (or its end): the guess was right.
            window = min(max(self.first_window, order.window * 2), self.max_window) \
                if in_window else self.first_window
        elif in_window and at >= order.fetched_to - order.window // 2:
            window = min(max(self.first_window, order.window * 2), self.max_window)
        else:
            return
        # A miss means what was fetched before has expired (or never was): the window
        # starts right after it; a hit keeps extending the window already out.
        start = at + 1 if missed else max(at + 1, order.fetched_to)
        stop = min(len(order.names), at + 1 + window)
        order.window = window
        order.fetched_to = stop if missed else max(stop, order.fetched_to)
        for name in order.names[start:stop]:
            child = self._child(parent, name)
            if (child is not None and child.ino not in self._inflight
                    and self._needs_head(child)):
                self._submit(child)
                self._ahead.add(child.ino)

    def _submit(self, inode: Inode) -> Future[None]:
        future = self._pool.submit(self._head, inode)
        self._inflight[inode.ino] = future
        future.add_done_callback(functools.partial(self._done, inode.ino))
        return future

    def _done(self, ino: int, future: Future[None]) -> None:
        with self._lock:
            if self._inflight.get(ino) is future:
                del self._inflight[ino]

    def in_flight(self) -> int:
        with self._lock:
            return len(self._inflight)
