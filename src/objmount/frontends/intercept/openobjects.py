"""Objects that programs hold open under interception, and what their closes do.

Each open() by a program gets its own open file description of the object's cache file
(opened here, handed over with SCM_RIGHTS) and its own engine handle. The kernel tells
of the last close of each description through inotify (closewatch.py), whoever makes
it: the program, a child it forked or exec'd, or the exit of any of them. Closes of
writable descriptions store the file (engine.flush), so close-to-open holds without a
close() wrapper; the last close releases the engine's open file. Work for one object
runs in order, on a worker, never in the thread that reads events.

A shim that called close() itself sends FLUSH afterwards and waits here for the work its
close caused, so close() returns after the upload with its error, as on the FUSE mount.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from objmount.core.engine import Engine
from objmount.core.inodes import Inode
from objmount.core.openfile import OpenFile
from objmount.errors import FsError, to_errno
from objmount.frontends.intercept.closewatch import (
    IN_CLOSE_NOWRITE,
    IN_CLOSE_WRITE,
    IN_MODIFY,
    IN_Q_OVERFLOW,
    CloseWatch,
)

log = logging.getLogger(__name__)

_RECENT = 4096  # closed objects remembered for FLUSHes that arrive after the last close


@dataclass(eq=False)
class OpenObject:
    handle: int
    inode: Inode
    of: OpenFile
    vpath: bytes
    readers: list[int] = field(default_factory=list)  # engine handles, one per description
    writers: list[int] = field(default_factory=list)
    modified: bool = False  # a program wrote the cache file since its last adoption
    sessions: set[bytes] = field(default_factory=set)
    pending: list[Future[int]] = field(default_factory=list)
    serial: threading.Lock = field(default_factory=threading.Lock)

    @property
    def any_handle(self) -> int | None:
        handles = self.writers or self.readers
        return handles[0] if handles else None


class OpenObjects:
    def __init__(self, engine: Engine, watch_dir: Path, *,
                 on_change: Callable[[OpenObject], None],
                 on_failure: Callable[[OpenObject, str], None],
                 workers: int = 16) -> None:
        self.engine = engine
        self._watch = CloseWatch(watch_dir)
        self._on_change = on_change
        self._on_failure = on_failure
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="objmount-close")
        self._lock = threading.Lock()
        self._next_handle = 1
        self._by_handle: dict[int, OpenObject] = {}
        self._by_name: dict[str, OpenObject] = {}
        self._by_inode: dict[int, OpenObject] = {}
        self._recent: OrderedDict[int, OpenObject] = OrderedDict()
        self._recent_by_inode: dict[int, OpenObject] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch_loop, name="objmount-inotify",
                                        daemon=True)
        self._thread.start()

    # -- handing out descriptions ---------------------------------------------------------
    def hand_out(self, fh: int, flags: int, vpath: bytes, session: bytes
                 ) -> tuple[OpenObject, int]:
        """Register a description for engine handle ``fh`` and open it: the caller sends
        the returned descriptor to the program and closes its own copy."""
        inode, of = self.engine.open_file(fh)
        accmode = flags & os.O_ACCMODE
        writable = accmode in (os.O_WRONLY, os.O_RDWR)
        if writable:
            self.engine.add_external_writer(fh)  # makes the cache file whole first
        with self._lock:
            # Events queued so far came before this writer: a fill, a truncation.
            self._drain_locked()
            obj = self._by_inode.get(inode.ino)
            if obj is None or obj.of is not of:
                obj = OpenObject(self._next_handle, inode, of, vpath)
                self._next_handle += 1
                self._by_handle[obj.handle] = obj
                self._by_name[of.path.name] = obj
                self._by_inode[inode.ino] = obj
            obj.vpath = vpath
            (obj.writers if writable else obj.readers).append(fh)
            obj.sessions.add(session)
        mode = accmode | os.O_CLOEXEC | (flags & os.O_APPEND)
        try:
            fd = os.open(of.path, mode)
        except OSError:
            # Never opened: no close event will come for it.
            with self._lock:
                (obj.writers if writable else obj.readers).remove(fh)
            self._run(obj, fh, writable)
            raise
        return obj, fd

    # -- questions from shims ---------------------------------------------------------------
    def get(self, handle: int) -> OpenObject:
        with self._lock:
            obj = self._by_handle.get(handle) or self._recent.get(handle)
        if obj is None:
            raise FsError(errno.EIO, f"unknown handle {handle} (the daemon was restarted?)")
        return obj

    def live_handle(self, handle: int) -> tuple[OpenObject, int]:
        """An engine handle of an object some description still holds open."""
        obj = self.get(handle)
        fh = obj.any_handle
        if fh is None:
            raise FsError(errno.EBADF, "the file is closed")
        return obj, fh

    def of_inode(self, ino: int) -> OpenObject | None:
        with self._lock:
            return self._by_inode.get(ino)

    def settle(self, ino: int) -> None:
        """Before a new open of inode ``ino``: let the closes already made by programs
        (an exit, a child's last descriptor) store the file first."""
        self.drain()
        with self._lock:
            waiting = [f for o in (self._by_inode.get(ino), self._recent_by_inode.get(ino))
                       if o is not None for f in o.pending]
        for f in waiting:
            f.result()

    def mark_modified(self, handle: int) -> None:
        self.get(handle).modified = True

    def mark_write_failed(self, handle: int, err: int) -> None:
        """A program's write to the cache file failed: its closes must not store it."""
        obj = self.get(handle)
        if obj.writers:
            self.engine.note_failed_write(obj.writers[0], err)

    def flush(self, handle: int) -> None:
        """close() or fsync() of a writable descriptor: wait for the work earlier closes
        caused, then store what is still dirty. Raises on the first failure."""
        self.drain()
        obj = self.get(handle)
        with self._lock:
            waiting = list(obj.pending)
        failures = [f.result() for f in waiting if f.result()]
        with obj.serial:
            fh = obj.writers[0] if obj.writers else None
            if fh is not None:
                try:
                    self._store(obj, fh)
                except Exception as exc:
                    failures.append(to_errno(exc))
        if failures:
            raise FsError(failures[0], f"{obj.vpath.decode(errors='replace')}: not stored")

    def wait_for(self, session: bytes) -> None:
        """Every close queued so far by ``session`` has been dealt with."""
        self.drain()
        with self._lock:
            objs = list(self._by_handle.values()) + list(self._recent.values())
            waiting = [f for o in objs if session in o.sessions for f in o.pending]
        for f in waiting:
            f.result()

    def busy(self) -> bool:
        with self._lock:
            return bool(self._by_handle) or any(
                not f.done() for o in self._recent.values() for f in o.pending)

    def count(self) -> int:
        with self._lock:
            return len(self._by_handle)

    # -- events -----------------------------------------------------------------------------
    def drain(self) -> None:
        with self._lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        for ev in self._watch.read():
            if ev.mask & IN_Q_OVERFLOW:
                self._overflowed_locked()
                continue
            obj = self._by_name.get(ev.name)
            if obj is None:
                continue
            if ev.mask & IN_MODIFY and obj.writers:
                obj.modified = True
            if ev.mask & (IN_CLOSE_WRITE | IN_CLOSE_NOWRITE):
                writable = bool(ev.mask & IN_CLOSE_WRITE)
                handles = obj.writers if writable else obj.readers
                if not handles:
                    log.warning("%s: a close objmount did not expect", obj.vpath)
                    continue
                self._queue(obj, handles.pop(), writable)

    def _queue(self, obj: OpenObject, fh: int, writable: bool) -> None:
        obj.pending = [f for f in obj.pending if not f.done()]
        obj.pending.append(self._pool.submit(self._run, obj, fh, writable))

    def _watch_loop(self) -> None:
        import select

        poller = select.poll()
        poller.register(self._watch.fd, select.POLLIN)
        while not self._stop.is_set():
            if poller.poll(500):
                self.drain()

    def _overflowed_locked(self) -> None:
        """Events were lost: ask /proc which cache files are still held, and close the
        descriptions of the others (counting on their writes having happened)."""
        log.error("inotify queue overflowed: checking open cache files through /proc")
        held = _held_paths()
        for obj in list(self._by_handle.values()):
            if str(obj.of.path) in held:
                obj.modified = obj.modified or bool(obj.writers)
                continue
            obj.modified = bool(obj.writers)
            while obj.writers:
                self._queue(obj, obj.writers.pop(), True)
            while obj.readers:
                self._queue(obj, obj.readers.pop(), False)

    # -- the work a close causes --------------------------------------------------------------
    def _store(self, obj: OpenObject, fh: int) -> None:
        if obj.modified:
            obj.modified = False  # before adopting: writes after this mark it again
            self.engine.adopt_external_writes(fh)
        self.engine.flush(fh)
        self._on_change(obj)

    def _run(self, obj: OpenObject, fh: int, writable: bool) -> int:
        status = 0
        with obj.serial:
            if writable:
                try:
                    self._store(obj, fh)
                except Exception as exc:
                    status = to_errno(exc)
                    message = (f"{obj.vpath.decode(errors='replace')}: upload failed "
                               f"({os.strerror(status)}): {exc}")
                    log.error("%s", message)
                    self._on_failure(obj, message)
                finally:
                    self.engine.remove_external_writer(fh)
            with self._lock:
                # Leave the registry before the engine closes the cache file, whose own
                # last close must not count as a program's.
                if (not obj.readers and not obj.writers
                        and self._by_handle.get(obj.handle) is obj):
                    self._retire_locked(obj)
            try:
                self.engine.release(fh)
            except Exception:
                log.exception("releasing %s", obj.vpath)
        self._on_change(obj)
        return status

    def _retire_locked(self, obj: OpenObject) -> None:
        del self._by_handle[obj.handle]
        if self._by_name.get(obj.of.path.name) is obj:
            del self._by_name[obj.of.path.name]
        if self._by_inode.get(obj.inode.ino) is obj:
            del self._by_inode[obj.inode.ino]
        self._recent[obj.handle] = obj
        self._recent_by_inode[obj.inode.ino] = obj
        while len(self._recent) > _RECENT:
            _, old = self._recent.popitem(last=False)
            if self._recent_by_inode.get(old.inode.ino) is old:
                del self._recent_by_inode[old.inode.ino]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.drain()
        self._pool.shutdown(wait=True)
        self._watch.close()


def _held_paths() -> set[str]:
    """Files this user's processes hold open or mapped, by path."""
    held: set[str] = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    continue
            with open(f"/proc/{pid}/maps") as maps:
                for line in maps:
                    parts = line.split(maxsplit=5)
                    if len(parts) == 6:
                        held.add(parts[5].strip())
        except OSError:
            continue
    return held


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
