"""The cache files of open objects: opening (close-to-open revalidation, the bytes kept
after an earlier close, small objects in one GET), the last close (the upload, parking
what is clean, keeping what could not be stored), and the pools their block fetches
and upload parts run on. The engine's file operations go through :class:`OpenFiles`.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import shutil
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from objmount.core import metadata
from objmount.core.cache import ObjectCache, Parked, dir_disk_use
from objmount.core.inodes import Inode, Kind
from objmount.core.linknames import LinkedNames
from objmount.core.metadata import Attr
from objmount.core.namespace import Namespace
from objmount.core.openfile import OpenFile
from objmount.core.options import EngineOptions
from objmount.core.prefetch import ReadCounters
from objmount.core.upload import StreamingUpload
from objmount.errors import FsError
from objmount.store.base import ObjectStore

log = logging.getLogger(__name__)


def content_type(inode: Inode, name: str | None = None) -> str:
    """The Content-Type a file's object is stored with under ``name`` (default: its
    name now): guessed from the name, as on create; symlinks and special files: bytes."""
    if inode.kind is Kind.SYMLINK or not stat.S_ISREG(inode.attr.mode):
        return "application/octet-stream"
    guessed, _ = mimetypes.guess_type(inode.name if name is None else name, strict=False)
    return guessed or "application/octet-stream"


def keep_object_times(inode: Inode, of: OpenFile) -> None:
    """Programs read the object's mtime from the cache file (fstat): bytes fetched
    into it are not a change, so its times go back to the object's. Not while a
    program writes it: then its mtime is the program's."""
    of.hold_times(inode.attr.atime_ns, inode.attr.mtime_ns)


def _remove_dead_open_dirs(cache_dir: Path) -> None:
    """Cache files of open objects left by a daemon that was killed. Nothing in them was
    ever acknowledged by a successful close(), so they are removed, not kept."""
    for path in [*cache_dir.glob("open-*"), *cache_dir.glob("parked-*")]:
        pid = path.name.split("-", 1)[1]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        log.warning("removing %s, left by objmount process %s that is gone", path, pid)
        shutil.rmtree(path, ignore_errors=True)


