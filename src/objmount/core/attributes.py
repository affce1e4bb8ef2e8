"""Changing attributes: chmod, chown, utimens, truncate and extended attributes.

A file's are stored by a copy of its object onto itself with new metadata (its bytes
never pass through us), or, while it is open and changed, with its upload; a directory's
on its marker or on the object that stands for it (dirattrs.py); a truncate by path
rewrites the object at once, an ftruncate at the close.
"""

from __future__ import annotations

import errno
import stat
import threading
import time
from collections.abc import Callable

from objmount.core import acls
from objmount.core.inodes import Inode, Kind
from objmount.core.metadata import Attr
from objmount.core.namespace import Namespace
from objmount.core.openfiles import OpenFiles
from objmount.errors import FsError


class AttributeWriter:
    def __init__(self, ns: Namespace, files: OpenFiles, lock: threading.RLock,
                 getattr: Callable[[int], Attr]) -> None:
        """``lock``: the engine's namespace lock; ``getattr``: the engine's (fetches
        attributes a listing left provisional)."""
        self.ns = ns
        self.table = ns.table
        self.files = files
        self._lock = lock
        self._getattr = getattr

    def set(self, inode: Inode, *, mode: int | None, uid: int | None, gid: int | None,
            size: int | None, atime_ns: int | None, mtime_ns: int | None,
            by_path: bool) -> Attr:
        now = time.time_ns()
        with self._lock:
            attr = self._stored_attr(inode)
            changes: dict[str, int] = {}
            if mode is not None:
                changes["mode"] = stat.S_IFMT(attr.mode) | stat.S_IMODE(mode)
                if self.ns.options.posix_acls:
                    attr = acls.chmod(attr, mode)  # its access ACL follows the new bits
            if uid is not None:
                changes["uid"] = uid
            if gid is not None:
                changes["gid"] = gid
            if atime_ns is not None:
                changes["atime_ns"] = atime_ns
            if mtime_ns is not None:
                changes["mtime_ns"] = mtime_ns
            if size is not None:
                if inode.kind is Kind.DIR:
                    raise FsError(errno.EISDIR)
                if inode.kind is not Kind.FILE:
                    raise FsError(errno.EINVAL)
                if mtime_ns is None:
                    changes["mtime_ns"] = now
            if not changes:
                return self.ns.current_attr(inode)
            changes["ctime_ns"] = now
            new_attr = attr.with_(**changes)
            if size is not None:
                self._truncate(inode, size, new_attr, by_path=by_path)
            else:
                self._store(inode, new_attr)
            return self.ns.current_attr(inode)

    def change(self, inode: Inode, change: Callable[[Attr], Attr]) -> None:
        """Store ``change(attributes)`` with a new ctime (extended attributes)."""
        with self._lock:
            new_attr = change(self._stored_attr(inode))
            self._store(inode, new_attr.with_(ctime_ns=time.time_ns()))

    def _stored_attr(self, inode: Inode) -> Attr:
        """The attributes to change: fetched first if a listing left them provisional
        (the mount's defaults must never be stored in their place)."""
        if inode.parent is not None and self.ns.needs_head(inode):
            self._getattr(inode.ino)
        return inode.attr

    def _store(self, inode: Inode, new_attr: Attr) -> None:
        """Under the lock: store attributes other than the size (an open file's go with
        its upload)."""
        if inode.kind is Kind.DIR:
            self._store_dir(inode, new_attr)
        elif inode.open_file is not None:
            with inode.open_file.lock:
                inode.attr = new_attr
                inode.open_file.meta_dirty = True
                if inode.open_file.stream is not None:
                    inode.open_file.stream.attributes_changed = True
        else:
            self.files.store_object_attr(inode, new_attr)

    def _store_dir(self, inode: Inode, attr: Attr) -> None:
        if not inode.key:
            # A bucket root has no key of its own to carry metadata.
            raise FsError(errno.EPERM, "the attributes of a bucket root cannot be stored")
        # A directory an object stands for keeps that form: a marker beside it would
        # not be read.
        if self.ns.dirs.write(self.ns.store(inode), inode.key, attr,
                              as_object=True if inode.dir_object else None):
            inode.dir_object = True
        else:
            inode.has_marker = True
        inode.entries_changed_ns = 0  # the times set now are the directory's
        self.table.set_attr(inode, attr)

    def _truncate(self, inode: Inode, size: int, attr: Attr, *, by_path: bool) -> None:
        """ftruncate() changes the open file, stored at its close; truncate(2) by path has
        no close to wait for and changes the object now (open or not, the cache file is
        shared, so it carries whatever open handles wrote too)."""
        store = self.ns.store(inode)
        of = inode.open_file
        if of is not None:
            with of.lock:
                of.truncate(store, inode.key, size)
                inode.attr = attr.with_(size=size)
                if by_path:
                    self.files.upload(inode, of)
            return
        of = self.files.open(inode)
        try:
            of.truncate(store, inode.key, size)
            inode.attr = attr.with_(size=size)
            self.files.upload(inode, of)
        finally:
            self.files.close(inode, of)
