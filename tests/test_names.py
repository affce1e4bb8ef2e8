"""Names are validated once; keys that cannot be POSIX names are hidden, never mangled."""

from __future__ import annotations

import errno

import pytest

from objmount.core.names import join_key, shown_name, valid_name
from objmount.errors import FsError


@pytest.mark.parametrize("segment", ["", ".", "..", "a\0b", "x" * 256, "é" * 128])
def test_unshowable_segments(segment: str) -> None:
    assert shown_name(segment) is None


@pytest.mark.parametrize("segment", ["a", "naïve ü.txt", "q?x#y", "pct%41", "x" * 255, " "])
def test_showable_segments(segment: str) -> None:
    assert shown_name(segment) == segment


@pytest.mark.parametrize(("raw", "err"), [
    (b"", errno.EINVAL), (b".", errno.EINVAL), (b"..", errno.EINVAL), (b"a/b", errno.EINVAL),
    (b"x" * 256, errno.ENAMETOOLONG), (b"\xff\xfe", errno.EILSEQ),
])
def test_invalid_names(raw: bytes, err: int) -> None:
    with pytest.raises(FsError) as info:
        valid_name(raw)
    assert info.value.errno == err


def test_key_length_limit() -> None:
    deep = "/".join(["d" * 200] * 5)
    with pytest.raises(FsError) as info:
        join_key(deep, "f" * 100)
    assert info.value.errno == errno.ENAMETOOLONG
    assert join_key("", "a") == "a"
    assert join_key("p/q", "a") == "p/q/a"
    # A file's key may take all 1024 bytes; a directory's marker needs one more.
    parent = "/".join(["d" * 250] * 4)
    assert len(join_key(parent, "f" * 20).encode()) == 1024
    with pytest.raises(FsError):
        join_key(parent, "f" * 20, directory=True)
