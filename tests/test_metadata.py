"""The metadata codec: s3fs's headers, rclone's float mtime, defaults for foreign objects."""

from __future__ import annotations

import stat
import urllib.parse

import pytest

from objmount.core import metadata
from objmount.core.metadata import Attr, Defaults
from objmount.store.base import ObjectInfo

DEFAULTS = Defaults(uid=1000, gid=1000, file_mode=0o644, dir_mode=0o755)
LAST_MODIFIED = 1_600_000_000 * 10**9


def info(meta: dict[str, str], size: int = 3) -> ObjectInfo:
    return ObjectInfo("k", size, '"e"', LAST_MODIFIED, meta)


@pytest.mark.parametrize(("text", "ns"), [
    ("1700000000", 1_700_000_000 * 10**9),
    ("1700000000.5", 1_700_000_000 * 10**9 + 500_000_000),
    ("1700000000.123456789", 1_700_000_000_123_456_789),
    ("1700000000.1234567891234", 1_700_000_000_123_456_789),  # rclone may print more digits
    ("", None),
    ("garbage", None),
    ("17e8", None),
])
def test_parse_time(text: str, ns: int | None) -> None:
    assert metadata.parse_time(text) == ns


def test_format_time_is_s3fs_style() -> None:
    assert metadata.format_time(1_700_000_000 * 10**9) == "1700000000"
    assert metadata.format_time(1_700_000_000_000_000_001) == "1700000000.000000001"


def test_round_trip() -> None:
    attr = Attr(7, stat.S_IFREG | 0o640, 1234, 5678, 3, 1_700_000_000_000_000_001,
                1_700_000_001_000_000_000, 1_700_000_002_500_000_000)
    back = metadata.decode(7, info(metadata.encode(attr)), DEFAULTS, is_dir=False)
    assert back == attr


def test_s3fs_header_values() -> None:
    attr = Attr(1, stat.S_IFREG | 0o644, 0, 0, 0, 0, 10**9, 10**9)
    encoded = metadata.encode(attr)
    assert encoded["mode"] == "33188"  # what s3fs writes for a 0644 regular file
    assert encoded["mtime"] == "1"


def test_foreign_object_gets_defaults() -> None:
    attr = metadata.decode(3, info({}), DEFAULTS, is_dir=False)
    assert attr.mode == stat.S_IFREG | 0o644
    assert (attr.uid, attr.gid) == (1000, 1000)
    assert attr.mtime_ns == LAST_MODIFIED
    d = metadata.decode(3, info({}), DEFAULTS, is_dir=True)
    assert d.mode == stat.S_IFDIR | 0o755


def test_rclone_float_mtime() -> None:
    attr = metadata.decode(3, info({"mtime": "1700000000.25"}), DEFAULTS, is_dir=False)
    assert attr.mtime_ns == 1_700_000_000_250_000_000


def test_symlink_mode_and_odd_types() -> None:
    link = metadata.decode(3, info({"mode": str(stat.S_IFLNK | 0o777)}), DEFAULTS, is_dir=False)
    assert link.is_symlink
    fifo = metadata.decode(3, info({"mode": str(stat.S_IFIFO | 0o600)}, size=0), DEFAULTS,
                           is_dir=False)
    assert fifo.mode == stat.S_IFIFO | 0o600 and fifo.rdev == 0
    device = metadata.decode(3, info({"mode": str(stat.S_IFCHR | 0o620), "rdev": "1025"},
                                     size=0), DEFAULTS, is_dir=False)
    assert (device.mode, device.rdev) == (stat.S_IFCHR | 0o620, 1025)
    assert metadata.encode(device)["rdev"] == "1025"
    assert "rdev" not in metadata.encode(fifo)
    # A "FIFO" with bytes was not written by a tool like ours: a file, no byte hidden.
    with_bytes = metadata.decode(3, info({"mode": str(stat.S_IFIFO | 0o600)}), DEFAULTS,
                                 is_dir=False)
    assert with_bytes.mode == stat.S_IFREG | 0o600
    unknown = metadata.decode(3, info({"mode": str(0o170000 | 0o600)}, size=0), DEFAULTS,
                              is_dir=False)
    assert unknown.mode == stat.S_IFREG | 0o600
    bare = metadata.decode(3, info({"mode": "420"}), DEFAULTS, is_dir=False)  # no type bits
    assert bare.mode == stat.S_IFREG | 0o644


def test_bad_numbers_fall_back_to_defaults() -> None:
    attr = metadata.decode(3, info({"mode": "rw-r", "uid": "x", "gid": ""}), DEFAULTS,
                           is_dir=False)
    assert attr.mode == stat.S_IFREG | 0o644
    assert (attr.uid, attr.gid) == (1000, 1000)


def test_numbers_the_kernel_cannot_take_fall_back_to_defaults() -> None:
    """A uid of 20 digits once ended the FUSE daemon (OverflowError in readdir)."""
    attr = metadata.decode(3, info({"mode": str(1 << 40), "uid": "9" * 20, "gid": "-5",
                                    "mtime": "9" * 40, "atime": "99999999999",
                                    "ctime": "-99999999999"}), DEFAULTS, is_dir=False)
    assert attr.mode == stat.S_IFREG | 0o644
    assert (attr.uid, attr.gid) == (1000, 1000)
    assert attr.mtime_ns == attr.atime_ns == attr.ctime_ns  # the object's own time
    at_limit = metadata.decode(3, info({"uid": "4294967294", "mtime": "9223372035"}),
                               DEFAULTS, is_dir=False)
    assert at_limit.uid == 4294967294 and at_limit.mtime_ns == 9223372035 * 10**9


def test_xattrs_are_kept_in_s3fs_form() -> None:
    attr = metadata.decode(3, info({}), DEFAULTS, is_dir=False).with_(
        xattrs=(("user.a", b"\x00\xff"), ("user.b", b"")))
    stored = metadata.encode(attr)["xattr"]
    # s3fs: the URL-encoded text {"name":"base64",...}
    assert urllib.parse.unquote(stored) == '{"user.a":"AP8=","user.b":""}'
    assert metadata.parse_xattrs(stored) == attr.xattrs
    back = metadata.decode(3, info({"xattr": stored}), DEFAULTS, is_dir=False)
    assert back.xattrs == attr.xattrs
    # Another tool's garbage: the pairs that parse, nothing else, never an error.
    garbage = urllib.parse.quote('{"user.ok":"b2s=","user.bad":"!!!",broken,"":"eA=="}')
    assert metadata.parse_xattrs(garbage) == (("user.ok", b"ok"),)
    assert metadata.parse_xattrs("not json at all") == ()
