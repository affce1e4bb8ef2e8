"""Renaming: a file is copied and deleted; a directory is every key under it, copied first
and deleted after, so a failure half way leaves both copies and never neither."""

from __future__ import annotations

import errno
import time

from objmount.core import metadata
from objmount.core.inodes import Inode, Kind
from objmount.core.metadata import DIR_CONTENT_TYPE
from objmount.core.names import dir_prefix
from objmount.core.namespace import Namespace
from objmount.core.openfiles import OpenFiles, content_type
from objmount.errors import FsError, NoSuchKey
from objmount.store.base import ObjectInfo


class Renamer:
    def __init__(self, ns: Namespace, files: OpenFiles) -> None:
        self.ns = ns
        self.files = files

    def ensure_empty(self, directory: Inode) -> None:
        """ENOTEMPTY if the directory holds a stored key or a file created and not yet stored."""
        prefix = dir_prefix(directory.key)
        listing = self.ns.store(directory).list(prefix, None, max_keys=2)
        if any(o.key != prefix for o in listing.objects) or self._has_pending(directory):
            raise FsError(errno.ENOTEMPTY)

    def _has_pending(self, directory: Inode) -> bool:
        for name in list(directory.pending_children):
            child = self.ns.table.child(directory, name)
            if child is not None and not child.unlinked:
                return True
        return False

    def move_object(self, src: Inode, new_key: str) -> None:
        """Store the file's bytes and attributes under ``new_key`` and delete the old key.
        The copy gets a new ctime (a rename changes the inode) and the Content-Type of
        its new name."""
        store = self.ns.store(src)
        new_type = content_type(src, new_key.rsplit("/", 1)[-1])
        now = time.time_ns()
        of = src.open_file
        if of is not None and of.data_dirty:
            # Renaming a file that was never stored (or has local changes): store its
            # current bytes under the new name directly; bytes not yet fetched come from
            # the old name.
            src.attr = src.attr.with_(ctime_ns=now)
            attr = src.attr.with_(size=of.size)
            with of.lock:
                of.ensure_all(store, src.key)
                of.upload(store, new_key, metadata.encode(attr), new_type)
            if src.parent is not None and src.name not in src.parent.pending_children:
                store.delete(src.key)
            return
        if of is not None and of.meta_dirty:
            # Only the attributes changed (a chmod on an open file): the copy carries them.
            with of.lock:
                src.attr = src.attr.with_(ctime_ns=now)
                of.etag = store.copy(src.key, new_key, metadata.encode(src.attr), new_type)
                of.meta_dirty = False
            store.delete(src.key)
            return
        # The attributes in the store now, and whatever other tools keep beside ours.
        info = store.head(src.key)
        kind, attr = self.ns.object_attr(src.ino, info)
        attr = attr.with_(ctime_ns=now)
        etag = store.copy(src.key, new_key, {**info.metadata, **metadata.encode(attr)},
                          new_type)
        if kind is src.kind:
            self.ns.table.set_attr(src, attr, (etag, 0))
        if of is not None:
            with of.lock:
                of.etag = etag  # later partial writes copy from the new object
        store.delete(src.key)

    def move_dir(self, src: Inode, new_parent: Inode, new_key: str,
                    dst: Inode | None) -> None:
        node: Inode | None = new_parent
        while node is not None:
            if node is src:
                raise FsError(errno.EINVAL, "cannot move a directory into itself")
            node = node.parent
        store = self.ns.store(src)
        if dst is not None:
            if dst.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR)
            self.ensure_empty(dst)
            # The empty directory replaced goes first: the one moved there may be written
            # at its very keys, and on SeaweedFS dir and dir/ are one entry, so deleting
            # its marker after that would delete the new directory.
            store.delete(dir_prefix(dst.key))
            if dst.dir_object:
                store.delete(dst.key)
        # Store local changes of open files below first, so the copy carries them.
        old_prefix = dir_prefix(src.key)
        for inode in self.ns.table.all():
            of = inode.open_file
            if of is not None and (of.data_dirty or of.meta_dirty) and not inode.unlinked:
                try:
                    key = inode.key
                except AssertionError:
                    continue
                if key.startswith(old_prefix):
                    self.files.upload(inode, of)
        keys = [o.key for o in store.iter_keys(old_prefix)]
        new_prefix = dir_prefix(new_key)
        linked: list[ObjectInfo] = []

        def move_one(key: str) -> None:
            target = new_prefix + key[len(old_prefix):]
            if key.endswith("/"):
                # Markers are written anew: some stores (SeaweedFS) refuse to copy them.
                try:
                    meta = store.head(key).metadata
                except NoSuchKey:
                    meta = {}
                store.put(target, b"", meta, DIR_CONTENT_TYPE)
                return
            # The HEAD says whether it is a name of a hard-linked file (a LIST does not).
            try:
                info = store.head(key)
            except NoSuchKey:
                return  # removed since the listing
            if info.metadata.get(metadata.LINK_ID_HEADER):
                linked.append(info)
            store.copy(key, target)

        # Copy everything first, then delete: a failure half way leaves both copies, never
        # neither.
        for fut in self.ns.parallel(move_one, keys):
            fut.result()
        self.files.links.prefix_moved(store, linked, old_prefix, new_prefix)
        as_object = False
        if not keys or src.dir_object:
            as_object = self.ns.dirs.write(store, new_key, src.attr,
                                           as_object=True if src.dir_object else None)
        # Files first, then directory keys deepest first: stores that keep directories of
        # their own (SeaweedFS) turn a marker deleted before its children into an implicit
        # directory, and go on listing an emptied prefix until that directory is deleted.
        # Elsewhere the implicit ones do not exist and deleting them changes nothing.
        dirs = {k for k in keys if k.endswith("/")} | {old_prefix}
        for key in keys:
            parts = key[len(old_prefix):].split("/")[:-1]
            dirs.update(old_prefix + "/".join(parts[:i]) + "/" for i in range(1, len(parts) + 1))
        store.delete_many([k for k in keys if not k.endswith("/")])
        store.delete_many(sorted(dirs, key=len, reverse=True))
        if src.dir_object:
            store.delete(src.key)  # the one written at the new name stands for it
        src.dir_object = as_object
        src.has_marker = not as_object and (old_prefix in keys or not keys)