class OpenFiles:
    def __init__(self, ns: Namespace, options: EngineOptions) -> None:
        self.ns = ns
        self.table = ns.table
        self.options = options
        self.links = LinkedNames(ns, content_type)
        options.cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # One directory per daemon: mounts may share a cache_dir, and the leftovers of a
        # killed daemon must be found and removed without touching a live one's files.
        _remove_dead_open_dirs(options.cache_dir)
        # Multipart uploads a killed daemon left unfinished: aborted, and ours recorded.
        ns.account.keep_upload_log(options.cache_dir)
        self.open_dir = options.cache_dir / f"open-{os.getpid()}"
        self.open_dir.mkdir(mode=0o700, exist_ok=True)
        self.unsaved_dir = options.cache_dir / "unsaved"
        # Block fetches of every open file (on demand and ahead of sequential readers),
        # and the parts of their uploads.
        self.fetch_pool = ThreadPoolExecutor(options.read_concurrency,
                                             thread_name_prefix="objmount-read")
        self.upload_pool = ThreadPoolExecutor(options.upload_concurrency,
                                              thread_name_prefix="objmount-part")
        self._read_ahead_blocks = options.read_ahead // options.block_size
        self.read_counters = ReadCounters()
        self.cache = ObjectCache(options.cache_dir / f"parked-{os.getpid()}",
                                 options.cache_size, self._disk_use)
        self._open_use = (0.0, 0)  # (when measured, bytes)

    def revalidate(self, inode: Inode) -> tuple[int, str]:
        """(size, etag) of the object now: open() asks the store, whatever is cached."""
        info = self.ns.store(inode).head(inode.key)
        _kind, attr = self.ns.object_attr(inode.ino, info)
        self.table.set_attr(inode, attr, (info.etag, info.mtime_ns))
        return info.size, info.etag

    def _new_open_file(self, size: int, etag: str | None, key: str | None = None,
                       reuse: Parked | None = None) -> OpenFile:
        def make(parked: Parked | None) -> OpenFile:
            return OpenFile(self.open_dir, self.options.block_size, size, etag,
                            shared_map=self.options.shared_block_maps,
                            fetch_pool=self.fetch_pool,
                            read_ahead_blocks=self._read_ahead_blocks,
                            fetch_run_blocks=max(1, self.options.fetch_size
                                                 // self.options.block_size),
                            read_counters=self.read_counters, reuse=parked, key=key,
                            upload_pool=self.upload_pool)
        try:
            return make(reuse)
        except FileNotFoundError:
            if self.open_dir.exists() and reuse is None:
                raise
        if not self.open_dir.exists():
            # The cache directory was deleted while mounted: made again. Files open then
            # keep their descriptors; kept copies of closed ones are gone with it.
            log.warning("the cache directory %s was deleted: making it again",
                        self.open_dir)
            self.open_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.open_dir.mkdir(mode=0o700, exist_ok=True)
        return make(None)

    def _disk_use(self) -> int:
        """Disk the cache files of open objects take, measured at most twice a second
        (every last close asks)."""
        when, used = self._open_use
        now = time.monotonic()
        if now - when > 0.5:
            used, _files = dir_disk_use(self.open_dir)
            self._open_use = (now, used)
        return used

    def _open_stored(self, inode: Inode, want_bytes: bool) -> OpenFile:
        """Open what the store holds now: reusing the bytes parked after an earlier close
        when the store still has that version; else, for a small object, fetching it
        whole with the request that revalidates it."""
        bucket = self.ns.store(inode).bucket
        parked = self.cache.take(bucket, inode.key)
        if parked is None and want_bytes:
            of = self._open_small(inode)
            if of is not None:
                self.cache.counted(reused=False)
                return of
        size, etag = self.revalidate(inode)
        if parked is not None:
            if want_bytes and (etag, size) == (parked.etag, parked.size):
                self.cache.counted(reused=True)
                return self._new_open_file(size, etag, inode.key, reuse=parked)
            parked.path.unlink(missing_ok=True)
        if want_bytes:
            self.cache.counted(reused=False)
        return self._new_open_file(size, etag, inode.key)

    def _open_small(self, inode: Inode) -> OpenFile | None:
        """A small object fetched whole by the one GET that also revalidates it (in
        place of a HEAD, then a GET); None if it is not small as far as we know."""
        if inode.attr.size > self.options.whole_file_size:
            return None
        of = self._new_open_file(0, None)
        try:
            info = self.ns.store(inode).download(inode.key, of.fd)
        except BaseException:
            of.close()
            raise
        of.adopt_download(info.size, info.etag, inode.key)
        _kind, attr = self.ns.object_attr(inode.ino, info)
        self.table.set_attr(inode, attr, (info.etag, info.mtime_ns))
        return of

    def open(self, inode: Inode, *, new: bool = False,
                   want_bytes: bool = True) -> OpenFile:
        """The shared cache file of ``inode``; opening revalidates (close-to-open).
        ``want_bytes``: False when the opener truncates, so a small object is not
        fetched for nothing."""
        of = inode.open_file
        if of is None:
            if new:
                of = self._new_open_file(0, None)
                of.data_dirty = True
            else:
                of = self._open_stored(inode, want_bytes)
            inode.open_file = of
        elif (not new and not of.data_dirty and not of.meta_dirty
              and not of.external_writers):
            size, etag = self.revalidate(inode)
            if etag != of.etag or size != of.remote_size:
                of.reset(size, etag)
        of.handles += 1
        return of

    def close(self, inode: Inode, of: OpenFile) -> None:
        of.handles -= 1
        if of.handles > 0:
            return
        if of.data_dirty or of.meta_dirty:
            try:
                self.upload(inode, of)
            except FsError as exc:
                log.error("%s", exc)  # a failed local write: the bytes are not worth keeping
            except Exception as exc:
                if not inode.unlinked:
                    self.keep_unsaved(inode, of, exc)
        self._park_or_close(inode, of)
        with self.table.lock:
            inode.open_file = None
            # The name may be another file's by now (unlinked, then created again).
            if inode.parent is not None and self.table.child(inode.parent,
                                                             inode.name) is inode:
                inode.parent.pending_children.discard(inode.name)
            self.table.set_attr(inode, inode.attr.with_(size=of.size))
            self.table.drop_if_unused(inode)

    def _park_or_close(self, inode: Inode, of: OpenFile) -> None:
        """After the last close: keep the bytes of a stored version for the next open."""
        if inode.unlinked or inode.kind is not Kind.FILE or not of.parkable():
            of.close()
            return
        assert of.etag is not None
        dest = self.cache.new_path()
        try:
            blocks = of.park(dest)
        except OSError as exc:
            log.warning("could not keep the cached bytes of %s: %s", inode.key, exc)
            with contextlib.suppress(OSError):
                of.close()
            dest.unlink(missing_ok=True)
            return
        self.cache.park(self.ns.store(inode).bucket, inode.key, dest, of.etag,
                        of.remote_size, blocks)

    def keep_unsaved(self, inode: Inode, of: OpenFile, exc: Exception) -> None:
        """The last chance for bytes the store refused: a copy a person can find."""
        try:
            kept = of.keep_unsaved(self.unsaved_dir, inode.key)
        except OSError as copy_exc:
            log.error("could not store %s (%s) nor keep its bytes locally (%s): lost",
                      inode.key, exc, copy_exc)
        else:
            log.error("could not store %s (%s); its bytes are kept in %s", inode.key, exc,
                      kept)

    def upload(self, inode: Inode, of: OpenFile) -> None:
        if inode.unlinked:
            of.data_dirty = of.meta_dirty = False
            return
        store = self.ns.store(inode)
        with of.lock:
            if of.meta_dirty and not of.data_dirty and of.etag is not None:
                self.store_object_attr(inode, inode.attr)
                of.meta_dirty = False
                return
            self.links.check_others(inode)
            attr = inode.attr.with_(size=of.size)
            meant = metadata.encode(attr)
            stored = of.upload(store, inode.key, meant, content_type(inode))
            inode.page_etag = of.etag  # the kernel's pages hold what was written
            if stored is not meant:  # a streamed upload kept the times of its start
                attr = metadata.with_times(attr, stored)
            self.table.set_attr(inode, attr, (of.etag or "", 0))
            self.links.copy_to_others(inode, attr)
            if inode.parent is not None:
                inode.parent.pending_children.discard(inode.name)

    def store_object_attr(self, inode: Inode, attr: Attr) -> None:
        store = self.ns.store(inode)
        self.links.check_others(inode)
        attr = attr.with_(link_id=inode.attr.link_id, links=inode.attr.links,
                          nlink=inode.attr.nlink)
        key = inode.key
        # CopyObject onto itself with new metadata: the bytes are not moved through us.
        etag = store.copy(key, key, metadata.encode(attr), content_type(inode))
        self.table.set_attr(inode, attr, (etag, 0))
        self.links.copy_to_others(inode, attr)

    def start_stream(self, inode: Inode, of: OpenFile, store: ObjectStore) -> None:
        """The file's first write, at its start: its parts may go out as it is written."""
        of.stream = StreamingUpload(
            store, inode.key, of.fd, store.part_size, self.upload_pool,
            lambda: (metadata.encode(inode.attr.with_(size=of.size)), content_type(inode)))

    def shutdown(self) -> None:
        """Store what is still dirty (unmount with files open) and stop the workers."""
        for inode in self.table.all():
            of = inode.open_file
            if of is not None and (of.data_dirty or of.meta_dirty):
                try:
                    self.upload(inode, of)
                except Exception as exc:
                    self.keep_unsaved(inode, of, exc)
            if of is not None:
                of.settle()
        self.fetch_pool.shutdown(wait=True)
        self.upload_pool.shutdown(wait=True)
        self.cache.clear()
        for directory in (self.cache.directory, self.open_dir):
            with contextlib.suppress(OSError):  # files still open stay, for the next start
                directory.rmdir()
