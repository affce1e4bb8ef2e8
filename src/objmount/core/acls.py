"""POSIX ACLs (``-o acl`` on the FUSE mount): what the kernel leaves to a file system.

With FUSE_POSIX_ACL the kernel checks permissions against ACLs itself, reading them as
the extended attributes ``system.posix_acl_access`` and ``system.posix_acl_default``;
the file system stores them (here in ``x-amz-meta-xattr``, as s3fs stores them), keeps
the mode in step with the access ACL both ways (setfacl and chmod), and gives a new
entry the ACL its directory's default ACL makes (then without the umask).

The value is the kernel's xattr form: a little-endian u32 version (2), then one
(u16 tag, u16 permissions, u32 id) per entry.
"""

from __future__ import annotations

import errno
import stat
import struct

from objmount.core import xattrs
from objmount.core.metadata import Attr, Xattrs
from objmount.errors import FsError

NAMES = xattrs.ACL_NAMES
ACCESS, DEFAULT = NAMES

_VERSION = 2
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF

Entry = tuple[int, int, int]  # tag, permissions (rwx), id


def parse(value: bytes) -> list[Entry]:
    """The entries of an ACL in xattr form; EINVAL if it is not a valid ACL."""
    if len(value) < _HEADER.size or (len(value) - _HEADER.size) % _ENTRY.size:
        raise FsError(errno.EINVAL, "not a POSIX ACL")
    (version,) = _HEADER.unpack_from(value)
    entries = [_ENTRY.unpack_from(value, off)
               for off in range(_HEADER.size, len(value), _ENTRY.size)]
    tags = [tag for tag, _perm, _id in entries]
    valid = (version == _VERSION
             and all(perm <= 7 for _tag, perm, _id in entries)
             and all(tags.count(t) == 1 for t in (USER_OBJ, GROUP_OBJ, OTHER))
             and tags.count(MASK) <= 1
             and (MASK in tags or not {USER, GROUP} & set(tags))
             and set(tags) <= {USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER})
    if not valid:
        raise FsError(errno.EINVAL, "not a valid POSIX ACL")
    return entries


def encode(entries: list[Entry]) -> bytes:
    return _HEADER.pack(_VERSION) + b"".join(_ENTRY.pack(*e) for e in entries)


def is_minimal(entries: list[Entry]) -> bool:
    """Nothing the mode bits do not say already (then no ACL is stored)."""
    return all(tag in (USER_OBJ, GROUP_OBJ, OTHER) for tag, _perm, _id in entries)


def _perm(entries: list[Entry], tag: int) -> int | None:
    return next((perm for t, perm, _id in entries if t == tag), None)


def mode_bits(entries: list[Entry]) -> int:
    """The permission bits an access ACL gives the mode: the group's are the mask's."""
    group = _perm(entries, MASK)
    if group is None:
        group = _perm(entries, GROUP_OBJ) or 0
    return ((_perm(entries, USER_OBJ) or 0) << 6) | (group << 3) | (_perm(entries, OTHER) or 0)


def with_mode(entries: list[Entry], mode: int) -> list[Entry]:
    """An access ACL after chmod to ``mode``: owner, mask (else owning group) and other
    take the new bits; named entries stay, limited by the mask."""
    group_tag = MASK if _perm(entries, MASK) is not None else GROUP_OBJ
    bits = {USER_OBJ: (mode >> 6) & 7, group_tag: (mode >> 3) & 7, OTHER: mode & 7}
    return [(tag, bits.get(tag, perm), ident) for tag, perm, ident in entries]


def inherited(default: list[Entry], mode: int, directory: bool
              ) -> tuple[int, list[Entry] | None, list[Entry] | None]:
    """(mode, access ACL or None, default ACL or None) of an entry created with ``mode``
    (no umask) in a directory whose default ACL is ``default``: the ACL limited by the
    mode's bits, and the mode by the ACL (the kernel's posix_acl_create)."""
    mask_present = _perm(default, MASK) is not None
    access: list[Entry] = []
    for tag, perm, ident in default:
        if tag == USER_OBJ:
            perm &= (mode >> 6) & 7
        elif tag == OTHER:
            perm &= mode & 7
        elif tag == MASK or (tag == GROUP_OBJ and not mask_present):
            perm &= (mode >> 3) & 7
        access.append((tag, perm, ident))
    new_mode = (mode & ~0o777) | mode_bits(access)
    return (new_mode, None if is_minimal(access) else access,
            list(default) if directory else None)


def set_on(attr: Attr, name: str, value: bytes) -> Attr:
    """``attr`` after setfacl stored ``value`` as ACL ``name``: an access ACL sets the
    mode's permission bits (and is kept only if it says more than they do)."""
    entries = parse(value)
    if name == ACCESS:
        mode = (attr.mode & ~0o777) | mode_bits(entries)
        return xattrs.with_stored(attr.with_(mode=mode), ACCESS,
                                  None if is_minimal(entries) else encode(entries))
    if not stat.S_ISDIR(attr.mode):
        raise FsError(errno.EACCES, "only a directory has a default ACL")
    return xattrs.with_stored(attr, DEFAULT, encode(entries))


def chmod(attr: Attr, mode: int) -> Attr:
    """``attr`` with the permission bits of ``mode``, its access ACL following them."""
    new = attr.with_(mode=stat.S_IFMT(attr.mode) | stat.S_IMODE(mode))
    stored = dict(attr.xattrs).get(ACCESS)
    if stored is None:
        return new
    return xattrs.with_stored(new, ACCESS, encode(with_mode(parse(stored), mode)))


def for_new_entry(directory: Attr, mode: int, umask: int, is_dir: bool
                  ) -> tuple[int, Xattrs]:
    """(mode, ACL xattrs) of an entry created in ``directory`` with ``mode``: its
    default ACL's, or, without one, the umask's."""
    default = dict(directory.xattrs).get(DEFAULT)
    if default is None:
        return mode & ~umask, ()
    new_mode, access, inherited_default = inherited(parse(default), mode, is_dir)
    made = [(ACCESS, encode(access)) if access else None,
            (DEFAULT, encode(inherited_default)) if inherited_default else None]
    return new_mode, tuple(sorted(x for x in made if x is not None))
