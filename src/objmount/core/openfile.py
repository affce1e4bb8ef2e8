"""The local cache file of one open object, shared by every handle open on it.

Reads fill the cache file block by block from the store; writes go to the cache file
and make it dirty; :meth:`OpenFile.upload` sends it whole (one PUT, or a multipart
upload for large files), so the store only ever holds a complete object.

State: ``remote_size``/``etag`` describe the object the clean blocks came from;
``present`` holds the indexes of blocks already copied; ``data_dirty`` says the local
bytes differ from the store; ``meta_dirty`` says only the attributes do.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from objmount.errors import FsError
from objmount.store.base import ObjectStore

log = logging.getLogger(__name__)


class OpenFile:
    def __init__(self, cache_dir: Path, block_size: int, remote_size: int,
                 etag: str | None) -> None:
        self.lock = threading.RLock()
        self.block_size = block_size
        fd, name = tempfile.mkstemp(prefix="open-", dir=cache_dir)
        self.fd = fd
        self.path = Path(name)
        self.size = remote_size
        self.remote_size = remote_size
        self.etag = etag
        self.present: set[int] = set()
        self.data_dirty = False
        self.meta_dirty = False
        # errno of a local write that failed (a full cache disk): the local bytes are not
        # what the program meant, so they must not replace the object.
        self.failed: int | None = None
        self.handles = 0
        os.ftruncate(fd, remote_size)

    # -- filling ----------------------------------------------------------------------
    def _missing(self, start: int, end: int) -> list[int]:
        end = min(end, self.remote_size)
        if end <= start:
            return []
        first, last = start // self.block_size, (end - 1) // self.block_size
        return [b for b in range(first, last + 1) if b not in self.present]

    def ensure(self, store: ObjectStore, key: str, start: int, end: int) -> None:
        """Make bytes [start, end) of the remote object present in the cache file."""
        for block in self._missing(start, end):
            lo = block * self.block_size
            hi = min(lo + self.block_size, self.remote_size)
            data = store.get_range(key, lo, hi, etag=self.etag)
            if len(data) != hi - lo:
                raise OSError(5, f"short read of {key}: {len(data)} of {hi - lo} bytes")
            os.pwrite(self.fd, data, lo)
            self.present.add(block)

    def ensure_all(self, store: ObjectStore, key: str) -> None:
        """Copy the whole remote object: needed before the first change of its bytes."""
        if not self._missing(0, self.remote_size):
            return
        if not self.present:
            store.download(key, self.path, etag=self.etag)
            blocks = (self.remote_size + self.block_size - 1) // self.block_size
            self.present.update(range(blocks))
        else:
            self.ensure(store, key, 0, self.remote_size)

    # -- local changes ----------------------------------------------------------------
    def read(self, store: ObjectStore, key: str, offset: int, size: int) -> bytes:
        with self.lock:
            end = min(offset + size, self.size)
            if end <= offset:
                return b""
            self.ensure(store, key, offset, end)
            return os.pread(self.fd, end - offset, offset)

    def write(self, store: ObjectStore, key: str, offset: int, data: bytes) -> int:
        with self.lock:
            self.ensure_all(store, key)
            try:
                written = os.pwrite(self.fd, data, offset)
            except OSError as exc:
                self.failed = exc.errno
                raise
            self.size = max(self.size, offset + written)
            self.data_dirty = True
            return written

    def truncate(self, store: ObjectStore, key: str, size: int) -> None:
        with self.lock:
            if size > 0:
                self.ensure_all(store, key)
            os.ftruncate(self.fd, size)
            if size == 0:
                self.failed = None  # nothing left of the bytes that could not be written
            self.size = size
            if size < self.remote_size:
                # Blocks cut off are local now: zeros beyond the new end, not remote bytes.
                self.remote_size = size
                self.present = {b for b in self.present if b * self.block_size < size}
            self.data_dirty = True

    # -- persistence ------------------------------------------------------------------
    def upload(self, store: ObjectStore, key: str, metadata: dict[str, str],
               content_type: str) -> None:
        with self.lock:
            if self.failed is not None:
                raise FsError(self.failed, f"{key}: not stored, a write to the local cache "
                              f"failed ({os.strerror(self.failed)})")
            self.ensure_all(store, key)
            etag = store.upload(key, self.path, metadata, content_type)
            self.etag = etag
            self.remote_size = self.size
            self.present = set(range((self.size + self.block_size - 1) // self.block_size))
            self.data_dirty = False
            self.meta_dirty = False

    def reset(self, remote_size: int, etag: str | None) -> None:
        """The object changed in the store and we hold no local change: start over."""
        with self.lock:
            os.ftruncate(self.fd, 0)
            os.ftruncate(self.fd, remote_size)
            self.size = self.remote_size = remote_size
            self.etag = etag
            self.present.clear()

    def close(self) -> None:
        os.close(self.fd)
        self.path.unlink(missing_ok=True)

    def keep_unsaved(self, unsaved_dir: Path, key: str) -> Path:
        """Keep the bytes of a file whose upload failed for good, where a person finds them."""
        unsaved_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        dest = unsaved_dir / f"{stamp}-{key.replace('/', '%2F')[-200:]}"
        shutil.copyfile(self.path, dest)
        return dest
