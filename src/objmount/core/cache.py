"""Objects' bytes kept after their last close, for the next open of the same version.

When the last handle of an object closes and its cache file holds nothing unstored, the
file is *parked* here instead of deleted: with the ETag its bytes came from and which
blocks it holds. The next open of that key takes it back if the store still has that
ETag (open() asks the store in any case: close-to-open), so reading a file again moves
no object bytes.

Bounded by ``capacity`` bytes of disk, counted over parked files and the cache files of
open objects together; parked files go least recently used first. Open files are never
evicted (their bytes may be all there is of a write), so open files alone may exceed the
bound; the log says so once per excess.

The index lives in memory only: a daemon that starts removes what an earlier one left,
so the cache directory is safe to delete whenever no daemon runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parked:
    path: Path
    etag: str
    size: int  # the object's size
    blocks: frozenset[int]  # blocks of it the file holds
    used: int  # bytes of disk the file takes


def disk_use(path: Path | int) -> int:
    """Bytes of disk a file takes (sparse files take only what was written)."""
    st = os.fstat(path) if isinstance(path, int) else os.stat(path)
    return st.st_blocks * 512


def dir_disk_use(directory: Path) -> tuple[int, int]:
    """(bytes of disk, files) of the files in ``directory``."""
    used = files = 0
    with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                used += entry.stat(follow_symlinks=False).st_blocks * 512
                files += 1
    return used, files


class ObjectCache:
    def __init__(self, directory: Path, capacity: int,
                 open_use: Callable[[], int] = lambda: 0) -> None:
        self.directory = directory
        self.capacity = capacity
        self._open_use = open_use  # disk the cache files of open objects take now
        self._lock = threading.Lock()
        self._parked: OrderedDict[tuple[str, str], Parked] = OrderedDict()  # LRU first
        self._parked_use = 0
        self._next = 0
        self._over = False
        self.hits = self.misses = self.evictions = 0
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in directory.iterdir():  # an earlier daemon's: no index describes them
            stale.unlink(missing_ok=True)

    def new_path(self) -> Path:
        with self._lock:
            self._next += 1
            if not self.directory.exists():  # deleted while mounted: made again
                self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.directory.mkdir(mode=0o700, exist_ok=True)
            return self.directory / f"obj-{self._next}"

    def park(self, bucket: str, key: str, path: Path, etag: str, size: int,
             blocks: frozenset[int]) -> None:
        """Keep the file at ``path`` (now the cache's) for the next open of this version."""
        if self.capacity <= 0 or not blocks:
            path.unlink(missing_ok=True)
            return
        entry = Parked(path, etag, size, blocks, disk_use(path))
        with self._lock:
            old = self._parked.pop((bucket, key), None)
            if old is not None:
                self._discard_locked(old)
            self._parked[(bucket, key)] = entry
            self._parked_use += entry.used
        self.trim()

    def take(self, bucket: str, key: str) -> Parked | None:
        """The parked file of ``key``, now the caller's (to use or to remove), if any."""
        with self._lock:
            entry = self._parked.pop((bucket, key), None)
            if entry is None:
                return None
            self._parked_use -= entry.used
            return entry

    def counted(self, reused: bool) -> None:
        with self._lock:
            if reused:
                self.hits += 1
            else:
                self.misses += 1

    def forget(self, bucket: str, key: str) -> None:
        """The object is gone or replaced: its parked bytes are worth nothing."""
        entry = self.take(bucket, key)
        if entry is not None:
            entry.path.unlink(missing_ok=True)

    def trim(self) -> None:
        """Evict parked files, oldest use first, until the bound holds (or none is left)."""
        open_use = self._open_use()
        with self._lock:
            while self._parked and self._parked_use + open_use > self.capacity:
                _, entry = self._parked.popitem(last=False)
                self._discard_locked(entry)
                self.evictions += 1
            over = open_use > self.capacity
            report, self._over = over and not self._over, over
        if report:
            log.warning("open files take %d MiB of cache, more than cache_size (%d MiB): "
                        "they are kept until closed", open_use >> 20, self.capacity >> 20)

    def _discard_locked(self, entry: Parked) -> None:
        """Remove a file just taken out of the index."""
        self._parked_use -= entry.used
        with contextlib.suppress(FileNotFoundError):
            entry.path.unlink()

    def clear(self) -> None:
        with self._lock:
            entries = list(self._parked.values())
            self._parked.clear()
            self._parked_use = 0
        for entry in entries:
            entry.path.unlink(missing_ok=True)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"capacity": self.capacity, "parked_bytes": self._parked_use,
                    "parked_files": len(self._parked), "hits": self.hits,
                    "misses": self.misses, "evictions": self.evictions}
