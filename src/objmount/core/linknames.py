"""Keeping every name of a hard-linked file in step in the store.

Each name of a linked file is an ordinary object holding the file's bytes and metadata,
and naming the group (``x-amz-meta-objmount-link``) and all its names
(``x-amz-meta-objmount-names``). The inode's first name is written (uploaded, or copied
onto itself for an attribute change); the others are then server-side copies of it.
Before that, each other name is checked: one that another tool removed or replaced
(its object no longer carries the group's id) leaves the group and is not overwritten.
"""

from __future__ import annotations

import errno
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping

from objmount.core import metadata
from objmount.core.inodes import Inode
from objmount.core.metadata import Attr
from objmount.core.names import join_key
from objmount.core.namespace import Namespace
from objmount.errors import FsError, NoSuchKey
from objmount.store.base import ObjectInfo, ObjectStore

log = logging.getLogger(__name__)

# The names must fit in the object's user metadata (2 KiB on S3, with the rest of it).
NAMES_MAX = 1024


def new_link_id() -> str:
    return uuid.uuid4().hex


def with_links(attr: Attr, keys: Iterable[str], link_id: str | None = None) -> Attr:
    """``attr`` as a group of ``keys`` (a single name: no group at all)."""
    names = tuple(dict.fromkeys(keys))
    if len(names) < 2:
        return attr.with_(link_id="", links=(), nlink=1)
    group = link_id or attr.link_id or new_link_id()
    if len(metadata.encode_links(names)) > NAMES_MAX:
        raise FsError(errno.EMLINK, "the names of a hard-linked file must fit in 1 KiB "
                      "of object metadata")
    return attr.with_(link_id=group, links=names, nlink=len(names))


def base_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


class LinkedNames:
    def __init__(self, ns: Namespace, content_type: Callable[[Inode, str], str]) -> None:
        self.ns = ns
        self._content_type = content_type

    @staticmethod
    def linked(inode: Inode) -> bool:
        return len(inode.attr.links) > 1

    def check_others(self, inode: Inode) -> None:
        """Before the first name's object is written: drop the names whose objects
        another tool removed or replaced (they are its files now). When that was the
        first name, another becomes the first."""
        attr = inode.attr
        if not self.linked(inode):
            return
        store = self.ns.store(inode)
        heads = self.ns.parallel(store.head, list(attr.links))
        gone: set[str] = set()
        for key, fut in zip(attr.links, heads, strict=True):
            try:
                info = fut.result()
            except NoSuchKey:
                gone.add(key)
                continue
            if info.metadata.get(metadata.LINK_ID_HEADER) != attr.link_id:
                gone.add(key)
        if not gone:
            return
        log.warning("%s: names changed by another tool leave its hard links: %s",
                    inode.key, ", ".join(sorted(gone)))
        left = [k for k in attr.links if k not in gone]
        self.forget_names(inode, gone - {inode.key})
        if inode.key in gone and self.ns.take_another_name(inode, left):
            # Keep the group's id until the new first name is written.
            inode.attr = with_links(inode.attr, left, attr.link_id)
            return
        # No other name left: the file is written to its first name again.
        inode.attr = with_links(attr, [k for k in attr.links if k == inode.key or k not in gone])

    def forget_names(self, inode: Inode, keys: set[str]) -> None:
        """The names at ``keys`` are no longer this file's: the table forgets them."""
        table = self.ns.table
        with table.lock:
            for parent, name in list(inode.aliases):
                if join_key(parent.key, name) in keys:
                    table.unlink(parent, name)

    def copy_to_others(self, inode: Inode, attr: Attr) -> None:
        """After the first name's object was written: the others become copies of it."""
        if len(attr.links) < 2:
            return
        store = self.ns.store(inode)
        source = inode.key
        meta = metadata.encode(attr)
        others = [k for k in attr.links if k != source]
        for fut in self.ns.parallel(
                lambda k: store.copy(source, k, meta, self._content_type(inode, base_name(k))),
                others):
            fut.result()

    def restamp(self, inode: Inode, keys: Iterable[str], attr: Attr) -> None:
        """Store ``attr`` on the objects at ``keys`` (names of ``inode``), each copied
        onto itself: the group's names changed, the bytes did not."""
        store = self.ns.store(inode)
        meta = metadata.encode(attr)
        for fut in self.ns.parallel(
                lambda k: store.copy(k, k, meta, self._content_type(inode, base_name(k))),
                list(keys)):
            fut.result()

    def prefix_moved(self, store: ObjectStore, moved: list[ObjectInfo], old_prefix: str,
                     new_prefix: str) -> None:
        """A directory's keys were copied from ``old_prefix`` to ``new_prefix``;
        ``moved`` are the objects among them that name a hard-link group (as HEAD saw
        them at the old keys). Each group's objects get its names as they are now; a
        name outside the directory that another tool changed is left alone."""
        def renamed(key: str) -> str:
            return new_prefix + key[len(old_prefix):] if key.startswith(old_prefix) else key

        groups: dict[str, list[ObjectInfo]] = {}
        for info in moved:
            groups.setdefault(info.metadata[metadata.LINK_ID_HEADER], []).append(info)
        for link_id, infos in groups.items():
            _id, names = metadata.parse_links(link_id,
                                              infos[0].metadata.get(metadata.LINK_NAMES_HEADER))
            if not names:
                continue
            inside = {renamed(i.key): i for i in infos if i.key in names}
            outside = [k for k in names if not k.startswith(old_prefix)]
            for key, fut in zip(outside, self.ns.parallel(store.head, outside), strict=True):
                try:
                    info = fut.result()
                except NoSuchKey:
                    continue
                if info.metadata.get(metadata.LINK_ID_HEADER) == link_id:
                    inside[key] = info
            keys = tuple(renamed(k) for k in names if renamed(k) in inside)
            value = metadata.encode_links(keys) if len(keys) > 1 else None
            stamps = [(k, _with_names(i.metadata, value), i.content_type)
                      for k, i in inside.items()]
            for done in self.ns.parallel(lambda s: store.copy(s[0], s[0], s[1], s[2]),
                                         stamps):
                done.result()
            group = self.ns.table.group(store.bucket, link_id)
            if group is not None:
                self.ns.table.set_attr(group, with_links(group.attr, keys, link_id))


def _with_names(meta: Mapping[str, str], names: str | None) -> dict[str, str]:
    """``meta`` naming the group's keys ``names`` (None: no group any more)."""
    out = {k: v for k, v in meta.items()
           if k not in (metadata.LINK_ID_HEADER, metadata.LINK_NAMES_HEADER)}
    if names is not None:
        out[metadata.LINK_ID_HEADER] = meta[metadata.LINK_ID_HEADER]
        out[metadata.LINK_NAMES_HEADER] = names
    return out
