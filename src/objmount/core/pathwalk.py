"""Resolving a whole path to an inode, as the kernel does for a FUSE mount.

Under FUSE the kernel walks paths and asks the engine one name at a time; the
interception daemon gets whole paths from its shims and walks them here, with the same
engine calls (lookup, readlink), so both front ends see one namespace. The walk follows
symlinks (at most 40, like Linux), handles ``.`` and ``..``, checks search permission on
every directory it passes, and reports when the path leaves the namespace: through
``..`` above the root, or through a symlink whose absolute target lies elsewhere.
"""

from __future__ import annotations

import errno
import stat
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Attr
from objmount.errors import FsError

MAX_SYMLINKS = 40


class Lookups(Protocol):
    def lookup(self, parent_ino: int, raw: bytes) -> Attr: ...

    def getattr(self, ino: int) -> Attr: ...

    def readlink(self, ino: int) -> bytes: ...


@dataclass(frozen=True)
class Found:
    """What a path names: its attributes, where it sits, and its canonical path."""

    attr: Attr
    parent: Attr | None  # None for the root
    name: bytes  # the last component (b"" for the root)
    components: tuple[bytes, ...]  # canonical path from the root, symlinks resolved

    @property
    def ino(self) -> int:
        return self.attr.ino


@dataclass(frozen=True)
class Parent:
    """The directory a new name is to be made in, and that name (not looked up)."""

    attr: Attr
    name: bytes
    components: tuple[bytes, ...]  # of the directory


@dataclass(frozen=True)
class Escaped:
    """The path leaves the namespace. ``target`` is an absolute symlink target to go on
    from, or None for ``..`` above the root; ``rest`` are the components after it."""

    target: bytes | None
    rest: tuple[bytes, ...]


class PathWalker:
    def __init__(self, fs: Lookups, *,
                 inside: Callable[[bytes], list[bytes] | None],
                 may_search: Callable[[Attr], None] = lambda attr: None,
                 on_lookup: Callable[[int], None] = lambda ino: None) -> None:
        """``inside`` maps an absolute symlink target to components of this namespace,
        or None when it points elsewhere. ``may_search`` raises when the caller may not
        pass through a directory. ``on_lookup`` is told of every inode looked up (the
        engine counts lookups, as the kernel's references)."""
        self.fs = fs
        self.inside = inside
        self.may_search = may_search
        self.on_lookup = on_lookup

    def walk(self, path: bytes, *, follow: bool = True) -> Found | Escaped:
        result = self._walk(path, follow=follow, parent_only=False)
        assert not isinstance(result, Parent)
        return result

    def walk_parent(self, path: bytes) -> Parent | Escaped:
        """The directory that holds the last component, which is not resolved."""
        result = self._walk(path, follow=False, parent_only=True)
        assert not isinstance(result, Found)
        return result

    def _walk(self, path: bytes, *, follow: bool, parent_only: bool
              ) -> Found | Parent | Escaped:
        must_be_dir = path.endswith(b"/") and path.strip(b"/") != b""
        todo = deque(c for c in path.split(b"/") if c not in (b"", b"."))
        # Each step: (attributes, name); the root's name is empty.
        stack: list[tuple[Attr, bytes]] = [(self.fs.getattr(ROOT_INO), b"")]
        links = 0
        while todo:
            name = todo.popleft()
            if name == b"..":
                if len(stack) == 1:
                    return Escaped(None, tuple(todo))
                stack.pop()
                continue
            dir_attr = stack[-1][0]
            if not stat.S_ISDIR(dir_attr.mode):
                raise FsError(errno.ENOTDIR)
            if parent_only and not todo:
                self.may_search(dir_attr)
                return Parent(dir_attr, name, tuple(n for _, n in stack[1:]))
            self.may_search(dir_attr)
            attr = self.fs.lookup(dir_attr.ino, name)
            self.on_lookup(attr.ino)
            if stat.S_ISLNK(attr.mode) and (todo or follow or must_be_dir):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FsError(errno.ELOOP)
                target = self.fs.readlink(attr.ino)
                parts = [c for c in target.split(b"/") if c not in (b"", b".")]
                if target.startswith(b"/"):
                    inside = self.inside(target)
                    if inside is None:
                        return Escaped(target, tuple(todo))
                    stack = stack[:1]
                    parts = inside
                todo.extendleft(reversed(parts))
                continue
            stack.append((attr, name))
        if parent_only:
            # The path named the root (or ended in '..'): there is no new name to make.
            raise FsError(errno.EEXIST)
        attr, name = stack[-1]
        if must_be_dir and not stat.S_ISDIR(attr.mode):
            raise FsError(errno.ENOTDIR)
        parent = stack[-2][0] if len(stack) > 1 else None
        return Found(attr, parent, name, tuple(n for _, n in stack[1:]))
