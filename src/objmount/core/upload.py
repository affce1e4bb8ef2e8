"""Uploads made of parts.

Two ways a changed file travels in parts rather than whole:

- **Spliced** (partial writes): the parts of the new object that hold no local change
  are copied server-side from the stored version (UploadPartCopy, on the ETag seen at
  open), the others are sent from the cache file.
- **Streamed** (large new files): the parts of a file written from its start go out
  while the program is still writing, so close() only waits for the last ones.

Either way the object changes only when the upload completes; a failure aborts it and
the stored object stays as it was.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass

from objmount.errors import StoreError
from objmount.store.base import ObjectStore
from objmount.store.fdio import read_exactly

log = logging.getLogger(__name__)

MAX_PARTS = 10_000  # S3's limit on the parts of one upload
MAX_COPY_PART = 5 << 30  # S3's limit on one UploadPartCopy
# Attributes that the program's own writes move forward: not worth a copy of the object.
_WRITE_TIMES = ("atime", "mtime", "ctime")


@dataclass(frozen=True)
class Part:
    """Bytes [start, end) of a new object: copied from the stored version (``copy``) or
    read from the local file."""

    start: int
    end: int
    copy: bool


def splice_plan(size: int, remote_size: int, dirty_blocks: set[int], block_size: int,
                part_size: int) -> list[Part] | None:
    """The parts of a new version of ``size`` bytes, whose first ``remote_size`` bytes
    are the stored version's except in ``dirty_blocks``; None when no part could be
    copied (a small file, or every part has a change)."""
    if remote_size == 0 or size <= part_size:
        return None
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    parts: list[Part] = []
    for start in range(0, size, part_size):
        end = min(start + part_size, size)
        clean = end <= remote_size and not any(
            b in dirty_blocks for b in range(start // block_size, (end - 1) // block_size + 1))
        last = parts[-1] if parts else None
        if clean and last is not None and last.copy and end - last.start <= MAX_COPY_PART:
            parts[-1] = Part(last.start, end, True)  # one request for a run of copies
        else:
            parts.append(Part(start, end, clean))
    return parts if any(p.copy for p in parts) else None


def whole_parts(size: int, part_size: int) -> list[Part]:
    """A new object of ``size`` bytes sent whole, as parts: each is retried on its own,
    so one failed request costs one part, not the whole upload."""
    while -(-size // part_size) > MAX_PARTS:
        part_size *= 2
    return [Part(start, min(start + part_size, size), False)
            for start in range(0, size, part_size)]


def _run_all(pool: Executor | None, calls: Sequence[Callable[[], str]]) -> list[str]:
    """Every call's result, in order; on the first failure the others are cancelled or
    waited for (none may still run when the upload is aborted), then it is raised."""
    if pool is None:
        return [call() for call in calls]
    futures = [pool.submit(call) for call in calls]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        wait(futures)
        raise


def _abort_quietly(store: ObjectStore, key: str, upload_id: str) -> None:
    try:
        store.abort_upload(key, upload_id)
    except StoreError as exc:
        # The store ages out uploads that are never completed; nothing was changed.
        log.warning("could not abort the multipart upload of %s: %s", key, exc)


def upload_spliced(store: ObjectStore, key: str, fd: int, parts: Sequence[Part],
                   source_key: str, source_etag: str, metadata: Mapping[str, str],
                   content_type: str, pool: Executor | None) -> str:
    """Store ``parts`` as ``key``: copied from ``source_key`` while it still has
    ``source_etag`` (PreconditionFailed if not), or read from ``fd``; parts in parallel,
    each retried on its own by the store."""
    upload_id = store.create_upload(key, metadata, content_type)

    def send(number: int, part: Part) -> Callable[[], str]:
        if part.copy:
            return lambda: store.copy_part(key, upload_id, number, source_key, source_etag,
                                           part.start, part.end)
        return lambda: store.upload_part(key, upload_id, number,
                                         read_exactly(fd, part.start, part.end - part.start))

    try:
        etags = _run_all(pool, [send(n, p) for n, p in enumerate(parts, 1)])
        return store.complete_upload(key, upload_id, list(enumerate(etags, 1)))
    except BaseException:
        _abort_quietly(store, key, upload_id)
        raise


@dataclass(frozen=True)
class _Sent:
    generation: int  # of the part's bytes when they were read
    length: int
    etag: str


Describe = Callable[[], tuple[dict[str, str], str]]  # -> (metadata, content type) now


class StreamingUpload:
    """The multipart upload of a file being written from its start.

    Parts lie on a fixed grid of ``part_size``. While the program writes sequentially,
    each part it has written past is sent in the background (read back from the cache
    file: memory in flight is at most the pool's threads x ``part_size``). The multipart
    upload is created when the first part is ready, with the attributes of that moment
    (``describe``). A write into a part changes its generation: a part sent before
    the change is sent again at :meth:`finish`, which sends what is left and completes.
    After a write that does not continue the last one, no more parts go out early.
    """

    def __init__(self, store: ObjectStore, key: str, fd: int, part_size: int,
                 pool: Executor, describe: Describe) -> None:
        self.store = store
        self.key = key
        self.part_size = part_size
        self._fd = fd
        self._pool = pool
        self._describe = describe
        self._lock = threading.Lock()
        self._generation: dict[int, int] = {}  # part index -> bumped by every change
        self._sent: dict[int, _Sent] = {}
        self._running: set[Future[str]] = set()
        self._next_offset = 0
        self._scheduled_up_to = 0  # parts below this were handed to the pool
        self.sequential = True
        self.attributes_changed = False  # the program set attributes itself (chmod, utime)
        self._create_lock = threading.Lock()
        self._upload_id: str | None = None
        self._created_with: tuple[dict[str, str], str] = ({}, "")
        self._closed = False

    @property
    def started(self) -> bool:
        return self._upload_id is not None

    # -- while the program writes ---------------------------------------------------------
    def written(self, start: int, end: int) -> None:
        """Bytes [start, end) were written to the cache file."""
        if end <= start:
            return
        ps = self.part_size
        with self._lock:
            for idx in range(start // ps, (end - 1) // ps + 1):
                self._generation[idx] = self._generation.get(idx, 0) + 1
            if start != self._next_offset or end // ps > MAX_PARTS:
                self.sequential = False
            self._next_offset = end
            if not self.sequential or self._closed:
                return
            for idx in range(self._scheduled_up_to, end // ps):
                future = self._pool.submit(self._send, idx, ps)
                self._running.add(future)
                future.add_done_callback(self._done)
            self._scheduled_up_to = max(self._scheduled_up_to, end // ps)

    def truncated(self, size: int) -> None:
        """The file was cut or extended to ``size``: every part past it has changed."""
        ps = self.part_size
        with self._lock:
            self.sequential = False
            for idx in set(self._generation) | set(self._sent):
                if (idx + 1) * ps > size:
                    self._generation[idx] = self._generation.get(idx, 0) + 1

    def _done(self, future: Future[str]) -> None:
        with self._lock:
            self._running.discard(future)
        if not future.cancelled() and future.exception() is not None:
            # Sent again by finish(), which reports it if it fails for good.
            log.debug("early part of %s failed: %s", self.key, future.exception())

    def _ensure_created(self) -> str:
        with self._create_lock:
            if self._closed:
                raise StoreError(f"{self.key}: the streamed upload was abandoned")
            if self._upload_id is None:
                metadata, content_type = self._describe()
                self._upload_id = self.store.create_upload(self.key, metadata, content_type)
                self._created_with = (metadata, content_type)
            return self._upload_id

    def _send(self, idx: int, length: int) -> str:
        upload_id = self._ensure_created()
        with self._lock:
            generation = self._generation.get(idx, 0)
        data = read_exactly(self._fd, idx * self.part_size, length)
        etag = self.store.upload_part(self.key, upload_id, idx + 1, data)
        with self._lock:
            self._sent[idx] = _Sent(generation, length, etag)
        return etag

    def _settle(self) -> None:
        """No more early parts; wait for those running."""
        with self._lock:
            self.sequential = False
            running = list(self._running)
        wait(running)

    # -- at close ---------------------------------------------------------------------
    def finish(self, key: str, size: int, metadata: dict[str, str],
               content_type: str) -> tuple[str, dict[str, str]] | None:
        """Complete the upload as the file of ``size`` bytes at ``key``: its ETag and the
        metadata it was stored with; None (and nothing stored) when the upload is not
        worth completing: never started, a file of one part, or renamed since."""
        self._settle()
        ps = self.part_size
        count = -(-size // ps)
        if not self.started or key != self.key or size <= ps or count > MAX_PARTS:
            self.abort()
            return None
        upload_id = self._ensure_created()

        def current(idx: int, length: int) -> bool:
            sent = self._sent.get(idx)
            return (sent is not None and sent.length == length
                    and sent.generation == self._generation.get(idx, 0))

        lengths = [min(ps, size - idx * ps) for idx in range(count)]
        with self._lock:
            stale = [idx for idx in range(count) if not current(idx, lengths[idx])]
        try:
            _run_all(self._pool, [functools.partial(self._send, idx, lengths[idx])
                                  for idx in stale])
            parts = [(idx + 1, self._sent[idx].etag) for idx in range(count)]
            etag = self.store.complete_upload(key, upload_id, parts)
        except BaseException:
            self.abort()
            raise
        with self._create_lock:
            self._upload_id = None
            self._closed = True
        created_metadata, created_type = self._created_with
        if (self.attributes_changed or content_type != created_type
                or _without_write_times(metadata) != _without_write_times(created_metadata)):
            # The program set attributes after the upload began (cp -a, rsync): one
            # server-side copy of the object onto itself carries them.
            copies = [Part(start, min(start + MAX_COPY_PART, size), True)
                      for start in range(0, size, MAX_COPY_PART)]
            etag = upload_spliced(self.store, key, self._fd, copies, key, etag, metadata,
                                  content_type, self._pool)
            return etag, metadata
        return etag, created_metadata

    def abort(self) -> None:
        """Give up: nothing of it becomes an object."""
        with self._create_lock:
            self._closed = True
        self._settle()
        with self._create_lock:
            upload_id, self._upload_id = self._upload_id, None
        if upload_id is not None:
            _abort_quietly(self.store, self.key, upload_id)


def _without_write_times(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in metadata.items() if k not in _WRITE_TIMES}
