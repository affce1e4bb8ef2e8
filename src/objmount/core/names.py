"""File names <-> key segments, validated once at the boundary.

A key segment is shown as a file name only when it is a valid POSIX name; keys that
cannot be (empty segments from ``//``, ``.``/``..``, over 255 bytes, NUL) are hidden,
never mapped to something else, so nothing can escape the mounted prefix.
"""

from __future__ import annotations

import errno

from objmount.errors import FsError

NAME_MAX = 255
KEY_MAX = 1024  # S3's limit, in UTF-8 bytes


def shown_name(segment: str) -> str | None:
    """The file name a key segment is shown as, or None if it cannot be a POSIX name."""
    if segment in ("", ".", "..") or "\0" in segment or "/" in segment:
        return None
    if len(segment.encode("utf-8", "surrogatepass")) > NAME_MAX:
        return None
    return segment


def valid_name(raw: bytes) -> str:
    """A name a program asked for, as a key segment; raises FsError if it cannot be one."""
    if len(raw) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG)
    if raw in (b"", b".", b"..") or b"/" in raw or b"\0" in raw:
        raise FsError(errno.EINVAL)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # S3 keys are UTF-8: a name that is not cannot be stored faithfully.
        raise FsError(errno.EILSEQ) from None


def join_key(parent: str, name: str, *, directory: bool = False) -> str:
    """The key of ``name`` in ``parent``; ENAMETOOLONG past S3's limit (a directory's
    marker ``key/`` needs one byte more)."""
    key = f"{parent}/{name}" if parent else name
    if len(key.encode()) > KEY_MAX - (1 if directory else 0):
        raise FsError(errno.ENAMETOOLONG)
    return key


def dir_prefix(key: str) -> str:
    """The listing prefix of a directory key ('' for a bucket root)."""
    return f"{key}/" if key else ""
