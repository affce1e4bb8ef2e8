"""POSIX attributes <-> object user metadata, in the headers s3fs-fuse uses.

``x-amz-meta-mode`` is the full st_mode in decimal; ``-uid``/``-gid`` decimal;
``-mtime``/``-ctime``/``-atime`` are seconds with an optional ``.nnnnnnnnn``. rclone's
float ``mtime`` (the same header, fewer or more digits) is read as well.
"""

from __future__ import annotations

import base64
import binascii
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from objmount.store.base import ObjectInfo

DIR_CONTENT_TYPE = "application/x-directory"
# Also a directory when an object of this type has no slash: older s3fs, Apache.
_DIR_CONTENT_TYPES = (DIR_CONTENT_TYPE, "httpd/unix-directory")


def is_dir_object(info: ObjectInfo) -> bool:
    """An empty object ``dir`` (no slash) whose Content-Type says it is a directory."""
    return (info.size == 0 and not info.key.endswith("/")
            and info.content_type.split(";")[0].strip().lower() in _DIR_CONTENT_TYPES)


_NS = 1_000_000_000


# Extended attributes: (name, value) pairs, sorted by name.
Xattrs = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Attr:
    ino: int
    mode: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    nlink: int = 1
    rdev: int = 0  # device number of a character or block special file
    # Extended attributes, sorted by name (s3fs's x-amz-meta-xattr).
    xattrs: Xattrs = ()
    # Hard links (hardlinks.py): the group's id, and the keys of all its names in the
    # bucket; () for a file with one name.
    link_id: str = ""
    links: tuple[str, ...] = ()

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def with_(self, **changes: Any) -> Attr:
        return replace(self, **changes)


@dataclass(frozen=True)
class Defaults:
    """What objects written by other tools, with no metadata, are shown with."""

    uid: int
    gid: int
    file_mode: int = 0o644
    dir_mode: int = 0o755


def parse_time(value: str | None) -> int | None:
    """'1700000000', '1700000000.5' or '1700000000.123456789' -> nanoseconds."""
    if not value:
        return None
    text = value.strip()
    sign = -1 if text.startswith("-") else 1
    whole, _, frac = text.lstrip("+-").partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(whole) > 12:
        return None
    ns = sign * (int(whole) * _NS + int((frac + "000000000")[:9]))
    # Not a time a 64-bit count of nanoseconds holds (after 2262): not a time at all.
    return ns if -(1 << 63) <= ns < (1 << 63) else None


def format_time(ns: int) -> str:
    sec, frac = divmod(ns, _NS)
    return f"{sec}.{frac:09d}" if frac else str(sec)


_MODE_MAX = 0o177777
_ID_MAX = 0xFFFFFFFE  # 0xFFFFFFFF is (uid_t)-1, "no owner", in chown


def _int(value: str | None, highest: int) -> int | None:
    """The number in ``value`` if it is one from 0 to ``highest``: metadata written by
    other tools may hold anything, and a value the kernel cannot take must not reach it."""
    if value is None:
        return None
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if 0 <= number <= highest else None


def encode(attr: Attr) -> dict[str, str]:
    meta = {
        "mode": str(attr.mode),
        "uid": str(attr.uid),
        "gid": str(attr.gid),
        "atime": format_time(attr.atime_ns),
        "mtime": format_time(attr.mtime_ns),
        "ctime": format_time(attr.ctime_ns),
    }
    if attr.rdev:
        meta["rdev"] = str(attr.rdev)  # as s3fs writes a device's number
    if attr.xattrs:
        meta["xattr"] = encode_xattrs(attr.xattrs)
    if attr.link_id and len(attr.links) > 1:
        meta[LINK_ID_HEADER] = attr.link_id
        meta[LINK_NAMES_HEADER] = encode_links(attr.links)
    return meta


# Hard links: every name's object carries the group's id and the keys of all names.
LINK_ID_HEADER = "objmount-link"
LINK_NAMES_HEADER = "objmount-names"
_LINK_ID_MAX = 64


def encode_links(keys: tuple[str, ...]) -> str:
    """Keys URL-encoded (UTF-8, nothing left unescaped but letters, digits and _.-~),
    joined by commas: ASCII, as a header value must be."""
    return ",".join(urllib.parse.quote(k, safe="") for k in keys)


