"""Hard links: link(2), and the removal and renaming of one name of a linked file.

A linked file has one inode here with several names (inodes.py), and one object per
name in the store, each a full copy naming the group (linknames.py). So a plain S3 client
sees ordinary objects with the file's bytes under every name; the price is a copy per
other name on each change of the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from objmount.core import metadata
from objmount.core.inodes import Inode
from objmount.core.linknames import base_name, with_links
from objmount.core.metadata import Attr
from objmount.core.names import join_key
from objmount.core.namespace import Namespace
from objmount.core.openfiles import OpenFiles, content_type


class HardLinks:
    """Each operation runs under the engine's namespace lock, which the engine holds."""

    def __init__(self, ns: Namespace, files: OpenFiles,
                 getattr: Callable[[int], Attr]) -> None:
        """``getattr``: the engine's (fetches attributes a listing left provisional)."""
        self.ns = ns
        self.table = ns.table
        self.files = files
        self._getattr = getattr

    def _current(self, inode: Inode) -> Attr:
        """The file's attributes with every name holding its current bytes: local
        changes of an open file are stored first (a new name is a copy of the object)."""
        of = inode.open_file
        if of is not None and (of.data_dirty or of.meta_dirty):
            self.files.upload(inode, of)
        else:
            if inode.parent is not None and self.ns.needs_head(inode):
                self._getattr(inode.ino)
            self.files.links.check_others(inode)
        return inode.attr

    def link(self, inode: Inode, parent: Inode, name: str) -> None:
        """``parent``/``name`` becomes another name of ``inode``."""
        store = self.ns.store(inode)
        attr = self._current(inode)
        source = inode.key
        new_key = join_key(parent.key, name)
        keys = attr.links or (source,)
        now = time.time_ns()
        new_attr = with_links(attr, (*keys, new_key)).with_(ctime_ns=now)
        # The new name first: if the rest fails, the old names still count themselves.
        store.copy(source, new_key, metadata.encode(new_attr), content_type(inode, name))
        self.files.links.restamp(inode, keys, new_attr)
        self.table.add_name(inode, parent, name, discovered=False)
        self.table.set_attr(inode, new_attr)

    def unlink(self, inode: Inode, parent: Inode, name: str) -> None:
        """Remove the name ``parent``/``name`` of a linked file."""
        store = self.ns.store(inode)
        attr = self._current(inode)
        key = join_key(parent.key, name)
        rest = [k for k in attr.links if k != key]
        if key == inode.key:
            # The file goes on under another name: one the inode knows, so that it has
            # a name to write to.
            self.ns.another_name(inode, rest)
        store.delete(key)
        self.files.cache.forget(store.bucket, key)
        self.name_gone(inode, key, attr)
        self.table.unlink(parent, name)

    def name_gone(self, inode: Inode, key: str, attr: Attr | None = None) -> None:
        """The object at ``key``, a name of ``inode``, was removed or replaced: the
        other names stop counting it (their ctime changes: the link count did)."""
        attr = attr or inode.attr
        rest = [k for k in attr.links if k != key]
        if len(rest) == len(attr.links):
            return
        new_attr = with_links(attr, rest).with_(ctime_ns=time.time_ns())
        self.files.links.restamp(inode, rest, new_attr)
        self.table.set_attr(inode, new_attr)

    def rename(self, inode: Inode, old_parent: Inode, old_name: str, new_key: str) -> None:
        """Store the name ``old_parent``/``old_name`` of a linked file
        at ``new_key`` instead; the caller moves it in the table."""
        store = self.ns.store(inode)
        self.table.make_first(inode, old_parent, old_name)
        attr = self._current(inode)
        old_key = inode.key
        keys = [new_key if k == old_key else k for k in attr.links]
        new_attr = with_links(attr, keys).with_(ctime_ns=time.time_ns())
        store.copy(old_key, new_key, metadata.encode(new_attr),
                   content_type(inode, base_name(new_key)))
        self.files.links.restamp(inode, [k for k in keys if k != new_key], new_attr)
        store.delete(old_key)
        self.files.cache.forget(store.bucket, old_key)
        self.table.set_attr(inode, new_attr)

    def linked(self, inode: Inode) -> bool:
        return len(inode.attr.links) > 1 or bool(inode.aliases)
