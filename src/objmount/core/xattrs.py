"""Extended attributes: the ``user.`` namespace (and POSIX ACLs' two names, with
``acls``), kept in the object's metadata in s3fs's ``x-amz-meta-xattr`` form
(metadata.encode_xattrs), so s3fs sees them and they travel with every copy, rename and
upload of the object like its mode and times.

Other namespaces (``security.``, ``trusted.``, ACLs without ``acls``) are not stored:
reading one is ENODATA, with no request, so ``ls -l`` asking each file for its SELinux
label and ACL costs nothing; setting one is EOPNOTSUPP.
"""

from __future__ import annotations

import errno
import stat

from objmount.core.metadata import Attr, encode
from objmount.errors import FsError

USER_PREFIX = "user."
# POSIX ACLs, stored when asked for (acls.py): access, default.
ACL_NAMES = ("system.posix_acl_access", "system.posix_acl_default")
# S3 allows 2 KiB of user metadata per object (names and values), the attributes
# objmount keeps there included.
METADATA_MAX = 2048
# Characters s3fs's parser cannot take in a name.
_UNSTORABLE = frozenset('",\\:')


def stored_name(raw: bytes, acls: bool = False) -> str | None:
    """The name if it is one objmount stores; None for a namespace it does not."""
    name = raw.decode("utf-8", "surrogateescape")
    return name if name.startswith(USER_PREFIX) or (acls and name in ACL_NAMES) else None


def value_of(attr: Attr, raw: bytes, acls: bool = False) -> bytes:
    name = stored_name(raw, acls)
    for key, value in attr.xattrs if name is not None else ():
        if key == name:
            return value
    raise FsError(errno.ENODATA)


def names_of(attr: Attr, acls: bool = False) -> list[bytes]:
    return [name.encode("utf-8", "surrogateescape") for name, _ in attr.xattrs
            if stored_name(name.encode("utf-8", "surrogateescape"), acls) is not None]


def with_value(attr: Attr, raw: bytes, value: bytes) -> Attr:
    """``attr`` with ``raw`` set to ``value``, checked as the kernel's file systems do."""
    name = stored_name(raw)
    if name is None:
        raise FsError(errno.EOPNOTSUPP, "only user.* extended attributes are stored")
    if name == USER_PREFIX or _UNSTORABLE & set(name):
        raise FsError(errno.EINVAL, f'a name with none of {"".join(sorted(_UNSTORABLE))}')
    _user_xattrs_allowed(attr)
    return with_stored(attr, name, value)


def with_stored(attr: Attr, name: str, value: bytes | None) -> Attr:
    """``attr`` with xattr ``name`` set to ``value`` (None: removed), if it fits."""
    changed = dict(attr.xattrs)
    if value is None:
        changed.pop(name, None)
    else:
        changed[name] = value
    return _checked(attr.with_(xattrs=tuple(sorted(changed.items()))))


def without(attr: Attr, raw: bytes, acls: bool = False) -> Attr:
    value_of(attr, raw, acls)  # ENODATA if absent
    name = stored_name(raw, acls)
    assert name is not None
    if name.startswith(USER_PREFIX):
        _user_xattrs_allowed(attr)
    return with_stored(attr, name, None)


def _user_xattrs_allowed(attr: Attr) -> None:
    # Linux allows user.* only on regular files and directories.
    if not (stat.S_ISREG(attr.mode) or stat.S_ISDIR(attr.mode)):
        raise FsError(errno.EPERM, "user.* extended attributes need a file or directory")


def _checked(attr: Attr) -> Attr:
    used = sum(len(k) + len(v) for k, v in encode(attr).items())
    if used > METADATA_MAX:
        raise FsError(errno.ENOSPC, f"the object's metadata would take {used} bytes: S3 "
                      f"keeps at most {METADATA_MAX}")
    return attr