def parse_links(link_id: str | None, names: str | None) -> tuple[str, tuple[str, ...]]:
    """(id, keys) of a hard-link group from stored metadata; ("", ()) when there is none
    or it does not parse (another tool's garbage is no group)."""
    if not link_id or not names or len(link_id) > _LINK_ID_MAX or not link_id.isalnum():
        return "", ()
    keys = tuple(dict.fromkeys(urllib.parse.unquote(k, errors="surrogateescape")
                               for k in names.split(",") if k))
    return (link_id, keys) if len(keys) > 1 else ("", ())


def encode_xattrs(xattrs: tuple[tuple[str, bytes], ...]) -> str:
    """s3fs's form: the URL-encoded text {"name":"base64 of the value",...}."""
    text = "{" + ",".join(f'"{name}":"{base64.b64encode(value).decode()}"'
                          for name, value in xattrs) + "}"
    return urllib.parse.quote(text, safe="")


def parse_xattrs(stored: str | None) -> tuple[tuple[str, bytes], ...]:
    """The extended attributes in an ``x-amz-meta-xattr`` value; pairs that do not
    parse (another tool's garbage) are left out."""
    if not stored:
        return ()
    text = urllib.parse.unquote(stored).strip()
    if not (text.startswith("{") and text.endswith("}")):
        return ()
    found: dict[str, bytes] = {}
    for pair in text[1:-1].split(","):
        name, colon, value = pair.partition(":")
        name, value = name.strip().strip('"'), value.strip().strip('"')
        if not colon or not name:
            continue
        try:
            found[name] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
    return tuple(sorted(found.items()))


# Types stored as an empty object whose mode says the type (as s3fs does): the kernel
# gives FIFOs, sockets and devices their behaviour; the store only keeps the inode.
SPECIAL_TYPES = frozenset({stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK})
_RDEV_MAX = (1 << 64) - 1


# No symlink target is this long (PATH_MAX counts its NUL): a larger object is a file,
# whatever its metadata says, so a listing alone tells its type.
SYMLINK_MAX = 4096


def with_times(attr: Attr, stored: Mapping[str, str]) -> Attr:
    """``attr`` with the times that ``stored`` metadata (as :func:`encode` wrote it) has."""
    times = {name: parse_time(stored.get(key)) for name, key in
             (("atime_ns", "atime"), ("mtime_ns", "mtime"), ("ctime_ns", "ctime"))}
    return attr.with_(**{name: ns for name, ns in times.items() if ns is not None})


def decode(ino: int, info: ObjectInfo, defaults: Defaults, *, is_dir: bool) -> Attr:
    """Attributes of an object (or of a directory's marker) as objmount shows them."""
    meta = info.metadata
    mode = _int(meta.get("mode"), _MODE_MAX)
    if is_dir:
        perms = stat.S_IMODE(mode) if mode is not None else defaults.dir_mode
        mode = stat.S_IFDIR | perms
    elif mode is not None and stat.S_ISLNK(mode) and info.size < SYMLINK_MAX:
        mode = stat.S_IFLNK | 0o777
    elif mode is not None and stat.S_IFMT(mode) in SPECIAL_TYPES and info.size == 0:
        mode = stat.S_IFMT(mode) | stat.S_IMODE(mode)
    else:
        # Type bits of no type objmount knows, or a special file with bytes (not one a
        # tool like ours wrote): a regular file, so that no byte is hidden.
        perms = stat.S_IMODE(mode) if mode is not None else defaults.file_mode
        mode = stat.S_IFREG | perms
    mtime = parse_time(meta.get("mtime")) or info.mtime_ns
    ctime = parse_time(meta.get("ctime")) or mtime
    atime = parse_time(meta.get("atime")) or mtime
    uid = _int(meta.get("uid"), _ID_MAX)
    gid = _int(meta.get("gid"), _ID_MAX)
    # A group must name this very object: a copy made by another tool (metadata and
    # all) is a file of its own, not a name of the group.
    link_id, links = ("", ()) if is_dir else parse_links(meta.get(LINK_ID_HEADER),
                                                         meta.get(LINK_NAMES_HEADER))
    if info.key not in links:
        link_id, links = "", ()
    return Attr(
        ino=ino,
        mode=mode,
        uid=defaults.uid if uid is None else uid,
        gid=defaults.gid if gid is None else gid,
        size=0 if is_dir else info.size,
        atime_ns=atime,
        mtime_ns=mtime,
        ctime_ns=ctime,
        nlink=2 if is_dir else max(1, len(links)),
        rdev=(_int(meta.get("rdev"), _RDEV_MAX) or 0) if stat.S_ISCHR(mode)
        or stat.S_ISBLK(mode) else 0,
        xattrs=parse_xattrs(meta.get("xattr")),
        link_id=link_id,
        links=links,
    )
