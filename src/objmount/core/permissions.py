"""POSIX permission checks, as the kernel makes them for a FUSE mount with
``default_permissions``. The interception daemon has no kernel to ask, so it applies
the same rules to its callers here (root bypasses read and write checks, and may
execute a file when any execute bit is set)."""

from __future__ import annotations

import errno
import stat
from dataclasses import dataclass, field

from objmount.core.metadata import Attr
from objmount.errors import FsError

R_OK = 4
W_OK = 2
X_OK = 1


@dataclass(frozen=True)
class Caller:
    uid: int
    gid: int
    groups: frozenset[int] = field(default_factory=frozenset)

    @property
    def is_root(self) -> bool:
        return self.uid == 0

    def in_group(self, gid: int) -> bool:
        return gid == self.gid or gid in self.groups


def allowed(attr: Attr, caller: Caller, want: int) -> bool:
    if caller.is_root:
        if want & X_OK and not stat.S_ISDIR(attr.mode):
            return bool(attr.mode & 0o111)
        return True
    if caller.uid == attr.uid:
        bits = (attr.mode >> 6) & 7
    elif caller.in_group(attr.gid):
        bits = (attr.mode >> 3) & 7
    else:
        bits = attr.mode & 7
    return bits & want == want


def require(attr: Attr, caller: Caller, want: int) -> None:
    if not allowed(attr, caller, want):
        raise FsError(errno.EACCES)


def require_removable(directory: Attr, victim: Attr, caller: Caller) -> None:
    """Removing or renaming ``victim`` out of ``directory``: write and search on the
    directory, and in a sticky directory only the owner of either may do it."""
    require(directory, caller, W_OK | X_OK)
    if (directory.mode & stat.S_ISVTX and not caller.is_root
            and caller.uid not in (directory.uid, victim.uid)):
        raise FsError(errno.EPERM)


def require_setattr(attr: Attr, caller: Caller, *, mode: int | None, uid: int | None,
                    gid: int | None, size: int | None, times_explicit: bool,
                    times_now: bool) -> int | None:
    """Check a chmod/chown/truncate/utimes; return the mode to store instead of ``mode``
    when the kernel would clear bits (setgid for a non-member), else None."""
    owner = caller.is_root or caller.uid == attr.uid
    if uid is not None and uid != attr.uid and not caller.is_root:
        raise FsError(errno.EPERM)
    if (gid is not None and gid != attr.gid and not caller.is_root
            and (caller.uid != attr.uid or not caller.in_group(gid))):
        raise FsError(errno.EPERM)
    if (uid is not None or gid is not None) and not owner:
        raise FsError(errno.EPERM)
    new_mode = None
    if mode is not None:
        if not owner:
            raise FsError(errno.EPERM)
        group = gid if gid is not None else attr.gid
        if (mode & stat.S_ISGID and not caller.is_root and not caller.in_group(group)
                and not stat.S_ISDIR(attr.mode)):
            new_mode = mode & ~stat.S_ISGID
    if size is not None:
        require(attr, caller, W_OK)
    if times_explicit and not owner:
        raise FsError(errno.EPERM)
    if times_now and not owner and not allowed(attr, caller, W_OK):
        raise FsError(errno.EACCES)
    return new_mode
