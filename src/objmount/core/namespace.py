"""The namespace as the store shows it: resolving names to inodes, listing directories,
and the attributes of objects, markers and virtual directories.

Read-only with respect to the store: everything that changes objects lives in the engine.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import stat
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from objmount.core import metadata
from objmount.core.attrfetch import AttrFetcher
from objmount.core.dirattrs import DirectoryWriter
from objmount.core.inodes import ROOT_INO, Inode, InodeTable, Kind, Virtual
from objmount.core.metadata import Attr
from objmount.core.names import dir_prefix, join_key, shown_name
from objmount.core.options import EngineOptions
from objmount.errors import FsError, NoSuchBucket, NoSuchKey
from objmount.store.base import Account, ObjectInfo, ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")

PROVIDER = "s3"
_LISTINGS_MAX = 4096  # directories whose last listing is kept for reuse
# Names listed (in pages of 1000) to answer lookups; a directory with more is asked per
# name.
_NAMES_PAGE = 4000
_LARGE_DIRECTORY_RETRY = 60.0  # seconds before a directory with more is listed again


@dataclass(frozen=True)
class MountRoot:
    """What the root of the file system shows: one bucket (or a prefix of it), or all."""

    bucket: str | None = None  # None: every bucket, as <root>/s3/<bucket>
    prefix: str = ""


@dataclass(frozen=True)
class DirEntry:
    name: str
    attr: Attr
    offset: int  # the cookie to resume after this entry
    attr_known: bool = True  # False: provisional (mode, owner and times not fetched)


@dataclass
class Listing:
    """A directory's names (and which are directories) as a LIST showed them, with the
    entries made and removed here since applied. Its entries are reused for readdir until
    ``expires`` (0: it carries no attributes); it answers lookups until ``absent_until``,
    as a negative lookup would: a name it lacks is absent, a name it has is a file or a
    directory without asking which. ``complete``: False for the first page of a larger
    directory, which answers nothing."""

    expires: float  # time.monotonic()
    absent_until: float
    names: dict[str, bool]  # name -> is a directory
    complete: bool = True
    # Files as listed: (size, Last-Modified ns); enough to know one too large to be a
    # symlink is a file, and so to answer its lookup without a HEAD.
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Directories also listed as an empty object of their name (see dirattrs.py).
    dir_objects: set[str] = field(default_factory=set)


class Listed(enum.Enum):
    ABSENT = "absent"
    FILE = "file"
    DIR = "dir"


class Namespace:
    def __init__(self, account: Account, root: MountRoot, options: EngineOptions) -> None:
        self.account = account
        self.root_spec = root
        self.options = options
        self.table = InodeTable(options.attr_ttl, options.negative_ttl)
        self._pool = ThreadPoolExecutor(options.metadata_concurrency,
                                        thread_name_prefix="objmount-meta")
        self._started_ns = time.time_ns()
        self._listings: dict[int, Listing] = {}
        self._listings_lock = threading.Lock()
        self.table.on_entry_change = self._entry_changed
        self.dirs = DirectoryWriter(options.dir_form)
        self.attrs = AttrFetcher(self._pool, self._head_attr, self.needs_head,
                                 self.table.child)
        if root.bucket is None:
            top = Inode(ROOT_INO, Kind.DIR, self.dir_attr(ROOT_INO), None, "",
                        virtual=Virtual.TOP)
        else:
            top = Inode(ROOT_INO, Kind.DIR, self.dir_attr(ROOT_INO), None, "",
                        bucket=root.bucket, root_key=root.prefix.strip("/"))
        self.table.set_attr(top, top.attr, ttl=float("inf"))
        self.table.add_root(top)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)

    def store(self, inode: Inode) -> ObjectStore:
        return self.account.bucket(inode.store_bucket)

    def dir_attr(self, ino: int, mtime_ns: int | None = None) -> Attr:
        """A directory that carries no metadata: the mount's defaults, and the marker's
        time or else the mount's start (a prefix has no time of its own)."""
        d = self.options.defaults
        t = mtime_ns if mtime_ns is not None else self._started_ns
        return Attr(ino, stat.S_IFDIR | d.dir_mode, d.uid, d.gid, 0, t, t, t, 2)

    def parallel(self, fn: Callable[[Any], T], items: Iterable[Any]) -> list[Future[T]]:
        return [self._pool.submit(fn, item) for item in items]

    def object_attr(self, ino: int, info: ObjectInfo) -> tuple[Kind, Attr]:
        if metadata.is_dir_object(info):
            return Kind.DIR, metadata.decode(ino, info, self.options.defaults, is_dir=True)
        attr = metadata.decode(ino, info, self.options.defaults, is_dir=False)
        return (Kind.SYMLINK if attr.is_symlink else Kind.FILE), attr

    def _subdir_attr(self, store: ObjectStore, key: str, object_too: bool
                     ) -> tuple[Attr, bool, tuple[str, int] | None]:
        """A listed subdirectory's attributes: from an object of its own name when that
        is an older s3fs directory (then with that object's version), else its marker's."""
        if object_too:
            with contextlib.suppress(NoSuchKey):
                info = store.head(key)
                kind, attr = self.object_attr(0, info)
                if kind is Kind.DIR:
                    return attr, False, (info.etag, info.mtime_ns)
                log.warning("%s is both an object and a prefix: showing the directory", key)
        attr, marker = self.marker_attr(0, store, key)
        return attr, marker, None

    def marker_attr(self, ino: int, store: ObjectStore, key: str) -> tuple[Attr, bool]:
        """A directory's attributes, from its ``dir/`` marker when there is one."""
        try:
            info = store.head(dir_prefix(key))
        except NoSuchKey:
            return self.dir_attr(ino), False
        if not info.metadata:
            # No metadata (another tool's marker, or a store that drops it on markers).
            return self.dir_attr(ino, mtime_ns=info.mtime_ns or None), True
        return metadata.decode(ino, info, self.options.defaults, is_dir=True), True

    def _resolve(self, parent: Inode, name: str) -> Inode | None:
        """Ask the store what ``name`` in ``parent`` is. A prefix wins over an object of
        the same name: the object is hidden (its children would otherwise be unreachable).
        A recent listing of ``parent`` says which it is (or that it is absent), so only
        its attributes are asked for."""
        store = self.store(parent)
        key = join_key(parent.key, name)
        listed = self._listed(parent, name)
        if listed is Listed.ABSENT:
            return None
        if listed is Listed.DIR:
            attr, marker, version = self._subdir_attr(store, key,
                                                      self._listed_dir_object(parent, name))
            return self._adopt(parent, name, Kind.DIR, attr, version, marker)
        if listed is Listed.FILE:
            size_time = self._listed_file(parent, name)
            if (size_time is not None and size_time[0] >= metadata.SYMLINK_MAX
                    and not parent.attr.mode & stat.S_ISVTX):
                size, mtime_ns = size_time
                return self._install_listed(parent, name,
                                            ObjectInfo(key, size, "", mtime_ns, {}, "", False))
            try:
                found = store.head(key)
            except NoSuchKey:
                return None  # removed since the listing
            kind, attr = self.object_attr(0, found)
            return self._adopt(parent, name, kind, attr, (found.etag, found.mtime_ns), False)
        known = self.table.child(parent, name)
        if known is not None and known.kind is not Kind.DIR:
            # A file seen before (in a directory too large to list by names): its HEAD
            # alone says it is still there, without a LIST of name/ beside it.
            with contextlib.suppress(NoSuchKey):
                found = store.head(key)
                kind, attr = self.object_attr(0, found)
                return self._adopt(parent, name, kind, attr, (found.etag, found.mtime_ns),
                                   False)
        head_f = self._pool.submit(store.head, key)
        is_dir = store.has_keys_under(dir_prefix(key))
        try:
            info: ObjectInfo | None = head_f.result()
        except NoSuchKey:
            info = None
        if is_dir:
            if info is not None and metadata.is_dir_object(info):
                # Older s3fs's directory with entries: no conflict.
                kind, attr = self.object_attr(0, info)
                return self._adopt(parent, name, kind, attr, (info.etag, info.mtime_ns),
                                   False)
            if info is not None:
                log.warning("%s is both an object and a prefix: showing the directory", key)
            attr, marker = self.marker_attr(0, store, key)
            return self._adopt(parent, name, Kind.DIR, attr, None, marker)
        if info is not None:
            kind, attr = self.object_attr(0, info)
            return self._adopt(parent, name, kind, attr, (info.etag, info.mtime_ns), False)
        return None

    def _adopt(self, parent: Inode, name: str, kind: Kind, attr: Attr,
               version: tuple[str, int] | None, marker: bool) -> Inode:
        """The inode for what the store says ``name`` is. The same inode (and number) as
        before while the type is unchanged; a new number when it changed, since the kernel
        may still hold the old one and counts its lookups separately."""
        with self.table.lock:
            existing = self.table.child(parent, name)
            if (existing is not None and existing.attr.link_id
                    and existing.attr.link_id != attr.link_id and existing.open_file is None):
                # This name of a linked file was replaced by another tool: a file of its
                # own now (the group's other names are left as they are).
                self.table.forget_name(existing, parent, name)
                existing = None
            group = self._group_of(parent, name, kind, attr)
            if group is not None and group is not existing and (
                    existing is None or existing.open_file is None):
                # Another name of a file seen here (a hard link): the same inode.
                self.table.add_name(group, parent, name, discovered=existing is None)
                existing = group
            if existing is not None and existing.kind is kind:
                inode = existing
            else:
                inode = Inode(self.table.new_ino(), kind, attr, parent, name)
            if kind is Kind.DIR:
                inode.has_marker = marker
                if version is not None:  # from an object of its own name
                    inode.dir_object = True
            if inode is not existing:
                # After its form is known: a listing of the parent notes it (read again,
                # a directory object's attributes are that object's, not its marker's).
                self.table.link(parent, name, inode, discovered=existing is None)
            if inode.open_file is None:
                first = inode.parent is parent and inode.name == name
                # A version is that of the object the inode's bytes are read from.
                self.table.set_attr(inode, attr.with_(ino=inode.ino),
                                    version if first else None)
                inode.listed_until = 0.0
            return inode

    def _group_of(self, parent: Inode, name: str, kind: Kind, attr: Attr) -> Inode | None:
        """The inode of the hard-link group ``name``'s object belongs to, if one of its
        names was seen here and the two objects name each other."""
        if kind is Kind.DIR or not attr.link_id:
            return None
        group = self.table.group(parent.store_bucket, attr.link_id)
        if group is None or group.kind is not kind or group.parent is None:
            return None
        return group if group.key in attr.links else None

    @staticmethod
    def _other_names(inode: Inode) -> list[str]:
        return [k for k in inode.attr.links if k != inode.key]

    def another_name(self, inode: Inode, candidates: list[str]) -> tuple[Inode, str] | None:
        """One of ``inode``'s names other than its first, the first of ``candidates``
        (keys) whose object still names the group: one known here, else found by a
        lookup (which adds it to the inode). None when none is left."""
        if inode.parent is None:
            return None
        alias_keys = {join_key(p.key, n): (p, n) for p, n in inode.aliases}
        chosen = next((alias_keys[k] for k in candidates if k in alias_keys), None)
        if chosen is not None:
            return chosen
        bucket = inode.store_bucket
        for key in candidates:
            # Unless another tool changed that one too, the two objects name each other.
            if self.inode_at_key(bucket, key) is inode:
                found = next(((p, n) for p, n in inode.aliases
                              if join_key(p.key, n) == key), None)
                if found is not None:
                    return found
        return None

    def take_another_name(self, inode: Inode, candidates: list[str]) -> bool:
        """The object at the first name of a hard-linked ``inode`` is no longer its
        (removed or replaced by another tool): :meth:`another_name` becomes the first,
        and this table forgets the old one. False, and nothing changed, when none is
        left."""
        chosen = self.another_name(inode, candidates)
        if chosen is None:
            return False
        with self.table.lock:
            self.table.make_first(inode, *chosen)
            self.table.forget_name(inode, *inode.aliases[0])
        return True

    def inode_at_key(self, bucket: str, key: str) -> Inode | None:
        """The inode of ``key`` in ``bucket`` if the mount shows it (looked up name by
        name from the root); None if it is outside the mount or absent."""
        node = self.table.get(ROOT_INO)
        if node.virtual is Virtual.TOP:
            node = self._lookup_virtual(node, PROVIDER)
        if node.virtual is Virtual.PROVIDER:
            try:
                node = self._lookup_virtual(node, bucket)
            except FsError:
                return None
        if node.store_bucket != bucket or node.root_key is None:
            return None
        root = node.root_key
        if root and not key.startswith(root + "/"):
            return None
        try:
            for part in key[len(root):].strip("/").split("/"):
                node = self.lookup_inode(node, part)
        except FsError:
            return None
        return node

    def cached_inode(self, parent: Inode, name: str) -> Inode | None:
        """:meth:`lookup_inode` when the caches answer it (no request): the inode, or
        FsError(ENOENT); None when the store must be asked."""
        if parent.kind is not Kind.DIR or parent.virtual is not Virtual.NONE:
            return None
        inode = self.table.child(parent, name)
        if inode is not None:
            if (self.table.fresh(inode) or inode.open_file is not None
                    or name in parent.pending_children
                    or inode.listed_until > time.monotonic()):
                return inode
            return None
        now = time.monotonic()
        with self._listings_lock:
            listing = self._listings.get(parent.ino)
            absent = (listing is not None and listing.complete and listing.absent_until > now
                      and name not in listing.names)
        if absent or self.table.is_negative(parent, name):
            raise FsError(errno.ENOENT)
        return None

    def lookup_inode(self, parent: Inode, name: str) -> Inode:
        if parent.kind is not Kind.DIR:
            raise FsError(errno.ENOTDIR)
        if parent.virtual is not Virtual.NONE:
            return self._lookup_virtual(parent, name)
        cached = self.cached_inode(parent, name)  # or FsError(ENOENT)
        if cached is not None:
            return cached
        inode = self.table.child(parent, name)
        found = self._resolve(parent, name)
        if found is None:
            if inode is not None:
                self.table.unlink(parent, name)
            else:
                self.table.set_negative(parent, name)
            raise FsError(errno.ENOENT)
        return found

    def _lookup_virtual(self, parent: Inode, name: str) -> Inode:
        inode = self.table.child(parent, name)
        if inode is not None:
            return inode
        if parent.virtual is Virtual.TOP:
            if name != PROVIDER:
                raise FsError(errno.ENOENT)
            inode = Inode(self.table.new_ino(), Kind.DIR, self.dir_attr(0), parent, name,
                          virtual=Virtual.PROVIDER)
        else:
            try:
                self.account.bucket(name).check()
            except NoSuchBucket:
                raise FsError(errno.ENOENT) from None
            inode = Inode(self.table.new_ino(), Kind.DIR, self.dir_attr(0), parent, name,
                          bucket=name, root_key="")
        self.table.set_attr(inode, inode.attr.with_(ino=inode.ino), ttl=float("inf"))
        self.table.link(parent, name, inode)
        return inode

    def current_attr(self, inode: Inode) -> Attr:
        attr = inode.attr
        if inode.kind is Kind.DIR:
            # A directory's link count: its entry, its ".", and each subdirectory's "..";
            # exact for a directory listed or made here, a lower bound for the others.
            return attr if attr.nlink == 2 + inode.subdirs else attr.with_(
                nlink=2 + inode.subdirs)
        of = inode.open_file
        if of is not None and inode.kind is Kind.FILE:
            attr = attr.with_(size=of.size)
        return attr.with_(nlink=0) if inode.unlinked else attr

    def list_dir(self, inode: Inode) -> list[DirEntry]:
        if inode.virtual is Virtual.TOP:
            children = [(PROVIDER, self._lookup_virtual(inode, PROVIDER))]
        elif inode.virtual is Virtual.PROVIDER:
            children = []
            for bucket in self.account.list_buckets():
                if shown_name(bucket) is not None:
                    try:
                        children.append((bucket, self._lookup_virtual(inode, bucket)))
                    except FsError:
                        continue
        else:
            children = self._list_prefix(inode)
        # By name, not by inode: a file with two names here (hard links) is listed twice.
        return [DirEntry(name, self.current_attr(c), i + 1, not self.provisional(c))
                for i, (name, c) in enumerate(sorted(children, key=lambda e: e[0]))]

    def _list_prefix(self, inode: Inode) -> list[tuple[str, Inode]]:
        cached = self._cached_listing(inode)
        if cached is not None:
            return cached
        changes = self.table.entry_changes(inode)  # before: a change meanwhile voids it
        sent = time.monotonic()
        result = self._list_store(inode)
        # Valid from its answer, as NFS counts its attribute cache: a directory whose
        # LIST takes longer than attr_timeout (100,000 entries: 100 pages) would be
        # expired on arrival otherwise, and every lookup in it would ask the store.
        answered = time.monotonic()
        if self.table.attr_ttl > 0:
            # The entries' attributes too, which the listing's HEADs brought: for as long
            # again as the listing took, since the program will ask for them at about
            # the pace they came (ls -l of 100,000 entries: 25 s to list, seconds to
            # stat; without it, interception sent a second HEAD for each entry).
            until = answered + self.table.attr_ttl + (answered - sent)
            with self.table.lock:
                for _name, c in result:
                    if c.open_file is None and not self.provisional(c):
                        c.attr_expires = max(c.attr_expires, until)
            self._remember_if_unchanged(inode, changes, Listing(
                answered + self.table.attr_ttl, answered + self.table.negative_ttl,
                {name: c.kind is Kind.DIR for name, c in result}, True,
                {name: (c.attr.size, c.attr.mtime_ns) for name, c in result
                 if c.kind is Kind.FILE and c.open_file is None},
                {name for name, c in result if c.dir_object}))
        return result

    def _remember_if_unchanged(self, inode: Inode, changes: int, listing: Listing) -> None:
        """Keep a listing unless an entry changed here while its LIST was under way."""
        with self.table.lock:  # the lock entry changes are announced under
            if self.table.entry_changes(inode) == changes:
                self._remember_listing(inode, listing)

    def _entry_changed(self, parent_ino: int, name: str, inode: Inode | None) -> None:
        with self._listings_lock:
            listing = self._listings.get(parent_ino)
            if listing is not None:
                listing.files.pop(name, None)  # its size is ours to say now
                if inode is not None:
                    listing.names[name] = inode.kind is Kind.DIR
                else:
                    listing.names.pop(name, None)
                if inode is not None and inode.dir_object:
                    listing.dir_objects.add(name)
                else:
                    listing.dir_objects.discard(name)

    def listed_nonempty(self, directory: Inode) -> bool:
        """A recent listing (kept current with the changes made here) still has entries:
        the directory does not vanish with the key just removed."""
        now = time.monotonic()
        with self._listings_lock:
            listing = self._listings.get(directory.ino)
            return (listing is not None and listing.absent_until > now
                    and bool(listing.names))

    def made_here(self, directory: Inode) -> None:
        """``directory`` was just created here, so it is empty: no lookup in it needs to
        ask the store for a while."""
        now = time.monotonic()
        if self.table.attr_ttl > 0 and self.table.negative_ttl > 0:
            self._remember_listing(directory, Listing(now + self.table.attr_ttl,
                                                      now + self.table.negative_ttl, {}))

    def _listed(self, parent: Inode, name: str) -> Listed | None:
        """What a recent listing of ``parent`` says ``name`` is; None: it cannot say.
        With no recent listing, the names are listed (a request per 1000, instead of a
        HEAD and a LIST for each name looked up)."""
        if self.table.negative_ttl <= 0 or parent.virtual is not Virtual.NONE:
            return None
        now = time.monotonic()
        with self._listings_lock:
            listing = self._listings.get(parent.ino)
            fresh = listing is not None and listing.absent_until > now
        if not fresh:
            listing = self._list_names(parent)
        if listing is None or not listing.complete:
            return None
        with self._listings_lock:
            is_dir = listing.names.get(name)
        return Listed.ABSENT if is_dir is None else Listed.DIR if is_dir else Listed.FILE

    def _listed_dir_object(self, parent: Inode, name: str) -> bool:
        with self._listings_lock:
            listing = self._listings.get(parent.ino)
            return listing is not None and name in listing.dir_objects

    def _listed_file(self, parent: Inode, name: str) -> tuple[int, int] | None:
        """(size, mtime) of ``name`` as a recent listing of ``parent`` showed it."""
        with self._listings_lock:
            listing = self._listings.get(parent.ino)
            return listing.files.get(name) if listing is not None else None

    def _list_names(self, parent: Inode) -> Listing:
        """Up to ``_NAMES_PAGE`` of ``parent``'s names, remembered for ``negative_ttl``."""
        store = self.store(parent)
        prefix = dir_prefix(parent.key)
        changes = self.table.entry_changes(parent)
        sent = time.monotonic()
        page = store.list(prefix, "/", max_keys=_NAMES_PAGE)
        names: dict[str, bool] = {}
        files: dict[str, tuple[int, int]] = {}
        for obj in page.objects:
            name = shown_name(obj.key[len(prefix):])
            if name is not None:
                names[name] = False
                files[name] = (obj.size, obj.mtime_ns)
        for p in page.prefixes:
            name = shown_name(p[len(prefix):-1])
            if name is not None:
                names[name] = True  # a prefix wins over an object of the same name
        for name in parent.pending_children:
            names.setdefault(name, False)
        complete = not page.truncated
        # A directory too large for this answers nothing; not trying again for a while
        # keeps lookups in it from costing a few LISTs every negative_ttl.
        trusted = self.table.negative_ttl if complete else max(self.table.negative_ttl,
                                                               _LARGE_DIRECTORY_RETRY)
        dir_objects = {name for name in names
                       if names[name] and files.get(name, (1, 0))[0] == 0}
        for name in names:
            if names[name]:
                files.pop(name, None)
        listing = Listing(0.0, sent + trusted, names, complete, files, dir_objects)
        self._remember_if_unchanged(parent, changes, listing)
        return listing

    def _remember_listing(self, inode: Inode, listing: Listing) -> None:
        with self._listings_lock:
            self._listings.pop(inode.ino, None)
            self._listings[inode.ino] = listing
            if len(self._listings) > _LISTINGS_MAX:
                # A walk over many directories must not grow this without bound: drop
                # what expired, then the oldest.
                now = time.monotonic()
                self._listings = {k: v for k, v in self._listings.items() if v.expires > now}
                while len(self._listings) > _LISTINGS_MAX:
                    del self._listings[next(iter(self._listings))]

    def _cached_listing(self, inode: Inode) -> list[tuple[str, Inode]] | None:
        """The entries listed less than ``attr_ttl`` ago, as names are cached that long,
        if nothing in the directory changed here since and every entry's attributes are
        still fresh; None: ask the store."""
        with self._listings_lock:
            listing = self._listings.get(inode.ino)
            names = sorted(listing.names) if listing is not None else []
        if listing is None or listing.expires < time.monotonic():
            return None
        children = []
        for name in names:
            child = self.table.child(inode, name)
            if child is None or not (self.table.fresh(child) or child.open_file is not None
                                     or child.listed_until > time.monotonic()):
                return None
            children.append((name, child))
        return children

    def _list_store(self, inode: Inode) -> list[tuple[str, Inode]]:
        store = self.store(inode)
        prefix = dir_prefix(inode.key)
        listing = store.list(prefix, "/")
        dirs: dict[str, None] = {}
        for p in listing.prefixes:
            name = shown_name(p[len(prefix):-1])
            if name is not None:
                dirs[name] = None
        files: dict[str, ObjectInfo] = {}
        dir_objects: set[str] = set()  # empty objects named as a subdirectory
        for obj in listing.objects:
            rest = obj.key[len(prefix):]
            if rest == "":
                inode.has_marker = True  # the directory's own marker (data, if any, hidden)
                continue
            name = shown_name(rest)
            if name is not None and name not in dirs:
                files[name] = obj
            elif name is not None and obj.size == 0:
                dir_objects.add(name)
        result: list[tuple[str, Inode]] = []
        # Objects whose cached attributes still match the listed version need no HEAD;
        # nor, until a program asks for their attributes, files too large to be
        # symlinks (the kernel's sticky-bit check reads owners without asking).
        stale: list[tuple[str, ObjectInfo]] = []
        defer = not inode.attr.mode & stat.S_ISVTX
        for name, obj in files.items():
            known = self.table.child(inode, name)
            if (known is not None and known.kind is not Kind.DIR
                    and (known.open_file is not None
                         or known.version == (obj.etag, obj.mtime_ns))):
                self.table.set_attr(known, known.attr)
                result.append((name, known))
            elif defer and obj.size >= metadata.SYMLINK_MAX:
                result.append((name, self._install_listed(inode, name, obj)))
            else:
                stale.append((name, obj))
        # Every file, in the order programs see them: attributes that expire are fetched
        # ahead along it too (a second ls -l, stats without a listing).
        self.attrs.listed(inode, sorted(files))
        heads = self.parallel(lambda item: store.head(item[1].key), stale)
        for (name, _obj), fut in zip(stale, heads, strict=True):
            try:
                info = fut.result()
            except NoSuchKey:
                continue  # deleted since the listing
            result.append((name, self._install(inode, name, info)))
        # Subdirectories need a HEAD of their marker, unless their attributes are fresh.
        known_dirs: dict[str, Inode] = {}
        for name in dirs:
            child = self.table.child(inode, name)
            if child is not None and child.kind is Kind.DIR and self.table.fresh(child):
                known_dirs[name] = child
        new_dirs = [n for n in dirs if n not in known_dirs]
        markers = self.parallel(
            lambda n: self._subdir_attr(store, join_key(inode.key, str(n)),
                                        n in dir_objects), new_dirs)
        for name, marker_fut in zip(new_dirs, markers, strict=True):
            attr, marker, version = marker_fut.result()
            result.append((name, self._adopt(inode, name, Kind.DIR, attr, version, marker)))
        result.extend(known_dirs.items())
        # Entries created here and not yet uploaded (open, or awaiting their first close).
        for name in list(inode.pending_children):
            child = self.table.child(inode, name)
            if child is None or child.unlinked:
                inode.pending_children.discard(name)
            elif name not in files and name not in dirs:
                result.append((name, child))
        return result

    def _install_listed(self, parent: Inode, name: str, info: ObjectInfo) -> Inode:
        """A file as a LIST shows it: provisional attributes, the HEAD left for later."""
        attr = metadata.decode(0, info, self.options.defaults, is_dir=False)
        with self.table.lock:
            existing = self.table.child(parent, name)
            if existing is not None and existing.kind is Kind.FILE:
                inode = existing
            else:
                inode = Inode(self.table.new_ino(), Kind.FILE, attr, parent, name)
                self.table.link(parent, name, inode, discovered=existing is None)
            if inode.open_file is None:
                self.table.set_attr(inode, attr.with_(ino=inode.ino), ttl=0.0)
                inode.listed_until = time.monotonic() + self.table.attr_ttl
            return inode

    def provisional(self, inode: Inode) -> bool:
        """Mode, owner and times not fetched yet (the rest is the listing's)."""
        return (inode.listed_until > 0 and not self.table.fresh(inode)
                and inode.open_file is None)

    def needs_head(self, inode: Inode) -> bool:
        """Its attributes are the store's to say: provisional or expired."""
        return (inode.kind is not Kind.DIR and inode.open_file is None
                and not self.table.fresh(inode) and not inode.unlinked)

    def fetch_attr(self, inode: Inode) -> None:
        """The attributes of a file from the store, now (those of the entries listed
        after it on their way too)."""
        self.attrs.fetch(inode)

    def _head_attr(self, inode: Inode) -> None:
        if inode.unlinked or inode.parent is None:
            return
        link_id = inode.attr.link_id
        try:
            info = self.store(inode).head(inode.key)
        except NoSuchKey:
            # A hard link's first name removed by another tool: the file goes on under
            # its others.
            if link_id and self.take_another_name(inode, self._other_names(inode)):
                return self._head_attr(inode)
            raise
        kind, attr = self.object_attr(inode.ino, info)
        if link_id and attr.link_id != link_id:
            # The first name replaced by another tool: a file of its own now; this one
            # goes on under its other names, if one is left.
            if self.take_another_name(inode, self._other_names(inode)):
                return self._head_attr(inode)
            self.table.forget_aliases(inode)
        with self.table.lock:
            if kind is inode.kind and inode.open_file is None and not inode.unlinked:
                self.table.set_attr(inode, attr, (info.etag, info.mtime_ns))
                inode.listed_until = 0.0

    def _install(self, parent: Inode, name: str, info: ObjectInfo) -> Inode:
        kind, attr = self.object_attr(0, info)
        return self._adopt(parent, name, kind, attr, (info.etag, info.mtime_ns), False)
