"""The engine: FUSE-shaped file-system operations over object stores, with plain results.

Frontends (FUSE now, the interception daemon next) translate to and from these calls;
nothing here knows about FUSE. Operations are synchronous and thread-safe: frontends run
them in worker threads. Store I/O happens outside the inode-table lock; operations that
change the namespace are serialised by ``_ns_lock`` so that their read-check-write steps
cannot interleave.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass, field

from objmount.core import acls, metadata, xattrs
from objmount.core.attributes import AttributeWriter
from objmount.core.hardlinks import HardLinks
from objmount.core.inodes import Inode, Kind, Virtual
from objmount.core.metadata import DIR_CONTENT_TYPE, Attr, Xattrs
from objmount.core.names import dir_prefix, join_key, valid_name
from objmount.core.namespace import DirEntry, MountRoot, Namespace
from objmount.core.openfile import OpenFile
from objmount.core.openfiles import OpenFiles, content_type, keep_object_times
from objmount.core.options import EngineOptions
from objmount.core.rename import Renamer
from objmount.errors import FsError, NoSuchKey, StoreError
from objmount.store.base import Account

log = logging.getLogger(__name__)

# Writes at most this large may go to the cache file on the front end's own thread.
_NOWAIT_WRITE = 128 * 1024
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
__all__ = ["RENAME_EXCHANGE", "RENAME_NOREPLACE", "DirEntry", "Engine", "EngineOptions",
           "MountRoot", "StatFs"]


@dataclass(frozen=True)
class StatFs:
    block_size: int = 4096
    blocks: int = 1 << 40  # object stores have no fixed size: report 4 PiB free
    blocks_free: int = 1 << 40
    files: int = 1 << 32
    files_free: int = 1 << 32
    name_max: int = 255


@dataclass
class _Handle:
    inode: Inode
    flags: int
    writable: bool
    unchanged: bool = False  # the same version as at the inode's last open
    # Of the open file when this was opened: another open that found the object
    # replaced starts it over with the new version, and this descriptor must not get a
    # mixture of the two (NFS says ESTALE). Checked under the open file's lock.
    generation: int = 0


@dataclass
class _DirHandle:
    inode: Inode
    entries: list[DirEntry] = field(default_factory=list)
    listed: bool = False


class Engine:
    def __init__(self, account: Account, root: MountRoot, options: EngineOptions) -> None:
        self.account = account
        self.root_spec = root
        self.options = options
        self.ns = Namespace(account, root, options)
        self.table = self.ns.table
        self._ns_lock = threading.RLock()
        self._handles: dict[int, _Handle] = {}
        self._dir_handles: dict[int, _DirHandle] = {}
        self._next_fh = 1
        self._fh_lock = threading.Lock()
        self.files = OpenFiles(self.ns, options)
        self.renamer = Renamer(self.ns, self.files)
        self.attributes = AttributeWriter(self.ns, self.files, self._ns_lock, self.getattr)
        self.links = HardLinks(self.ns, self.files, self.getattr)
        # Shared with the front ends and tests, which report and inspect them.
        self.cache = self.files.cache
        self.open_dir = self.files.open_dir
        self.unsaved_dir = self.files.unsaved_dir
        self.read_counters = self.files.read_counters

    # ------------------------------------------------------------------ helpers ----
    def check(self) -> None:
        """Fail now, with a clear message, if the configured root cannot be used."""
        if self.root_spec.bucket is None:
            self.account.list_buckets()
        else:
            self.account.bucket(self.root_spec.bucket).check()

    def _writable(self) -> None:
        if self.options.read_only:
            raise FsError(errno.EROFS)

    def _in_bucket(self, inode: Inode) -> None:
        """Changes are only possible inside a bucket, not in the virtual directories."""
        if inode.virtual is not Virtual.NONE:
            raise FsError(errno.EPERM, "the bucket list cannot be changed through the mount")

    # ------------------------------------------------------------------ resolving --
    def _child(self, parent_ino: int, raw: bytes) -> tuple[Inode, str, Inode]:
        parent = self.table.get(parent_ino)
        name = valid_name(raw)
        return parent, name, self.ns.lookup_inode(parent, name)

    # ------------------------------------------------------------------ attributes -
    def lookup(self, parent_ino: int, raw: bytes) -> Attr:
        """The entry's attributes, fetched if a listing left them provisional."""
        attr, known = self.lookup_entry(parent_ino, raw)
        return attr if known else self.getattr(attr.ino)

    def lookup_entry(self, parent_ino: int, raw: bytes) -> tuple[Attr, bool]:
        """The entry, and whether its attributes are known: a front end that can say
        they are not (FUSE: attr_timeout 0) spares the HEAD a program may not need."""
        parent = self.table.get(parent_ino)
        if raw == b".":
            inode = parent
        elif raw == b"..":
            inode = parent.parent or parent
        else:
            inode = self.ns.lookup_inode(parent, valid_name(raw))
        return self._entry(inode)

    def lookup_nowait(self, parent_ino: int, raw: bytes) -> tuple[Attr, bool] | None:
        """:meth:`lookup_entry` if the caches answer it (FsError ENOENT for a name known
        to be absent); None when the store must be asked (then call lookup_entry)."""
        parent = self.table.find(parent_ino)
        if parent is None or raw in (b".", b".."):
            return None
        try:
            name = valid_name(raw)
        except FsError:
            return None  # lookup_entry says why
        inode = self.ns.cached_inode(parent, name)
        return None if inode is None else self._entry(inode)

    def _entry(self, inode: Inode) -> tuple[Attr, bool]:
        """A lookup's answer: the kernel (or the caller) now holds one more reference."""
        self.table.remember(inode)
        known = not self.ns.provisional(inode)
        if known:
            self.ns.attrs.used(inode)
        return self.ns.current_attr(inode), known

    def getattr_nowait(self, ino: int) -> Attr | None:
        """:meth:`getattr` if no request is needed; else None."""
        inode = self.table.find(ino)
        if inode is None or self._needs_head(inode):
            return None
        self.ns.attrs.used(inode)
        return self.ns.current_attr(inode)

    def _needs_head(self, inode: Inode) -> bool:
        # The root of a mount (no parent) has no object to ask.
        return inode.parent is not None and self.ns.needs_head(inode)

    def forget(self, ino: int, count: int) -> None:
        self.table.forget(ino, count)

    def remember(self, ino: int) -> None:
        """The frontend handed this inode to the kernel (a readdirplus entry)."""
        inode = self.table.find(ino)
        if inode is not None:
            self.table.remember(inode)

    def getattr(self, ino: int) -> Attr:
        inode = self.table.get(ino)
        if not self._needs_head(inode):
            self.ns.attrs.used(inode)
        else:
            try:
                self.ns.fetch_attr(inode)
            except NoSuchKey:
                # Deleted by someone else: keep answering for the open-by-name case, the
                # next lookup will find it gone.
                return inode.attr
        return self.ns.current_attr(inode)

    def setattr(self, ino: int, *, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, size: int | None = None,
                atime_ns: int | None = None, mtime_ns: int | None = None,
                fh: int | None = None) -> Attr:
        inode = self._changeable(ino)
        return self.attributes.set(inode, mode=mode, uid=uid, gid=gid, size=size,
                                   atime_ns=atime_ns, mtime_ns=mtime_ns, by_path=fh is None)

    def getxattr(self, ino: int, name: bytes) -> bytes:
        acl = self.options.posix_acls
        if xattrs.stored_name(name, acl) is None:
            raise FsError(errno.ENODATA)  # a namespace not stored: no request
        return xattrs.value_of(self.getattr(ino), name, acl)

    def listxattr(self, ino: int) -> list[bytes]:
        return xattrs.names_of(self.getattr(ino), self.options.posix_acls)

    def setxattr(self, ino: int, name: bytes, value: bytes) -> None:
        text = name.decode("utf-8", "surrogateescape")
        if self.options.posix_acls and text in acls.NAMES:
            change = functools.partial(acls.set_on, name=text, value=value)
        else:
            change = functools.partial(xattrs.with_value, raw=name, value=value)
        self.attributes.change(self._changeable(ino), change)

    def removexattr(self, ino: int, name: bytes) -> None:
        self.attributes.change(self._changeable(ino), functools.partial(
            xattrs.without, raw=name, acls=self.options.posix_acls))

    def mode_for_new(self, parent_ino: int, mode: int, umask: int, is_dir: bool
                     ) -> tuple[int, Xattrs]:
        """(mode, ACL xattrs) of an entry about to be made in a directory: with ACLs on,
        its default ACL's if it has one; else ``mode`` less the umask."""
        if not self.options.posix_acls:
            return mode & ~umask, ()
        return acls.for_new_entry(self.getattr(parent_ino), mode, umask, is_dir)

    def _changeable(self, ino: int) -> Inode:
        inode = self.table.get(ino)
        self._writable()
        self._in_bucket(inode)
        return inode

    def readlink(self, ino: int) -> bytes:
        inode = self.table.get(ino)
        if inode.kind is not Kind.SYMLINK:
            raise FsError(errno.EINVAL)
        if inode.symlink_target is None or not self.table.fresh(inode):
            target = self.ns.store(inode).get(inode.key)
            inode.symlink_target = target.decode("utf-8", "surrogateescape")
        return inode.symlink_target.encode("utf-8", "surrogateescape")

    def statfs(self) -> StatFs:
        return StatFs()

    # ------------------------------------------------------------------ directories -
    def opendir(self, ino: int) -> int:
        inode = self.table.get(ino)
        if inode.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        fh = self._allocate_fh()
        self._dir_handles[fh] = _DirHandle(inode)
        return fh

    def readdir(self, fh: int, offset: int) -> list[DirEntry]:
        """Entries after cookie ``offset``. The listing is taken once per open (and again
        after a rewind), so cookies stay stable while entries are removed."""
        handle = self._dir_handles[fh]
        if not handle.listed or offset == 0:
            handle.entries = self.ns.list_dir(handle.inode)
            handle.listed = True
        return [e for e in handle.entries if e.offset > offset]

    def releasedir(self, fh: int) -> None:
        self._dir_handles.pop(fh, None)

    def mkdir(self, parent_ino: int, raw: bytes, mode: int, uid: int, gid: int,
              acl_xattrs: Xattrs = ()) -> Attr:
        """``acl_xattrs``: ACLs it inherits (mode_for_new)."""
        parent, name = self._new_name(parent_ino, raw)
        with self._ns_lock:
            self._must_not_exist(parent, name)
            key = join_key(parent.key, name, directory=True)
            now = time.time_ns()
            gid, mode = self._group_of_new(parent, gid, mode, is_dir=True)
            attr = Attr(0, stat.S_IFDIR | stat.S_IMODE(mode), uid, gid, 0, now, now, now, 2,
                        xattrs=acl_xattrs)
            as_object = self.ns.dirs.write(self.ns.store(parent), key, attr)
            inode = Inode(self.table.new_ino(), Kind.DIR, attr, parent, name,
                          has_marker=not as_object, dir_object=as_object)
            inode.attr = attr.with_(ino=inode.ino)
            self.table.link(parent, name, inode)
            self.table.set_attr(inode, inode.attr)
            self.table.remember(inode)
            self.ns.made_here(inode)
            self.table.entries_changed_here(parent, now)
            return inode.attr

    @staticmethod
    def _group_of_new(parent: Inode, gid: int, mode: int, *, is_dir: bool
                      ) -> tuple[int, int]:
        """(group, mode) of an entry made in ``parent`` by a caller of group ``gid``: a
        directory with the set-group-ID bit gives it its own group, and a directory the
        bit too (Linux, as BSD does; shared project directories rely on it)."""
        if not parent.attr.mode & stat.S_ISGID:
            return gid, mode
        return parent.attr.gid, mode | stat.S_ISGID if is_dir else mode

    def _new_name(self, parent_ino: int, raw: bytes) -> tuple[Inode, str]:
        """The directory and the name a new entry is to be created as, checked."""
        self._writable()
        parent = self.table.get(parent_ino)
        self._in_bucket(parent)
        return parent, valid_name(raw)

    def _must_not_exist(self, parent: Inode, name: str) -> None:
        try:
            self.ns.lookup_inode(parent, name)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        raise FsError(errno.EEXIST)

    def rmdir(self, parent_ino: int, raw: bytes) -> None:
        self._writable()
        with self._ns_lock:
            parent, name, inode = self._child(parent_ino, raw)
            self._in_bucket(parent)
            if inode.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR)
            if inode.root_key is not None:
                raise FsError(errno.EBUSY)
            self.renamer.ensure_empty(inode)
            store = self.ns.store(inode)
            if inode.has_marker or not inode.dir_object:
                store.delete(dir_prefix(inode.key))
            if inode.dir_object:
                store.delete(inode.key)
            self.table.unlink(parent, name)
            self.table.entries_changed_here(parent, time.time_ns())
            self._keep_parent(parent)

    def _keep_parent(self, parent: Inode) -> None:
        """A directory that only existed as a prefix vanishes with its last key:
        give it a marker so that removing a file never removes its directory."""
        if (parent.has_marker or parent.dir_object or parent.root_key is not None
                or self.ns.listed_nonempty(parent)):
            return
        store = self.ns.store(parent)
        prefix = dir_prefix(parent.key)
        if not store.has_keys_under(prefix):
            store.put(prefix, b"", metadata.encode(parent.attr), DIR_CONTENT_TYPE)
            parent.has_marker = True

    # ------------------------------------------------------------------ files ------
    def _allocate_fh(self) -> int:
        with self._fh_lock:
            fh = self._next_fh
            self._next_fh += 1
            return fh

    def _new_fh(self, handle: _Handle) -> int:
        fh = self._allocate_fh()
        self._handles[fh] = handle
        return fh

    def open(self, ino: int, flags: int) -> int:
        inode = self.table.get(ino)
        if inode.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        if stat.S_IFMT(inode.attr.mode) in metadata.SPECIAL_TYPES:
            # The kernel serves these on a mount; only interception gets here.
            raise FsError(errno.ENXIO, "a FIFO, socket or device has no bytes to open")
        accmode = flags & os.O_ACCMODE
        writable = accmode in (os.O_WRONLY, os.O_RDWR)
        if writable or flags & os.O_TRUNC:
            self._writable()
        with self._ns_lock:
            of = self.files.open(inode, want_bytes=not (flags & os.O_TRUNC and writable))
            unchanged = of.etag is not None and of.etag == inode.page_etag
            inode.page_etag = of.etag
        handle = _Handle(inode, flags, writable, unchanged, of.generation)
        fh = self._new_fh(handle)
        if flags & os.O_TRUNC and writable:
            now = time.time_ns()
            with of.lock:
                of.truncate(self.ns.store(inode), inode.key, 0)
                inode.attr = inode.attr.with_(size=0, mtime_ns=now, ctime_ns=now)
        return fh

    def create(self, parent_ino: int, raw: bytes, mode: int, flags: int, uid: int,
               gid: int, acl_xattrs: Xattrs = ()) -> tuple[int, Attr]:
        parent, name = self._new_name(parent_ino, raw)
        with self._ns_lock:
            try:
                existing = self.ns.lookup_inode(parent, name)
            except FsError as exc:
                if exc.errno != errno.ENOENT:
                    raise
            else:
                if flags & os.O_EXCL:
                    raise FsError(errno.EEXIST)
                fh = self.open(existing.ino, flags)
                self.table.remember(existing)
                return fh, self.ns.current_attr(existing)
            return self._create_new(parent, name, mode, flags, uid, gid, acl_xattrs)

    def create_nowait(self, parent_ino: int, raw: bytes, mode: int, flags: int, uid: int,
                      gid: int, acl_xattrs: Xattrs = ()) -> tuple[int, Attr] | None:
        """:meth:`create` if it needs no request (the name is known to be absent) and no
        wait for a lock; else None."""
        parent = self.table.find(parent_ino)
        if (parent is None or self.options.read_only or parent.virtual is not Virtual.NONE
                or not self._ns_lock.acquire(blocking=False)):
            return None
        try:
            try:
                name = valid_name(raw)
                self.ns.cached_inode(parent, name)
            except FsError as exc:
                if exc.errno == errno.ENOENT:
                    return self._create_new(parent, name, mode, flags, uid, gid,
                                            acl_xattrs)
            return None  # it exists, or only the store knows
        finally:
            self._ns_lock.release()

    def _create_new(self, parent: Inode, name: str, mode: int, flags: int, uid: int,
                    gid: int, acl_xattrs: Xattrs = ()) -> tuple[int, Attr]:
        """Under _ns_lock: the new, empty file ``name`` in ``parent``, open."""
        join_key(parent.key, name)  # refuses names whose key would be too long
        now = time.time_ns()
        ino = self.table.new_ino()
        gid, mode = self._group_of_new(parent, gid, mode, is_dir=False)
        attr = Attr(ino, stat.S_IFREG | stat.S_IMODE(mode), uid, gid, 0, now, now, now,
                    xattrs=acl_xattrs)
        inode = Inode(ino, Kind.FILE, attr, parent, name)
        self.table.link(parent, name, inode)
        self.table.set_attr(inode, attr)
        parent.pending_children.add(name)
        self.table.entries_changed_here(parent, now)
        self.files.open(inode, new=True)
        self.table.remember(inode)
        fh = self._new_fh(_Handle(inode, flags, True))
        return fh, self.ns.current_attr(inode)

    def unchanged_since_last_open(self, fh: int) -> bool:
        """The object has the version it had at the previous open of its inode here (or
        that our own upload of what was written made): a kernel page cache of its bytes
        is still right (FUSE's keep_cache)."""
        return self._handles[fh].unchanged

    def read(self, fh: int, offset: int, size: int) -> bytes:
        inode, of = self.open_file(fh)
        return of.read(self.ns.store(inode), inode.key, offset, size,
                       self._handles[fh].generation)

    def read_nowait(self, fh: int, offset: int, size: int) -> bytes | None:
        """:meth:`read` when it can answer without waiting (cached bytes); else None."""
        handle = self._handles.get(fh)
        of = handle.inode.open_file if handle is not None else None
        if handle is None or of is None:
            return None
        return of.read_present(self.ns.store(handle.inode), handle.inode.key, offset, size,
                               handle.generation)

    def write(self, fh: int, offset: int, data: bytes) -> int:
        handle = self._handles[fh]
        if not handle.writable:
            raise FsError(errno.EBADF)
        of = handle.inode.open_file
        assert of is not None, "an open handle has an open file"
        with of.lock:
            of.current(handle.generation)
            return self._write(handle, of, offset, data)

    def write_nowait(self, fh: int, offset: int, data: bytes) -> int | None:
        """:meth:`write` of a small piece when it can go to the cache file at once (no
        stored bytes to fetch around it, no lock to wait for); else None."""
        handle = self._handles.get(fh)
        of = handle.inode.open_file if handle is not None else None
        if (handle is None or of is None or not handle.writable or len(data) > _NOWAIT_WRITE
                or not of.lock.acquire(blocking=False)):
            return None
        try:
            if of.remote_size or of.fetching() or of.generation != handle.generation:
                return None
            return self._write(handle, of, offset, data)
        finally:
            of.lock.release()

    def _write(self, handle: _Handle, of: OpenFile, offset: int, data: bytes) -> int:
        inode = handle.inode
        if handle.flags & os.O_APPEND:
            offset = of.size
        store = self.ns.store(inode)
        if of.can_stream(offset) and len(data) > 0:
            self.files.start_stream(inode, of, store)
        written = of.write(store, inode.key, offset, data)
        now = time.time_ns()
        inode.attr = inode.attr.with_(mtime_ns=now, ctime_ns=now)
        return written

    def flush_nowait(self, fh: int) -> bool:
        """True when :meth:`flush` has nothing to do (nothing to upload)."""
        handle = self._handles.get(fh)
        of = handle.inode.open_file if handle is not None else None
        return handle is not None and (of is None or not handle.writable
                                       or not (of.data_dirty or of.meta_dirty))

    def flush(self, fh: int, *, sync: bool = False) -> None:
        """close() of a descriptor open for writing, or fsync() (``sync``) of any: the
        data must be in the store when this returns without error. The close of a
        read-only descriptor stores nothing (as NFS): it would store another
        descriptor's writes half done; the last close of the file stores them."""
        handle = self._handles[fh]
        of = handle.inode.open_file
        if of is not None and (handle.writable or sync) and (of.data_dirty or of.meta_dirty):
            try:
                self.files.upload(handle.inode, of)
            except (StoreError, OSError) as exc:
                log.error("upload of %s failed: %s", handle.inode.key, exc)
                raise

    def fsync(self, fh: int) -> None:
        self.flush(fh, sync=True)

    # -- programs that use the cache file itself (interception) -------------------------
    def open_file(self, fh: int) -> tuple[Inode, OpenFile]:
        handle = self._handles[fh]
        of = handle.inode.open_file
        assert of is not None, "an open handle has an open file"
        return handle.inode, of

    def fill(self, fh: int, start: int, end: int) -> None:
        """Make bytes [start, end) of the object present in its cache file."""
        inode, of = self.open_file(fh)
        with of.lock:
            of.current(self._handles[fh].generation)
            of.ensure(self.ns.store(inode), inode.key, start, end, predict=True)
            keep_object_times(inode, of)

    def fill_all(self, fh: int) -> None:
        inode, of = self.open_file(fh)
        with of.lock:
            of.current(self._handles[fh].generation)
            of.ensure_all(self.ns.store(inode), inode.key)
            keep_object_times(inode, of)

    def add_external_writer(self, fh: int) -> None:
        """A program will write the cache file directly: make it whole first, and keep
        it from being reset to another version while the program holds it."""
        inode, of = self.open_file(fh)
        with of.lock:
            of.ensure_all(self.ns.store(inode), inode.key)
            of.external_writers += 1

    def remove_external_writer(self, fh: int) -> None:
        _inode, of = self.open_file(fh)
        with of.lock:
            of.external_writers = max(0, of.external_writers - 1)

    def note_failed_write(self, fh: int, err: int) -> None:
        """A program's own write to the cache file failed: it is not the file the program
        meant, so it is never stored (as when one of our own writes fails)."""
        _inode, of = self.open_file(fh)
        with of.lock:
            of.failed = err

    def adopt_external_writes(self, fh: int) -> None:
        """The cache file was written by a program: it is the file's new content."""
        inode, of = self.open_file(fh)
        with of.lock:
            st = of.adopt_external_writes()
            inode.attr = inode.attr.with_(mtime_ns=st.st_mtime_ns,
                                          ctime_ns=max(st.st_mtime_ns, inode.attr.ctime_ns))

    def release(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        of = handle.inode.open_file
        if of is not None:
            with self._ns_lock:
                self.files.close(handle.inode, of)

    def release_nowait(self, fh: int) -> bool:
        """:meth:`release` if it uploads nothing and waits for no lock; False: not done."""
        handle = self._handles.get(fh)
        if handle is None:
            return False
        of = handle.inode.open_file
        if of is not None and (of.data_dirty or of.meta_dirty) and of.handles <= 1:
            return False
        if not self._ns_lock.acquire(blocking=False):
            return False
        try:
            self.release(fh)
        finally:
            self._ns_lock.release()
        return True

    # ------------------------------------------------------------------ names ------
    def unlink(self, parent_ino: int, raw: bytes) -> None:
        self._writable()
        with self._ns_lock:
            parent, name, inode = self._child(parent_ino, raw)
            self._in_bucket(parent)
            if inode.kind is Kind.DIR:
                raise FsError(errno.EISDIR)
            if self.links.linked(inode):
                self.links.unlink(inode, parent, name)
                self.table.entries_changed_here(parent, time.time_ns())
                self._keep_parent(parent)
                return
            if name not in parent.pending_children or inode.open_file is None:
                store = self.ns.store(inode)
                store.delete(inode.key)
                self.cache.forget(store.bucket, inode.key)
            parent.pending_children.discard(name)
            self.table.unlink(parent, name)
            now = time.time_ns()
            self.table.entries_changed_here(parent, now)
            if inode.open_file is not None:
                inode.attr = inode.attr.with_(ctime_ns=now)  # its link count changed
            self._keep_parent(parent)

    def symlink(self, parent_ino: int, raw: bytes, target: bytes, uid: int, gid: int) -> Attr:
        return self._put_new(parent_ino, raw, Kind.SYMLINK, stat.S_IFLNK | 0o777, uid, gid,
                             body=target)

    def mknod(self, parent_ino: int, raw: bytes, mode: int, rdev: int, uid: int,
              gid: int, acl_xattrs: Xattrs = ()) -> Attr:
        """A regular file, FIFO, socket or device: an empty object whose mode says the
        type (and ``x-amz-meta-rdev`` the device), as s3fs stores them."""
        kind = stat.S_IFMT(mode) or stat.S_IFREG  # no type: a regular file (Linux)
        if kind == stat.S_IFDIR:
            raise FsError(errno.EPERM)
        if kind not in metadata.SPECIAL_TYPES and kind != stat.S_IFREG:
            raise FsError(errno.EINVAL)
        device = rdev if kind in (stat.S_IFCHR, stat.S_IFBLK) else 0
        return self._put_new(parent_ino, raw, Kind.FILE, kind | stat.S_IMODE(mode), uid, gid,
                             rdev=device, acl_xattrs=acl_xattrs)

    def _put_new(self, parent_ino: int, raw: bytes, kind: Kind, mode: int, uid: int,
                 gid: int, *, body: bytes = b"", rdev: int = 0,
                 acl_xattrs: Xattrs = ()) -> Attr:
        """A new entry stored at once by one PUT (not through an open file)."""
        parent, name = self._new_name(parent_ino, raw)
        with self._ns_lock:
            self._must_not_exist(parent, name)
            key = join_key(parent.key, name)
            now = time.time_ns()
            ino = self.table.new_ino()
            gid, mode = self._group_of_new(parent, gid, mode, is_dir=False)
            attr = Attr(ino, mode, uid, gid, len(body), now, now, now, rdev=rdev,
                        xattrs=acl_xattrs)
            store = self.ns.store(parent)
            inode = Inode(ino, kind, attr, parent, name, symlink_target=(
                body.decode("utf-8", "surrogateescape") if kind is Kind.SYMLINK else None))
            etag = store.put(key, body, metadata.encode(attr), content_type(inode))
            self.table.link(parent, name, inode)
            self.table.set_attr(inode, attr, (etag, 0))
            self.table.remember(inode)
            self.table.entries_changed_here(parent, now)
            return attr

    def link(self, ino: int, new_parent_ino: int, raw: bytes) -> Attr:
        """Another name for a file (not a directory), in the same bucket."""
        parent, name = self._new_name(new_parent_ino, raw)
        with self._ns_lock:
            inode = self.table.get(ino)
            if inode.kind is Kind.DIR:
                raise FsError(errno.EPERM)
            if inode.unlinked or inode.parent is None:
                raise FsError(errno.ENOENT)
            if inode.store_bucket != parent.store_bucket:
                raise FsError(errno.EXDEV)
            self._must_not_exist(parent, name)
            join_key(parent.key, name)  # refuses names whose key would be too long
            self.links.link(inode, parent, name)
            self.table.remember(inode)
            self.table.entries_changed_here(parent, time.time_ns())
            return self.ns.current_attr(inode)

    def rename(self, old_parent_ino: int, old_raw: bytes, new_parent_ino: int,
               new_raw: bytes, flags: int = 0) -> None:
        self._writable()
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL, "RENAME_EXCHANGE is not supported")
        with self._ns_lock:
            old_parent, old_name, src = self._child(old_parent_ino, old_raw)
            new_parent = self.table.get(new_parent_ino)
            self._in_bucket(old_parent)
            self._in_bucket(new_parent)
            new_name = valid_name(new_raw)
            if src.root_key is not None:
                raise FsError(errno.EBUSY)
            try:
                dst: Inode | None = self.ns.lookup_inode(new_parent, new_name)
            except FsError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                dst = None
            if dst is src:
                return
            if dst is not None and flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if src.store_bucket != new_parent.store_bucket:
                raise FsError(errno.EXDEV)
            new_key = join_key(new_parent.key, new_name, directory=src.kind is Kind.DIR)
            if src.kind is Kind.DIR:
                self.renamer.move_dir(src, new_parent, new_key, dst)
            else:
                if dst is not None and dst.kind is Kind.DIR:
                    raise FsError(errno.EISDIR)
                if self.links.linked(src):
                    self.links.rename(src, old_parent, old_name, new_key)
                else:
                    self.renamer.move_object(src, new_key)
            if dst is not None:
                if self.links.linked(dst):
                    self.links.name_gone(dst, new_key)  # replaced: the others stop counting it
                self.table.unlink(new_parent, new_name)
            # A pending (never stored) file was stored under its new name by the rename.
            new_parent.pending_children.discard(new_name)
            old_parent.pending_children.discard(old_name)
            self.table.move(src, new_parent, new_name)
            now = time.time_ns()
            self.table.entries_changed_here(old_parent, now)
            self.table.entries_changed_here(new_parent, now)
            if src.kind is Kind.DIR:
                src.attr = src.attr.with_(ctime_ns=now)  # the file's own: see move_object
            self._keep_parent(old_parent)

    # ------------------------------------------------------------------ lifecycle --
    def shutdown(self) -> None:
        """Store what is still dirty (unmount with files open) and stop the workers."""
        self.files.shutdown()
        self.ns.shutdown()
