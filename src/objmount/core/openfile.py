"""The local cache file of one open object, shared by every handle open on it.

Reads fill the cache file block by block from the store; writes go to the cache file
and make it dirty; :meth:`OpenFile.upload` sends it whole (one PUT, or a multipart
upload for large files), so the store only ever holds a complete object.

The cache file is opened once, here, and all of objmount's own I/O on it goes through
that descriptor (pread/pwrite): the interception daemon watches the opens and closes of
cache files with inotify, and must only ever see its clients' own.

State: ``blocks.remote_size``/``etag`` describe the object the clean blocks came from;
``blocks`` records which are present; ``data_dirty`` says the local bytes differ from the
store; ``meta_dirty`` says only the attributes do. ``external_writers`` counts writable
descriptors that programs hold on the cache file itself (interception): their writes
bypass :meth:`write`, so the file is kept whole while they exist and its size is read
back from the file (:meth:`adopt_external_writes`).
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, wait
from pathlib import Path

from objmount.core.blockmap import BlockMap
from objmount.core.cache import Parked
from objmount.core.prefetch import BlockFetcher, ReadAhead, ReadCounters
from objmount.core.upload import (
    Part,
    StreamingUpload,
    splice_plan,
    upload_spliced,
    whole_parts,
)
from objmount.errors import FsError, NotSupported, PreconditionFailed
from objmount.store.base import ObjectStore
from objmount.store.fdio import write_at

log = logging.getLogger(__name__)

_told_no_part_copy = False


def _note_no_part_copy(exc: Exception) -> None:
    global _told_no_part_copy
    if not _told_no_part_copy:
        _told_no_part_copy = True
        log.warning("the store cannot copy parts of objects (%s): changed files are "
                    "uploaded whole", exc)


# Random reads of at most an eighth of a block (128 KiB of 1 MiB) fetch only their own
# bytes, once per sixteenth of a block (see OpenFile._sparse).
SPARSE_READ_FRACTION = 8
SPARSE_REGION_FRACTION = 16


class OpenFile:
    def __init__(self, cache_dir: Path, block_size: int, remote_size: int,
                 etag: str | None, *, shared_map: bool = False,
                 fetch_pool: Executor | None = None, read_ahead_blocks: int = 0,
                 fetch_run_blocks: int = 1,
                 read_counters: ReadCounters | None = None,
                 reuse: Parked | None = None, key: str | None = None,
                 upload_pool: Executor | None = None) -> None:
        """``etag``: of the object at ``key`` that the remote bytes come from; ``reuse``:
        a parked file holding bytes of that version; ``upload_pool``: where the parts of
        uploads go out (None: one at a time)."""
        self.lock = threading.RLock()
        self.upload_pool = upload_pool
        # The upload of a large new file, under way while it is written (FUSE writes).
        self.stream: StreamingUpload | None = None
        self._read_counters = read_counters
        self.readahead = ReadAhead(read_ahead_blocks)
        self._sparse_regions: set[int] = set()  # where random reads took only their bytes
        self._fetcher = BlockFetcher(fetch_pool, self._present, fetch_run_blocks)
        if reuse is not None:
            # Under a fresh name (the interception daemon knows cache files by name), and
            # with no other descriptor opened and closed there (it counts closes).
            name = str(cache_dir / f"open-{secrets.token_hex(8)}")
            os.rename(reuse.path, name)
            fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
        else:
            fd, name = tempfile.mkstemp(prefix="open-", dir=cache_dir)
        self.fd = fd
        self.path = Path(name)
        self.size = remote_size
        self.etag = etag
        self.source_key = key
        # Blocks holding local changes to remote bytes: the parts of an upload that
        # contain none are copied in the store, not sent (see upload()).
        self.dirty: set[int] = set()
        self.blocks = BlockMap(block_size, remote_size, shared=shared_map)
        for block in reuse.blocks if reuse is not None else ():
            self.blocks.add(block)
        self.data_dirty = False
        self.meta_dirty = False
        # Counts resets: a descriptor opened before the last one reads another version,
        # and gets ESTALE instead of a mixture of the two (Engine.read).
        self.generation = 0
        # errno of a local write that failed (a full cache disk): the local bytes are not
        # what the program meant, so they must not replace the object.
        self.failed: int | None = None
        self.handles = 0
        self.external_writers = 0
        # (atime, mtime) the cache file shows while no program writes it: programs read
        # the object's times from it (interception's fstat), and fetched bytes are no
        # change. None: no one reads them there (FUSE).
        self._held_times: tuple[int, int] | None = None
        os.ftruncate(fd, remote_size)

    @property
    def remote_size(self) -> int:
        return self.blocks.remote_size

    # -- filling ----------------------------------------------------------------------
    def ensure(self, store: ObjectStore, key: str, start: int, end: int, *,
               predict: bool = False) -> None:
        """Make bytes [start, end) of the remote object present in the cache file.
        ``predict``: a program's read; blocks ahead of it are fetched in the background
        when it reads sequentially (:mod:`objmount.core.prefetch`)."""
        fetch = functools.partial(self._fetch_run, store, key, self.etag)
        needed = self.blocks.missing(start, end)
        ahead_of_us = self._fetcher.in_flight_of(needed)  # fetched ahead for an earlier read
        if predict and self._read_counters is not None:
            self._read_counters.count(len(needed), len(ahead_of_us))
        waiting = self._fetcher.start(needed, fetch)
        end = min(end, self.remote_size)
        if predict and end > start and self.readahead.max_blocks:
            bs, total = self.blocks.block_size, self.blocks.blocks()
            ahead = self.readahead.advise(start // bs, (end - 1) // bs + 1)
            wanted = self._fetcher.not_in_flight(
                b for b in ahead if b < total and b not in self.blocks)
            # A run at a time: the window grows by a block per block read, and a GET per
            # block would cost more than it carries.
            if wanted and (len(wanted) >= min(self._fetcher.max_run, len(ahead))
                           or ahead.stop >= total):
                self._fetcher.start(wanted, fetch)
        wait(waiting)
        # A read-ahead that failed is this read's to try again; its own errors are final.
        again = [b for b, f in zip(needed, waiting, strict=True)
                 if f.exception() is not None and b in ahead_of_us]
        if again:
            self._fetcher.get(again, fetch)
        for block, future in zip(needed, waiting, strict=True):
            if block not in again:
                future.result()

    def _fetch_run(self, store: ObjectStore, key: str, etag: str | None, first: int,
                   count: int, landed: Callable[[int], None]) -> None:
        """Blocks [first, first + count) from the store into the cache file, in one
        request, each announced as soon as its bytes are in (on a fetch thread: no
        self.lock; whatever else changes the file settles the fetches first)."""
        bs = self.blocks.block_size
        lo, hi = first * bs, min((first + count) * bs, self.remote_size)
        block = first

        def sink(offset: int, chunk: memoryview) -> None:
            nonlocal block
            self._fill(chunk, offset)
            done_to = offset + len(chunk)
            while block < first + count and min((block + 1) * bs, hi) <= done_to:
                self.blocks.add(block)
                landed(block)
                block += 1

        try:
            store.read_into(key, lo, hi, sink, etag=etag)
        finally:
            # A fetch ahead of the reader lands after the read that started it set the
            # times back; each one sets them back itself.
            self._restore_times()
        if block < first + count:
            raise OSError(errno.EIO, f"short read of {key}: blocks from {block} missing")

    def hold_times(self, atime_ns: int, mtime_ns: int) -> None:
        """Show these times on the cache file from now on, while no program writes it."""
        self._held_times = (atime_ns, mtime_ns)
        self._restore_times()

    def _restore_times(self) -> None:
        held = self._held_times
        if held is not None and self.external_writers == 0 and not self.data_dirty:
            try:
                os.utime(self.fd, ns=held)
            except OSError as exc:  # closed meanwhile: nobody reads them any more
                log.debug("cache file times not set back: %s", exc)

    def _present(self, block: int) -> bool:
        return block in self.blocks

    def fetching(self) -> bool:
        return self._fetcher.in_flight() > 0

    def settle(self) -> None:
        """No fetch in flight: before anything else changes the cache file or its map."""
        self._fetcher.settle()

    def _fill(self, data: bytes | memoryview, offset: int) -> None:
        try:
            write_at(self.fd, data, offset)
        except OSError as exc:
            self.failed = exc.errno
            raise

    def ensure_all(self, store: ObjectStore, key: str) -> None:
        """Copy the whole remote object: needed before the first change of its bytes."""
        if not self.blocks.missing(0, self.remote_size):
            return
        self.settle()
        if self.blocks.empty():
            store.download(key, self.fd, etag=self.etag)
            self.blocks.fill_all()
        else:
            self.ensure(store, key, 0, self.remote_size)

    # -- local changes ----------------------------------------------------------------
    def current(self, generation: int | None) -> None:
        """ESTALE unless this still holds the version of ``generation`` (None: any);
        under self.lock, so that no reset comes between the check and the bytes."""
        if generation is not None and generation != self.generation:
            raise FsError(errno.ESTALE, "replaced in the store since this descriptor was "
                          "opened")

    def read(self, store: ObjectStore, key: str, offset: int, size: int,
             generation: int | None = None) -> bytes:
        with self.lock:
            self.current(generation)
            end = min(offset + size, self.size)
            if end <= offset:
                return b""
            if self._sparse(offset, end):
                return store.get_range(key, offset, end, etag=self.etag)
            self.ensure(store, key, offset, end, predict=True)
            return os.pread(self.fd, end - offset, offset)

    def _sparse(self, offset: int, end: int) -> bool:
        """Is this a random read of a few pages, none of them here or on their way, in
        a region no read took that way before? Then only its bytes are fetched (and not
        kept): a block per read would move 256 times the bytes of a 4 KiB read. A second
        such read near the first takes whole blocks, for programs with locality."""
        bs = self.blocks.block_size
        first, last = offset // bs, (end - 1) // bs
        region = max(1, bs // SPARSE_REGION_FRACTION)
        regions = range(offset // region, (end - 1) // region + 1)
        if (end - offset > bs // SPARSE_READ_FRACTION or offset == 0 or end > self.remote_size
                or not self.readahead.max_blocks or self.readahead.continues(first)
                or any(r in self._sparse_regions for r in regions)):
            return False
        blocks = range(first, last + 1)
        if any(b in self.blocks for b in blocks) or self._fetcher.in_flight_of(blocks):
            return False
        self._sparse_regions.update(regions)
        self.readahead.advise(first, last + 1)  # where the reader is, for the next read
        if self._read_counters is not None:
            self._read_counters.count(len(blocks), 0)
        return True

    def read_present(self, store: ObjectStore, key: str, offset: int,
                     size: int, generation: int | None = None) -> bytes | None:
        """:meth:`read` if it cannot block: the bytes are here and no one holds the file
        (an upload, a truncation); None otherwise. Read-ahead is advised as by a read."""
        if not self.lock.acquire(blocking=False):
            return None
        try:
            if generation is not None and generation != self.generation:
                return None  # read() says why
            end = min(offset + size, self.size)
            if end <= offset:
                return b""
            if self.blocks.missing(offset, end):
                return None
            self.ensure(store, key, offset, end, predict=True)  # waits for nothing
            return os.pread(self.fd, end - offset, offset)
        finally:
            self.lock.release()

    def write(self, store: ObjectStore, key: str, offset: int, data: bytes) -> int:
        """Into the cache file. Only the blocks the write covers in part are fetched
        first (their other bytes must survive); nothing else of the object is needed."""
        with self.lock:
            self.settle()  # no fetch may land on what is written now
            end = offset + len(data)
            self._fetch_partly_covered(store, key, offset, end)
            try:
                written = os.pwrite(self.fd, data, offset)
            except OSError as exc:
                self.failed = exc.errno
                raise
            if written < len(data):
                # The rest of a block taken as wholly overwritten was not fetched.
                self.failed = errno.ENOSPC
                raise OSError(errno.ENOSPC, f"short write to the cache of {key}")
            if written:  # an empty write changes nothing, not even the size
                self._written(offset, end)
                self.size = max(self.size, end)
                if self.stream is not None:
                    self.stream.written(offset, end)
            self.data_dirty = True
            return written

    def _fetch_partly_covered(self, store: ObjectStore, key: str, start: int,
                              end: int) -> None:
        remote, bs = self.remote_size, self.blocks.block_size
        if end <= start:
            return
        # Only the first and last block can be covered in part; a block matters if it
        # holds remote bytes (it may begin before remote_size and the write after it).
        edges = {start // bs, (end - 1) // bs}
        partial = [b for b in sorted(edges) if b * bs < remote and b not in self.blocks
                   and not (start <= b * bs and end >= min((b + 1) * bs, remote))]
        if partial:
            self._fetcher.get(partial, functools.partial(self._fetch_run, store, key,
                                                          self.etag))

    def _written(self, start: int, end: int) -> None:
        """Bytes [start, end) are local now: the blocks they touch never need fetching."""
        bs = self.blocks.block_size
        if end <= start:
            return
        for block in range(start // bs, (end - 1) // bs + 1):
            self.dirty.add(block)
            if block * bs < self.remote_size:
                self.blocks.add(block)

    def truncate(self, store: ObjectStore, key: str, size: int) -> None:
        """Remote bytes before the new end stay remote (fetched when needed); those
        after it are gone: the block map's remote size shrinks with the file."""
        with self.lock:
            self.settle()
            os.ftruncate(self.fd, size)
            if size == 0:
                self.failed = None  # nothing left of the bytes that could not be written
            self.size = size
            # Blocks cut off are local now: zeros beyond the new end, not remote bytes.
            self.blocks.truncate(size)
            self.data_dirty = True
            if self.stream is not None:
                self.stream.truncated(size)

    def adopt_external_writes(self) -> os.stat_result:
        """Programs wrote the cache file directly: take its size, and mark it dirty."""
        with self.lock:
            self.settle()
            self.abandon_stream()  # its parts may not hold what the program wrote
            st = os.fstat(self.fd)
            self.size = st.st_size
            self.blocks.truncate(st.st_size)
            self.dirty.update(range(-(-st.st_size // self.blocks.block_size)))  # any of it
            self.data_dirty = True
            return st

    # -- persistence ------------------------------------------------------------------
    def can_stream(self, offset: int) -> bool:
        """A write at ``offset`` starts a file that may be streamed: it has no stored
        bytes to keep, and only our own writes change it."""
        return (self.stream is None and offset == 0 and self.size == 0
                and self.remote_size == 0 and not self.external_writers
                and self.upload_pool is not None)

    def abandon_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.abort()

    def upload(self, store: ObjectStore, key: str, metadata: dict[str, str],
               content_type: str) -> dict[str, str]:
        """Store the file as ``key``; the metadata it was stored with (a streamed upload
        keeps the times of its start unless the program set them itself)."""
        with self.lock:
            if self.failed is not None:
                self.abandon_stream()
                raise FsError(self.failed, f"{key}: not stored, a write to the local cache "
                              f"failed ({os.strerror(self.failed)})")
            self.settle()
            bs, old_remote = self.blocks.block_size, self.remote_size
            etag = None
            parts = None
            stream, self.stream = self.stream, None
            if stream is not None:
                streamed = stream.finish(key, self.size, metadata, content_type)
                if streamed is not None:
                    etag, metadata = streamed
            if etag is None and self.etag is not None and self.source_key == key:
                parts = splice_plan(self.size, self.remote_size, self.dirty, bs,
                                    store.part_size)
            if parts is not None:
                try:
                    etag = self._upload_spliced(store, key, parts, metadata, content_type)
                except NotSupported as exc:
                    _note_no_part_copy(exc)
                    parts = None
                except PreconditionFailed as exc:
                    # Replaced since it was opened. Holding every byte, the file is
                    # stored whole (the last close wins, as for any file); otherwise the
                    # bytes it lacks are gone with the version they were in.
                    if self.blocks.missing(0, self.remote_size):
                        raise FsError(errno.ESTALE, f"{key} was replaced in the store "
                                      "since it was opened, and only parts of it are "
                                      "here: not stored") from exc
                    parts = None
            if etag is None:
                self.ensure_all(store, key)
                if self.size > store.part_size:
                    etag = upload_spliced(store, key, self.fd,
                                          whole_parts(self.size, store.part_size), key, "",
                                          metadata, content_type, self.upload_pool)
                else:
                    etag = store.upload(key, self.fd, self.size, metadata, content_type)
            # What is here is that version's now; what was copied in the store is
            # fetched from it when needed.
            held = {b for b in range(self.blocks.blocks()) if b in self.blocks}
            self.blocks.reset(self.size)
            if parts is None:
                self.blocks.fill_all()
            else:
                for block in range(self.blocks.blocks()):
                    if block in held or block * bs >= old_remote:
                        self.blocks.add(block)
            self.etag = etag
            self.source_key = key
            self.dirty.clear()
            self.data_dirty = False
            self.meta_dirty = False
            return metadata

    def _upload_spliced(self, store: ObjectStore, key: str, parts: list[Part],
                        metadata: dict[str, str], content_type: str) -> str:
        """Only the parts with changes travel; of the others, only what those parts need
        of the stored version is fetched (at most the part each change is in)."""
        assert self.etag is not None
        for part in parts:
            if not part.copy:
                self.ensure(store, key, part.start, min(part.end, self.remote_size))
        return upload_spliced(store, key, self.fd, parts, key, self.etag, metadata,
                              content_type, self.upload_pool)

    def adopt_download(self, remote_size: int, etag: str, key: str) -> None:
        """The whole object was just written into the (new, empty) cache file."""
        with self.lock:
            self.source_key = key
            os.ftruncate(self.fd, remote_size)
            self.blocks.reset(remote_size)
            self.blocks.fill_all()
            self.size = remote_size
            self.etag = etag

    def reset(self, remote_size: int, etag: str | None) -> None:
        """The object changed in the store and we hold no local change: start over."""
        with self.lock:
            self.settle()
            self.dirty.clear()
            self._sparse_regions.clear()
            self.blocks.reset(remote_size)
            os.ftruncate(self.fd, 0)
            os.ftruncate(self.fd, remote_size)
            self.size = remote_size
            self.etag = etag
            self.generation += 1

    def close(self) -> None:
        self.settle()
        self.abandon_stream()
        self.blocks.close()
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def park(self, dest: Path) -> frozenset[int]:
        """Close, moving the file to ``dest`` (the object cache's); the blocks it holds."""
        with self.lock:
            self.settle()
            present = frozenset(b for b in range(self.blocks.blocks()) if b in self.blocks)
            os.rename(self.path, dest)  # first: its close is then no event in open_dir
            self.blocks.close()
            os.close(self.fd)
            return present

    def parkable(self) -> bool:
        """Nothing here but bytes of one stored version of the object."""
        return (not self.data_dirty and not self.meta_dirty and self.failed is None
                and self.etag is not None and not self.external_writers
                and self.size == self.remote_size)

    def keep_unsaved(self, unsaved_dir: Path, key: str) -> Path:
        """Keep the bytes of a file whose upload failed for good, where a person finds them."""
        unsaved_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = unsaved_dir / f"{stamp}-{key.replace('/', '%2F')[-200:]}"
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            self.copy_into(out)
        finally:
            os.close(out)
        return dest

    def copy_into(self, out: int) -> None:
        """Copy the file's bytes (those present: callers fill first) into ``out``."""
        offset = 0
        while offset < self.size:
            sent = os.copy_file_range(self.fd, out, self.size - offset, offset)
            if sent == 0:
                break
            offset += sent
