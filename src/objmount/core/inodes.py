"""The inode table: numbers, names, kernel lookup counts, attribute and negative caches.

An inode knows its parent and its name, not its key: the key is derived by walking up,
so renaming a directory renames everything below it in one assignment.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from objmount.core.metadata import Attr
from objmount.core.names import join_key

if TYPE_CHECKING:
    from objmount.core.openfile import OpenFile

ROOT_INO = 1
_NEGATIVE_MAX = 100_000


class Kind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"


class Virtual(enum.Enum):
    """Directories that are no prefix of any bucket (multi-bucket mounts)."""

    NONE = "none"
    TOP = "top"  # the mount root, holding the provider directory
    PROVIDER = "provider"  # "s3", holding one directory per bucket


@dataclass(eq=False, slots=True)
class Inode:
    ino: int
    kind: Kind
    attr: Attr
    parent: Inode | None
    name: str
    bucket: str | None = None
    # Set on a bucket root: the key prefix it stands for ('' or 'some/prefix').
    root_key: str | None = None
    virtual: Virtual = Virtual.NONE
    lookups: int = 0
    attr_expires: float = 0.0
    # The object version the attributes came from: (etag, Last-Modified ns; 0 when our
    # own upload set them and the store's Last-Modified is not known).
    version: tuple[str, int] | None = None
    has_marker: bool = False
    # A directory that an object of its own name (no slash) with Content-Type
    # application/x-directory stands for: older s3fs's form of a directory.
    dir_object: bool = False
    # Until then, a listing vouches for the name, type and size; mode, owner and times
    # are the mount's defaults until a HEAD (provisional: see attrfetch.py).
    listed_until: float = 0.0
    unlinked: bool = False
    symlink_target: str | None = None
    # ETag of the version whose bytes the kernel may hold in its page cache for this
    # inode (FUSE): that of its last open, or of our own upload of what it wrote.
    page_etag: str | None = None
    open_file: OpenFile | None = None
    # For directories: names created here that may not be in the store yet.
    pending_children: set[str] = field(default_factory=set)
    # For directories: subdirectories in this table (a directory's link count is 2 more),
    # and when an entry was last made or removed here (its mtime and ctime, kept in memory).
    subdirs: int = 0
    entries_changed_ns: int = 0
    # A file's other names (hard links) in this table: (directory, name). ``parent``
    # and ``name`` are the one whose object the file's bytes are written to first.
    aliases: list[tuple[Inode, str]] = field(default_factory=list)

    @property
    def key(self) -> str:
        if self.root_key is not None:
            return self.root_key
        assert self.parent is not None, "a non-root inode has a parent"
        return join_key(self.parent.key, self.name)

    @property
    def store_bucket(self) -> str:
        node: Inode | None = self
        while node is not None:
            if node.bucket is not None:
                return node.bucket
            node = node.parent
        raise AssertionError("inode outside any bucket")


class InodeTable:
    def __init__(self, attr_ttl: float, negative_ttl: float) -> None:
        self.lock = threading.RLock()
        self.attr_ttl = attr_ttl
        self.negative_ttl = negative_ttl
        self._by_ino: dict[int, Inode] = {}
        self._children: dict[tuple[int, str], Inode] = {}
        self._negative: dict[tuple[int, str], float] = {}
        # Per directory, a counter of changes to its entries in this table: a listing
        # sent at one count and answered at another may have missed a change.
        self._entry_changes: dict[int, int] = {}
        # Told of each entry this table adds (the inode) or removes (None), under its
        # lock: the namespace keeps its listings up to date with it.
        self.on_entry_change: Callable[[int, str, Inode | None], None] | None = None
        # Hard-link groups seen: (bucket, group id) -> the inode all their names share.
        self._groups: dict[tuple[str, str], Inode] = {}
        self._next_ino = ROOT_INO + 1

    def add_root(self, inode: Inode) -> None:
        with self.lock:
            inode.lookups = 1  # the kernel never forgets the root
            self._by_ino[inode.ino] = inode

    def get(self, ino: int) -> Inode:
        with self.lock:
            return self._by_ino[ino]

    def find(self, ino: int) -> Inode | None:
        with self.lock:
            return self._by_ino.get(ino)

    def child(self, parent: Inode, name: str) -> Inode | None:
        with self.lock:
            return self._children.get((parent.ino, name))

    def all(self) -> list[Inode]:
        with self.lock:
            return list(self._by_ino.values())

    def new_ino(self) -> int:
        with self.lock:
            ino = self._next_ino
            self._next_ino += 1
            return ino

    def entry_changes(self, directory: Inode) -> int:
        with self.lock:
            return self._entry_changes.get(directory.ino, 0)

    def _entries_changed(self, parent_ino: int, name: str, inode: Inode | None) -> None:
        self._entry_changes[parent_ino] = self._entry_changes.get(parent_ino, 0) + 1
        if self.on_entry_change is not None:
            self.on_entry_change(parent_ino, name, inode)

    def fresh(self, inode: Inode) -> bool:
        return inode.attr_expires > time.monotonic()

    def set_attr(self, inode: Inode, attr: Attr, version: tuple[str, int] | None = None,
                 ttl: float | None = None) -> None:
        with self.lock:
            changed = inode.entries_changed_ns
            if inode.kind is Kind.DIR and changed > attr.mtime_ns:
                # The store's copy of a directory's times is older than an entry made or
                # removed here since: the later change wins, as it would on a disk.
                attr = attr.with_(mtime_ns=changed, ctime_ns=max(changed, attr.ctime_ns))
            inode.attr = attr
            inode.attr_expires = time.monotonic() + (self.attr_ttl if ttl is None else ttl)
            if version is not None:
                inode.version = version
            if attr.link_id and inode.parent is not None:
                self._groups[(inode.store_bucket, attr.link_id)] = inode

    def group(self, bucket: str, link_id: str) -> Inode | None:
        """The inode of a hard-link group whose names were seen here, if still in use."""
        with self.lock:
            inode = self._groups.get((bucket, link_id))
            if inode is None or inode.unlinked or inode.attr.link_id != link_id:
                return None
            return inode

    def add_name(self, inode: Inode, parent: Inode, name: str, discovered: bool) -> None:
        """Another name of a file (a hard link, made here or found in the store)."""
        with self.lock:
            if self._children.get((parent.ino, name)) is inode:
                return
            if inode.parent is None or inode.unlinked:
                self.link(parent, name, inode, discovered)
                inode.unlinked = False
                return
            old = self._children.get((parent.ino, name))
            if old is not None:
                self._drop_name(old, parent, name)
            inode.aliases.append((parent, name))
            self._children[(parent.ino, name)] = inode
            self._negative.pop((parent.ino, name), None)
            if discovered:
                if self.on_entry_change is not None:
                    self.on_entry_change(parent.ino, name, inode)
            else:
                self._entries_changed(parent.ino, name, inode)

    def _drop_name(self, inode: Inode, parent: Inode, name: str, changed: bool = True) -> None:
        """Remove one name of ``inode`` from the table; it lives on under its others, if
        any. ``changed``: the name is gone from the directory (not only forgotten here)."""
        if self._children.get((parent.ino, name)) is inode:
            del self._children[(parent.ino, name)]
        if changed:
            self._entries_changed(parent.ino, name, None)
        if (parent, name) in inode.aliases:
            inode.aliases.remove((parent, name))
        elif inode.aliases and inode.parent is parent and inode.name == name:
            inode.parent, inode.name = inode.aliases.pop(0)
        else:
            self._lost_child(parent, inode)
            inode.unlinked = True
            self._maybe_drop(inode)

    def forget_name(self, inode: Inode, parent: Inode, name: str) -> None:
        """This table stops taking ``parent``/``name`` for ``inode`` (the store says it
        is another file now); no change to the directory."""
        with self.lock:
            self._drop_name(inode, parent, name, changed=False)

    def forget_aliases(self, inode: Inode) -> None:
        with self.lock:
            for parent, name in inode.aliases:
                if self._children.get((parent.ino, name)) is inode:
                    del self._children[(parent.ino, name)]
            inode.aliases.clear()

    def make_first(self, inode: Inode, parent: Inode, name: str) -> None:
        """Make ``parent``/``name`` (one of its names) the name written to first."""
        with self.lock:
            if (parent, name) in inode.aliases and inode.parent is not None:
                inode.aliases.remove((parent, name))
                inode.aliases.insert(0, (inode.parent, inode.name))
                inode.parent, inode.name = parent, name

    def link(self, parent: Inode, name: str, inode: Inode, discovered: bool = False) -> None:
        """Make ``inode`` the entry ``name`` of ``parent`` (replacing any other).
        ``discovered``: the store already had it (a lookup or a listing found it), so
        this is no change to the directory."""
        with self.lock:
            old = self._children.get((parent.ino, name))
            if old is not None and old is not inode:
                self._drop_name(old, parent, name)
            inode.parent, inode.name = parent, name
            if old is not inode and inode.kind is Kind.DIR:
                parent.subdirs += 1
            if not discovered and old is not inode:
                self._entries_changed(parent.ino, name, inode)
            elif self.on_entry_change is not None:
                self.on_entry_change(parent.ino, name, inode)  # news, not a change here
            self._children[(parent.ino, name)] = inode
            self._by_ino[inode.ino] = inode
            self._negative.pop((parent.ino, name), None)

    def unlink(self, parent: Inode, name: str) -> Inode | None:
        with self.lock:
            inode = self._children.get((parent.ino, name))
            if inode is not None:
                self._drop_name(inode, parent, name)
            else:
                self._entries_changed(parent.ino, name, None)
            self.set_negative(parent, name)
            return inode

    def move(self, inode: Inode, new_parent: Inode, new_name: str) -> None:
        """Rename the first name of ``inode`` (see :meth:`make_first` for the others)."""
        with self.lock:
            assert inode.parent is not None
            old_key = (inode.parent.ino, inode.name)
            if self._children.get(old_key) is inode:
                del self._children[old_key]
                self._lost_child(inode.parent, inode)
            self._entries_changed(inode.parent.ino, inode.name, None)
            self.set_negative(inode.parent, inode.name)
            self.link(new_parent, new_name, inode)

    def entries_changed_here(self, directory: Inode, now_ns: int) -> None:
        """An entry of ``directory`` was made, removed or renamed here: its mtime and
        ctime are now (in memory; see doc/SEMANTICS.md)."""
        with self.lock:
            directory.entries_changed_ns = now_ns
            directory.attr = directory.attr.with_(mtime_ns=now_ns, ctime_ns=now_ns)

    @staticmethod
    def _lost_child(parent: Inode, child: Inode) -> None:
        if child.kind is Kind.DIR:
            parent.subdirs = max(0, parent.subdirs - 1)

    def remember(self, inode: Inode, count: int = 1) -> None:
        with self.lock:
            inode.lookups += count

    def forget(self, ino: int, count: int) -> None:
        with self.lock:
            inode = self._by_ino.get(ino)
            if inode is None:
                return
            inode.lookups = max(0, inode.lookups - count)
            self._maybe_drop(inode)

    def drop_if_unused(self, inode: Inode) -> None:
        with self.lock:
            self._maybe_drop(inode)

    def _maybe_drop(self, inode: Inode) -> None:
        """Drop an inode nobody refers to any more: not the kernel, not an open file.
        The next lookup of its name starts over from the store."""
        if inode.lookups > 0 or inode.open_file is not None or inode.ino == ROOT_INO:
            return
        for parent, name in [(inode.parent, inode.name), *inode.aliases]:
            if parent is not None and self._children.get((parent.ino, name)) is inode:
                del self._children[(parent.ino, name)]  # forgotten here, not gone from the store
        if inode.attr.link_id:
            group = (inode.store_bucket if inode.parent is not None else "", inode.attr.link_id)
            if self._groups.get(group) is inode:
                del self._groups[group]
        self._by_ino.pop(inode.ino, None)
        self._entry_changes.pop(inode.ino, None)

    def is_negative(self, parent: Inode, name: str) -> bool:
        with self.lock:
            expires = self._negative.get((parent.ino, name))
            if expires is None:
                return False
            if expires < time.monotonic():
                del self._negative[(parent.ino, name)]
                return False
            return True

    def set_negative(self, parent: Inode, name: str) -> None:
        with self.lock:
            if self.negative_ttl <= 0:
                return
            now = time.monotonic()
            if len(self._negative) >= _NEGATIVE_MAX:
                # Programs probing many missing paths (compilers, PATH searches) must not
                # grow this without bound: drop what expired, then the oldest.
                self._negative = {k: t for k, t in self._negative.items() if t > now}
                while len(self._negative) >= _NEGATIVE_MAX:
                    del self._negative[next(iter(self._negative))]
            self._negative[(parent.ino, name)] = now + self.negative_ttl

    def clear_negative(self, parent: Inode, name: str) -> None:
        with self.lock:
            self._negative.pop((parent.ino, name), None)
