"""A stateful reference-model test of the engine on the in-memory store (in the style of
mountpoint-s3's reftests).

Hypothesis drives the Engine through random sequences of operations, including changes
made by "another client" directly in the store, and compares every answer with a small
model: a tree of paths -> files (bytes), directories and symlinks. After every step the
store itself is checked against the model: one object per file under the same key with
the model's bytes, symlinks as objects holding their target, a ``dir/`` marker for every
empty directory, and no other keys (doc/SEMANTICS.md, "What is stored").

Files can be held open across steps. The engine shares one cache file per inode, so
reads through the engine see written bytes at once, while the store only changes at
close (or fsync, or when the file is renamed). The model keeps both: ``data`` (what the
engine shows) and ``stored`` (what the object holds).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from objmount.core.engine import RENAME_NOREPLACE, Engine, EngineOptions, MountRoot
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Attr, Defaults
from objmount.errors import ObjmountError, to_errno
from objmount.store.memory import MemoryAccount, MemoryStore

UID, GID = 1000, 1000
NAMES = ["a", "b", "ü", "c d"]
MAX_PARENT_DEPTH = 2  # new entries are at most 3 levels deep
MAX_HELD = 3
ALL = 1 << 20  # "read everything": files here are tiny

names = st.sampled_from(NAMES)
small_bytes = st.binary(max_size=12)
modes = st.sampled_from([0o600, 0o640, 0o644, 0o700, 0o755])
targets = st.sampled_from([b"a", b"../b", b"c d/\xc3\xbc", b"/abs/x"])


# -- the model ----------------------------------------------------------------------------
@dataclass(eq=False)
class MFile:
    data: bytes  # what reads through the engine return
    stored: bytes | None  # what the object holds (None: not stored yet)
    mode: int  # permission bits
    handles: int = 0  # handles held open across steps


@dataclass(eq=False)
class MDir:
    mode: int


@dataclass(eq=False)
class MLink:
    target: bytes


Entry = MFile | MDir | MLink


@dataclass(eq=False)
class Held:
    fh: int
    ino: int
    file: MFile


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def depth(path: str) -> int:
    return 0 if path == "" else path.count("/") + 1


def within(path: str, top: str) -> bool:
    """``path`` is ``top`` or below it."""
    return path == top or path.startswith(top + "/")


def zero_pad(data: bytes, size: int) -> bytes:
    return data[:size] + b"\0" * (size - len(data))


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """(result, 0) or (None, errno) as a program would see it through a frontend."""
    try:
        return fn(*args, **kwargs), 0
    except (ObjmountError, OSError) as exc:
        return None, to_errno(exc)


def err_name(err: int) -> str:
    return "success" if err == 0 else errno.errorcode.get(err, str(err))


def expect(allowed: set[int], got: int, what: str) -> None:
    assert got in allowed, (
        f"{what}: expected {' or '.join(sorted(err_name(e) for e in allowed))}, "
        f"got {err_name(got)}")


# -- the machine --------------------------------------------------------------------------
class EngineModel(RuleBasedStateMachine):
    # Caches off: another client's changes must show at once.
    TTL = 0.0
    BLOCK_SIZE = 8 << 20
    PART_SIZE = 8 << 20
    WHOLE_FILE_SIZE = 1 << 20

    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="objmount-model-"))
        self.account = MemoryAccount("b")
        self.store: MemoryStore = self.account.stores["b"]
        self.store.part_size = self.PART_SIZE
        options = EngineOptions(Defaults(UID, GID), self.tmp / "cache", attr_ttl=self.TTL,
                                negative_ttl=self.TTL, block_size=self.BLOCK_SIZE,
                                whole_file_size=self.WHOLE_FILE_SIZE)
        self.engine = Engine(self.account, MountRoot("b"), options)
        self.entries: dict[str, Entry] = {"": MDir(0o755)}
        self.held: list[Held] = []
        # What the kernel would hold: lookup counts of its inodes (from lookup, create,
        # mkdir, symlink, readdirplus) and their types. When a node id comes back with
        # another type, the kernel makes its old inode bad and starts a new one under the
        # same id (fuse_iget); the old one is forgotten later, with its own count.
        self.kernel_refs: Counter[int] = Counter()
        self.kernel_types: dict[int, int] = {}
        self.kernel_stale: list[tuple[int, int]] = []

    def teardown(self) -> None:
        try:
            for h in self.held:
                self.engine.release(h.fh)
            self.engine.shutdown()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- model helpers ----------------------------------------------------------------
    def dirs(self, max_depth: int = 99) -> list[str]:
        return sorted(p for p, e in self.entries.items()
                      if isinstance(e, MDir) and depth(p) <= max_depth)

    def paths(self, kind: type | None = None) -> list[str]:
        return sorted(p for p, e in self.entries.items()
                      if p and (kind is None or isinstance(e, kind)))

    def children(self, d: str) -> list[str]:
        return sorted(p.rpartition("/")[2] for p in self.entries
                      if p and parent_of(p) == d)

    def path_of(self, f: MFile) -> str | None:
        for p, e in self.entries.items():
            if e is f:
                return p
        return None

    def pick_parent(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.dirs(MAX_PARENT_DEPTH)), label="parent")

    def pick_path(self, data: st.DataObject) -> str:
        """An existing entry, or any name in an existing directory (which often exists
        too: the names are few)."""
        existing = self.paths()
        if existing and data.draw(st.integers(0, 3), label="existing") > 0:
            return data.draw(st.sampled_from(existing), label="path")
        return join(self.pick_parent(data), data.draw(names, label="name"))

    def store_keys(self) -> set[str]:
        return {o.key for o in self.store.list("", None).objects}

    # -- engine helpers ---------------------------------------------------------------
    def lookup(self, path: str) -> Attr:
        """Resolve ``path`` from the root as the kernel does, one lookup per component."""
        attr = self.engine.getattr(ROOT_INO)
        for name in filter(None, path.split("/")):
            attr = self.engine.lookup(attr.ino, name.encode())
            self.kernel_sees(attr)
        return attr

    def kernel_sees(self, attr: Attr) -> None:
        kind = stat.S_IFMT(attr.mode)
        if self.kernel_types.get(attr.ino, kind) != kind:
            self.kernel_stale.append((attr.ino, self.kernel_refs.pop(attr.ino, 0)))
        self.kernel_types[attr.ino] = kind
        self.kernel_refs[attr.ino] += 1

    def ino(self, path: str) -> int:
        return self.lookup(path).ino

    def parent_ino_and_name(self, path: str) -> tuple[int, bytes]:
        parent, _, name = path.rpartition("/")
        return self.ino(parent), name.encode()

    def read_through_engine(self, path: str) -> bytes:
        fh = self.engine.open(self.ino(path), os.O_RDONLY)
        try:
            return self.engine.read(fh, 0, ALL)
        finally:
            self.engine.release(fh)

    def check_store_unchanged(self, path: str | None, f: MFile) -> None:
        if path is None:
            return
        keys = self.store_keys()
        if f.stored is None:
            assert path not in keys, f"{path!r} is in the store before its first close"
        else:
            assert self.store.get(path) == f.stored, \
                f"{path!r} changed in the store before close"

    # -- files ------------------------------------------------------------------------
    @rule(data=st.data(), payload=small_bytes, mode=modes, exclusive=st.booleans())
    def create_write_close(self, data: st.DataObject, payload: bytes, mode: int,
                           exclusive: bool) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        if isinstance(entry, MLink):
            return  # the kernel follows the link before it gets here
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_EXCL if exclusive else 0)
        pino, name = self.parent_ino_and_name(path)
        res, err = outcome(self.engine.create, pino, name, mode, flags, UID, GID)
        if entry is not None and exclusive:
            expect({errno.EEXIST}, err, f"create(O_EXCL) of existing {path!r}")
            return
        if isinstance(entry, MDir):
            expect({errno.EISDIR}, err, f"create over directory {path!r}")
            return
        expect({0}, err, f"create {path!r}")
        fh, attr = res
        self.kernel_sees(attr)
        if entry is None:
            entry = MFile(b"", None, mode)
            self.entries[path] = entry
            assert stat.S_IMODE(attr.mode) == mode
        assert isinstance(entry, MFile)
        entry.data = b""
        assert self.engine.write(fh, 0, payload) == len(payload)
        entry.data = payload
        assert self.engine.read(fh, 0, ALL) == payload
        self.check_store_unchanged(path, entry)
        self.engine.flush(fh)
        entry.stored = entry.data
        self.engine.release(fh)
        assert self.store.get(path) == payload

    def existing_file(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(self.paths(MFile)), label="file")

    @precondition(lambda self: self.paths(MFile))
    @rule(data=st.data(), payload=small_bytes.filter(bool), slack=st.integers(0, 3))
    def overwrite_at_offset(self, data: st.DataObject, payload: bytes, slack: int) -> None:
        path = self.existing_file(data)
        f = self.entries[path]
        assert isinstance(f, MFile)
        offset = data.draw(st.integers(0, len(f.data) + slack), label="offset")
        fh = self.engine.open(self.ino(path), os.O_RDWR)
        assert self.engine.write(fh, offset, payload) == len(payload)
        old = zero_pad(f.data, max(len(f.data), offset))
        f.data = old[:offset] + payload + old[offset + len(payload):]
        assert self.engine.read(fh, 0, ALL) == f.data
        self.check_store_unchanged(path, f)
        self.engine.flush(fh)
        f.stored = f.data
        self.engine.release(fh)

    @precondition(lambda self: self.paths(MFile))
    @rule(data=st.data(), payload=small_bytes.filter(bool), offset=st.integers(0, 5))
    def append(self, data: st.DataObject, payload: bytes, offset: int) -> None:
        path = self.existing_file(data)
        f = self.entries[path]
        assert isinstance(f, MFile)
        fh = self.engine.open(self.ino(path), os.O_WRONLY | os.O_APPEND)
        self.engine.write(fh, offset, payload)  # O_APPEND: the offset is ignored
        f.data += payload
        self.check_store_unchanged(path, f)
        self.engine.flush(fh)
        f.stored = f.data
        self.engine.release(fh)

    @rule(data=st.data(), size=st.integers(0, 16))
    def truncate(self, data: st.DataObject, size: int) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        if isinstance(entry, MLink):
            return  # truncate(2) follows links
        if entry is None:
            _, err = outcome(self.lookup, path)
            expect({errno.ENOENT}, err, f"truncate of missing {path!r}")
            return
        _, err = outcome(self.engine.setattr, self.ino(path), size=size)
        if isinstance(entry, MDir):
            expect({errno.EISDIR}, err, f"truncate of directory {path!r}")
            return
        expect({0}, err, f"truncate {path!r}")
        entry.data = zero_pad(entry.data, size)
        # truncate by path "rewrites the object at once" (SEMANTICS.md, Operations).
        entry.stored = entry.data
        assert self.lookup(path).size == size

    @rule(data=st.data())
    def read_whole(self, data: st.DataObject) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        attr, err = outcome(self.lookup, path)
        if entry is None:
            expect({errno.ENOENT}, err, f"lookup of missing {path!r}")
            return
        expect({0}, err, f"lookup {path!r}")
        if isinstance(entry, MDir):
            assert stat.S_ISDIR(attr.mode), f"{path!r} should be a directory"
            _, err = outcome(self.engine.open, attr.ino, os.O_RDONLY)
            expect({errno.EISDIR}, err, f"open of directory {path!r}")
        elif isinstance(entry, MLink):
            assert stat.S_ISLNK(attr.mode), f"{path!r} should be a symlink"
        else:
            assert stat.S_ISREG(attr.mode), f"{path!r} should be a file"
            assert attr.size == len(entry.data), f"size of {path!r}"
            assert self.read_through_engine(path) == entry.data, f"content of {path!r}"

    # -- directories ------------------------------------------------------------------
    @rule(data=st.data(), mode=modes)
    def mkdir(self, data: st.DataObject, mode: int) -> None:
        path = self.pick_path(data)
        pino, name = self.parent_ino_and_name(path)
        attr, err = outcome(self.engine.mkdir, pino, name, mode, UID, GID)
        if path in self.entries:
            expect({errno.EEXIST}, err, f"mkdir of existing {path!r}")
            return
        expect({0}, err, f"mkdir {path!r}")
        self.kernel_sees(attr)
        assert attr.mode == stat.S_IFDIR | mode
        self.entries[path] = MDir(mode)

    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        pino, name = self.parent_ino_and_name(path)
        _, err = outcome(self.engine.rmdir, pino, name)
        if entry is None:
            expect({errno.ENOENT}, err, f"rmdir of missing {path!r}")
        elif not isinstance(entry, MDir):
            expect({errno.ENOTDIR}, err, f"rmdir of non-directory {path!r}")
        elif self.children(path):
            expect({errno.ENOTEMPTY}, err, f"rmdir of non-empty {path!r}")
        else:
            expect({0}, err, f"rmdir {path!r}")
            del self.entries[path]

    @rule(data=st.data())
    def list_directory(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.dirs()), label="dir")
        fh = self.engine.opendir(self.ino(path))
        try:
            listing = self.engine.readdir(fh, 0)
            # The kernel reads a directory in pieces, resuming after a cookie.
            split = data.draw(st.integers(0, len(listing)), label="split")
            if 0 < split < len(listing):
                listing = listing[:split] + self.engine.readdir(fh, listing[split - 1].offset)
        finally:
            self.engine.releasedir(fh)
        for e in listing:
            self.engine.remember(e.attr.ino)  # readdirplus hands entries to the kernel
            self.kernel_sees(e.attr)
        got = [e.name for e in listing]
        assert sorted(got) == self.children(path), f"listing of {path!r}"
        assert len(set(e.offset for e in listing)) == len(listing), "cookies must differ"
        for e in listing:
            entry = self.entries[join(path, e.name)]
            where = f"{join(path, e.name)!r} in the listing of {path!r}"
            if isinstance(entry, MDir):
                assert e.attr.mode == stat.S_IFDIR | entry.mode, where
            elif isinstance(entry, MLink):
                assert stat.S_ISLNK(e.attr.mode), where
            else:
                assert e.attr.mode == stat.S_IFREG | entry.mode, where
                assert e.attr.size == len(entry.data), where

    # -- names ------------------------------------------------------------------------
    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        pino, name = self.parent_ino_and_name(path)
        _, err = outcome(self.engine.unlink, pino, name)
        if entry is None:
            expect({errno.ENOENT}, err, f"unlink of missing {path!r}")
        elif isinstance(entry, MDir):
            expect({errno.EISDIR}, err, f"unlink of directory {path!r}")
        else:
            expect({0}, err, f"unlink {path!r}")
            del self.entries[path]  # a held handle goes on, on a nameless file

    @rule(data=st.data(), noreplace=st.booleans(), src_dir=st.booleans(),
          dst_dir=st.booleans())
    def rename(self, data: st.DataObject, noreplace: bool, src_dir: bool,
               dst_dir: bool) -> None:
        # Directories are drawn on purpose half of the time: they make the interesting
        # cases (moving trees, into themselves, over empty or non-empty directories).
        dirs = self.paths(MDir)
        if src_dir and dirs:
            src = data.draw(st.sampled_from(dirs), label="src")
        else:
            src = self.pick_path(data)
        if dst_dir and dirs:
            dst = data.draw(st.sampled_from(dirs), label="dst")
        else:
            dst = self.pick_path(data)
        s = self.entries.get(src)
        d = self.entries.get(dst)
        sp_ino, sname = self.parent_ino_and_name(src)
        dp_ino, dname = self.parent_ino_and_name(dst)
        flags = RENAME_NOREPLACE if noreplace else 0
        _, err = outcome(self.engine.rename, sp_ino, sname, dp_ino, dname, flags)
        what = f"rename {src!r} -> {dst!r}{' (NOREPLACE)' if noreplace else ''}"
        if s is None:
            expect({errno.ENOENT}, err, what)
            return
        if src == dst:
            expect({0, errno.EEXIST} if noreplace else {0}, err, what)
            return
        if d is not None and noreplace:
            expect({errno.EEXIST}, err, what)
            return
        if isinstance(s, MDir) and within(dst, src):
            expect({errno.EINVAL}, err, what)
            return
        if d is not None:
            if not isinstance(s, MDir) and isinstance(d, MDir):
                # Linux says ENOTEMPTY when the target is an ancestor of the source.
                allowed = {errno.EISDIR} | ({errno.ENOTEMPTY} if within(src, dst) else set())
                expect(allowed, err, what)
                return
            if isinstance(s, MDir) and not isinstance(d, MDir):
                expect({errno.ENOTDIR}, err, what)
                return
            if isinstance(d, MDir) and self.children(dst):
                expect({errno.ENOTEMPTY}, err, what)
                return
        expect({0}, err, what)
        if d is not None:
            del self.entries[dst]
        moved = {p: e for p, e in self.entries.items() if within(p, src)}
        for p in moved:
            del self.entries[p]
        for p, e in moved.items():
            self.entries[dst + p[len(src):]] = e
            if isinstance(e, MFile):
                # Local changes of open files travel with the rename (SEMANTICS.md:
                # "rename of an open, unstored file: its bytes are stored under the new
                # name"; the directory rename stores them first so the copy carries them).
                e.stored = e.data

    @rule(data=st.data(), link_to=targets)
    def symlink(self, data: st.DataObject, link_to: bytes) -> None:
        path = self.pick_path(data)
        pino, name = self.parent_ino_and_name(path)
        attr, err = outcome(self.engine.symlink, pino, name, link_to, UID, GID)
        if path in self.entries:
            expect({errno.EEXIST}, err, f"symlink over existing {path!r}")
            return
        expect({0}, err, f"symlink {path!r}")
        self.kernel_sees(attr)
        assert stat.S_ISLNK(attr.mode)
        self.entries[path] = MLink(link_to)
        assert self.engine.readlink(attr.ino) == link_to

    @rule(data=st.data())
    def readlink(self, data: st.DataObject) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        if entry is None:
            return
        got, err = outcome(self.engine.readlink, self.ino(path))
        if isinstance(entry, MLink):
            expect({0}, err, f"readlink {path!r}")
            assert got == entry.target, f"target of {path!r}"
        else:
            expect({errno.EINVAL}, err, f"readlink of non-link {path!r}")

    @rule(data=st.data(), mode=modes)
    def chmod(self, data: st.DataObject, mode: int) -> None:
        choices = [p for p in self.paths() if not isinstance(self.entries[p], MLink)]
        if not choices:
            return
        path = data.draw(st.sampled_from(choices), label="path")
        entry = self.entries[path]
        assert isinstance(entry, MFile | MDir)
        ino = self.ino(path)
        attr = self.engine.setattr(ino, mode=mode)
        kind = stat.S_IFDIR if isinstance(entry, MDir) else stat.S_IFREG
        assert attr.mode == kind | mode
        entry.mode = mode
        assert self.engine.getattr(ino).mode == kind | mode, f"getattr after chmod {path!r}"
        assert self.lookup(path).mode == kind | mode, f"lookup after chmod {path!r}"

    # -- files held open across steps -------------------------------------------------
    @precondition(lambda self: len(self.held) < MAX_HELD)
    @rule(data=st.data(), payload=small_bytes, mode=modes)
    def open_and_hold(self, data: st.DataObject, payload: bytes, mode: int) -> None:
        path = self.pick_path(data)
        entry = self.entries.get(path)
        if isinstance(entry, MDir | MLink):
            return
        if entry is None:
            pino, name = self.parent_ino_and_name(path)
            fh, attr = self.engine.create(pino, name, mode, os.O_RDWR | os.O_CREAT, UID,
                                          GID)
            self.kernel_sees(attr)
            entry = MFile(b"", None, mode)
            self.entries[path] = entry
        else:
            attr = self.lookup(path)
            fh = self.engine.open(attr.ino, os.O_RDWR)
        entry.handles += 1
        self.held.append(Held(fh, attr.ino, entry))
        offset = data.draw(st.integers(0, len(entry.data)), label="offset")
        self.write_held_at(self.held[-1], offset, payload)

    def write_held_at(self, h: Held, offset: int, payload: bytes) -> None:
        f = h.file
        assert self.engine.write(h.fh, offset, payload) == len(payload)
        old = zero_pad(f.data, max(len(f.data), offset))
        f.data = old[:offset] + payload + old[offset + len(payload):]
        assert self.engine.read(h.fh, 0, ALL) == f.data, "read right after write"
        self.check_store_unchanged(self.path_of(f), f)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), payload=small_bytes.filter(bool), sync=st.booleans())
    def write_held(self, data: st.DataObject, payload: bytes, sync: bool) -> None:
        h = data.draw(st.sampled_from(self.held), label="held")
        offset = data.draw(st.integers(0, len(h.file.data)), label="offset")
        self.write_held_at(h, offset, payload)
        if sync:
            self.engine.fsync(h.fh)
            path = self.path_of(h.file)
            if path is not None:
                h.file.stored = h.file.data
                assert self.store.get(path) == h.file.data, f"{path!r} after fsync"

    @precondition(lambda self: self.held)
    @rule(data=st.data(), size=st.integers(0, 16))
    def ftruncate_held(self, data: st.DataObject, size: int) -> None:
        """ftruncate: local until close (SEMANTICS.md)."""
        h = data.draw(st.sampled_from(self.held), label="held")
        attr = self.engine.setattr(h.ino, size=size, fh=h.fh)
        assert attr.size == size
        h.file.data = zero_pad(h.file.data, size)
        assert self.engine.read(h.fh, 0, ALL) == h.file.data
        self.check_store_unchanged(self.path_of(h.file), h.file)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def close_held(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(self.held), label="held")
        self.held.remove(h)
        h.file.handles -= 1
        self.engine.flush(h.fh)
        self.engine.release(h.fh)
        path = self.path_of(h.file)
        if path is not None:
            h.file.stored = h.file.data
            assert self.store.get(path) == h.file.data, f"{path!r} after close"

    # -- the kernel's inode references ----------------------------------------------
    @rule()
    def kernel_forgets(self) -> None:
        """The kernel drops every inode it may: all but open files and their ancestors."""
        pinned = {ROOT_INO}
        for h in self.held:
            pinned.add(h.ino)
            path = self.path_of(h.file)
            if path is None:
                continue
            attr = self.engine.getattr(ROOT_INO)
            for name in path.split("/"):
                attr = self.engine.lookup(attr.ino, name.encode())
                self.kernel_sees(attr)
                pinned.add(attr.ino)
            assert attr.ino == h.ino, f"{path!r} resolves to another inode than its open file"
        self.kernel_evicts_stale_inodes()
        for ino, count in list(self.kernel_refs.items()):
            if ino not in pinned:
                self.engine.forget(ino, count)
                del self.kernel_refs[ino]
                del self.kernel_types[ino]

    @precondition(lambda self: self.kernel_stale)
    @rule()
    def kernel_evicts_stale_inodes(self) -> None:
        for ino, count in self.kernel_stale:
            self.engine.forget(ino, count)
        self.kernel_stale.clear()

    @rule()
    def kernel_revalidates(self) -> None:
        """getattr of every node id the kernel holds answers (an errno at worst)."""
        for ino in sorted(self.kernel_refs):
            attr, err = outcome(self.engine.getattr, ino)
            expect({0, errno.ENOENT, errno.ESTALE}, err, f"getattr of held node id {ino}")
            if err == 0:
                assert stat.S_IFMT(attr.mode) == self.kernel_types[ino], \
                    f"node id {ino} changed type under the kernel"

    # -- another client -----------------------------------------------------------------
    @rule(data=st.data(), payload=small_bytes, new_dir=st.none() | names,
          link_to=st.none() | targets)
    def other_client_puts(self, data: st.DataObject, payload: bytes, new_dir: str | None,
                          link_to: bytes | None) -> None:
        """A new object (a file, or an s3fs-style symlink), possibly in a directory that
        exists only as its prefix."""
        parent = self.pick_parent(data)
        if new_dir is not None:
            if depth(parent) >= MAX_PARENT_DEPTH:
                return
            parent = join(parent, new_dir)
            if parent in self.entries:
                return
        path = join(parent, data.draw(names, label="name"))
        if path in self.entries:
            return
        if link_to is None:
            self.store.put(path, payload, {})
            self.entries[path] = MFile(payload, payload, 0o644)
        else:
            self.store.put(path, link_to, {"mode": str(stat.S_IFLNK | 0o777)})
            self.entries[path] = MLink(link_to)
        if new_dir is not None:
            self.entries[parent] = MDir(0o755)
        attr = self.lookup(path)
        if link_to is None:
            assert stat.S_ISREG(attr.mode) and attr.size == len(payload)
        else:
            assert stat.S_ISLNK(attr.mode)

    def closed_objects(self) -> list[str]:
        return sorted(p for p, e in self.entries.items()
                      if isinstance(e, MLink) or (isinstance(e, MFile) and e.handles == 0))

    @precondition(lambda self: self.closed_objects())
    @rule(data=st.data(), payload=small_bytes, link_to=st.none() | targets)
    def other_client_replaces(self, data: st.DataObject, payload: bytes,
                              link_to: bytes | None) -> None:
        """Another client writes a closed file or a symlink anew: a file without
        metadata, or an s3fs-style symlink."""
        path = data.draw(st.sampled_from(self.closed_objects()), label="path")
        if link_to is not None:
            self.store.put(path, link_to, {"mode": str(stat.S_IFLNK | 0o777)})
            self.entries[path] = MLink(link_to)
            assert stat.S_ISLNK(self.lookup(path).mode)
            assert self.engine.readlink(self.ino(path)) == link_to
            return
        self.store.put(path, payload, {})
        self.entries[path] = MFile(payload, payload, 0o644)
        attr = self.lookup(path)
        assert stat.S_ISREG(attr.mode) and attr.size == len(payload)
        assert self.read_through_engine(path) == payload, "open revalidates"

    def forget_deleted_key(self, key: str, path: str) -> None:
        """Another client deletes ``key`` (the object of ``path``, or its marker): the
        entry goes, and so do directories left with no key under their prefix."""
        keys_after = self.store_keys() - {key}
        ancestors = []
        d = parent_of(path)
        while d:
            ancestors.append(d)
            d = parent_of(d)
        for d in ancestors:
            others = [p for p in self.entries if p not in (path, d) and within(p, d)]
            if others and not any(k.startswith(d + "/") for k in keys_after):
                return  # only unstored files would be left: not modelled
        self.store.delete(key)
        del self.entries[path]
        for d in ancestors:
            if not self.children(d) and not any(k.startswith(d + "/") for k in keys_after):
                del self.entries[d]
        _, err = outcome(self.lookup, path)
        expect({errno.ENOENT}, err, f"lookup of {path!r} after another client deleted it")

    @precondition(lambda self: self.closed_objects())
    @rule(data=st.data())
    def other_client_deletes(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.closed_objects()), label="path")
        self.forget_deleted_key(path, path)

    def empty_dirs(self) -> list[str]:
        return [p for p in self.paths(MDir) if not self.children(p)]

    @precondition(lambda self: self.empty_dirs())
    @rule(data=st.data())
    def other_client_removes_empty_dir(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(self.empty_dirs()), label="dir")
        self.forget_deleted_key(path + "/", path)

    # -- what is stored ---------------------------------------------------------------
    @invariant()
    def store_matches_model(self) -> None:
        keys = self.store_keys()
        allowed: set[str] = set()
        for path, entry in self.entries.items():
            if path == "":
                continue
            if isinstance(entry, MDir):
                allowed.add(path + "/")
                if not self.children(path):
                    assert path + "/" in keys, f"empty directory {path!r} has no marker"
                assert any(k.startswith(path + "/") for k in keys), \
                    f"directory {path!r} has no key under its prefix"
                if path + "/" in keys:
                    meta = self.store.head(path + "/").metadata
                    if "mode" in meta:
                        assert int(meta["mode"]) == stat.S_IFDIR | entry.mode, \
                            f"mode on the marker of {path!r}"
            elif isinstance(entry, MLink):
                allowed.add(path)
                assert path in keys, f"symlink {path!r} is not stored"
                assert self.store.get(path) == entry.target, f"target of {path!r}"
            else:
                if entry.stored is None:
                    assert path not in keys, f"{path!r} is stored before its first close"
                    continue
                allowed.add(path)
                assert path in keys, f"file {path!r} is not stored"
                assert self.store.get(path) == entry.stored, f"bytes of {path!r}"
                if entry.handles == 0:
                    assert entry.stored == entry.data
                    meta = self.store.head(path).metadata
                    stored_mode = int(meta["mode"]) if "mode" in meta else None
                    assert stored_mode in (stat.S_IFREG | entry.mode,
                                           None if entry.mode == 0o644 else -1), \
                        f"mode of {path!r} in the store"
        extra = keys - allowed
        assert not extra, f"keys the model does not know: {sorted(extra)}"


EngineModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=30,
    deadline=None,
    database=None,  # nothing written into the working tree; failures print their steps
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineModel = EngineModel.TestCase


class CachedEngineModel(EngineModel):
    """The same with long-lived caches and no other client: whatever the caches (names,
    listings, attributes, the object cache) answer must be exactly what this engine's
    own changes made."""

    TTL = 3600.0

    # Not rules here: no other client.
    def other_client_puts(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not a rule")

    def other_client_replaces(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not a rule")

    def other_client_deletes(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not a rule")

    def other_client_removes_empty_dir(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("not a rule")


CachedEngineModel.TestCase.settings = EngineModel.TestCase.settings
TestCachedEngineModel = CachedEngineModel.TestCase


class SplicedEngineModel(EngineModel):
    """The same with blocks and parts of a few bytes, so that files span many parts and
    changes are stored as copied and sent parts (partial writes); files are fetched by
    block, never whole at open, so that what is not here must be fetched right."""

    BLOCK_SIZE = 3
    PART_SIZE = 5
    WHOLE_FILE_SIZE = 0


SplicedEngineModel.TestCase.settings = EngineModel.TestCase.settings
TestSplicedEngineModel = SplicedEngineModel.TestCase
