"""POSIX ACLs in the kernel's xattr form: parsing, the mode they give, chmod, inheritance
(the rules of Linux's posix_acl.c, which setfacl and the kernel's checks expect)."""

from __future__ import annotations

import errno
import stat

import pytest

from objmount.core import acls
from objmount.core.acls import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ
from objmount.core.metadata import Attr
from objmount.errors import FsError

NO_ID = 0xFFFFFFFF
NAMED = [(USER_OBJ, 7, NO_ID), (USER, 6, 1000), (GROUP_OBJ, 5, NO_ID), (GROUP, 4, 50),
         (MASK, 6, NO_ID), (OTHER, 0, NO_ID)]


def file_attr(mode: int, xattrs: tuple[tuple[str, bytes], ...] = ()) -> Attr:
    return Attr(1, stat.S_IFREG | mode, 0, 0, 0, 0, 0, 0, xattrs=xattrs)


def test_parse_round_trips_and_refuses_what_is_not_an_acl() -> None:
    assert acls.parse(acls.encode(NAMED)) == NAMED
    for bad in (b"", b"\x02\x00\x00\x00\x01", acls.encode(NAMED)[:-8],  # no other
                acls.encode([e for e in NAMED if e[0] != MASK]),  # named, no mask
                b"\x03" + acls.encode(NAMED)[1:]):  # version 3
        with pytest.raises(FsError) as info:
            acls.parse(bad)
        assert info.value.errno == errno.EINVAL


def test_the_mode_shows_the_mask_and_chmod_sets_it() -> None:
    assert acls.mode_bits(NAMED) == 0o760
    changed = acls.with_mode(NAMED, 0o640)
    assert dict((t, p) for t, p, _ in changed) == {
        USER_OBJ: 6, USER: 6, GROUP_OBJ: 5, GROUP: 4, MASK: 4, OTHER: 0}


def test_setfacl_sets_the_mode_and_a_minimal_acl_is_not_kept() -> None:
    attr = acls.set_on(file_attr(0o644), acls.ACCESS, acls.encode(NAMED))
    assert stat.S_IMODE(attr.mode) == 0o760 and dict(attr.xattrs)[acls.ACCESS]
    minimal = [(USER_OBJ, 6, NO_ID), (GROUP_OBJ, 0, NO_ID), (OTHER, 0, NO_ID)]
    attr = acls.set_on(attr, acls.ACCESS, acls.encode(minimal))
    assert stat.S_IMODE(attr.mode) == 0o600 and attr.xattrs == ()
    with pytest.raises(FsError) as info:
        acls.set_on(attr, acls.DEFAULT, acls.encode(NAMED))
    assert info.value.errno == errno.EACCES  # a default ACL is a directory's


def test_a_new_entry_gets_the_default_acl_limited_by_its_mode() -> None:
    directory = Attr(1, stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0,
                     xattrs=((acls.DEFAULT, acls.encode(NAMED)),))
    mode, made = acls.for_new_entry(directory, 0o644, 0o077, is_dir=False)
    assert mode == 0o640  # the umask (077) does not apply; the ACL's bits do
    access = acls.parse(dict(made)[acls.ACCESS])
    assert dict((t, p) for t, p, _ in access)[MASK] == 4 and acls.DEFAULT not in dict(made)
    mode, made = acls.for_new_entry(directory, 0o777, 0o077, is_dir=True)
    assert mode == 0o760 and acls.parse(dict(made)[acls.DEFAULT]) == NAMED
    plain = Attr(1, stat.S_IFDIR | 0o755, 0, 0, 0, 0, 0, 0)
    assert acls.for_new_entry(plain, 0o666, 0o022, is_dir=False) == (0o644, ())
