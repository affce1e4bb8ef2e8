"""Exceptions of every layer, and the one table that turns them into errno values.

Layers raise their own exception types; only the frontends call :func:`to_errno`.

    ObjmountError
    ├── StoreError                 (store/: the object store said no or could not be reached)
    │   ├── NoSuchKey
    │   ├── NoSuchBucket
    │   ├── AccessDenied           (wrong credentials, missing permission)
    │   ├── PreconditionFailed     (ETag changed under us)
    │   └── TransientStoreError    (throttling, 5xx, connection errors: retried first)
    │       └── StoreUnavailable   (retries exhausted / server down)
    ├── FsError                    (core/: a POSIX-level refusal, carries its errno)
    └── ConfigError                (bad configuration, reported before anything starts)
"""

from __future__ import annotations

import errno


class ObjmountError(Exception):
    """Base of every error objmount raises on purpose."""


class ConfigError(ObjmountError):
    """The configuration cannot work (missing endpoint, unreadable profile...)."""


class StoreError(ObjmountError):
    """The object store refused a request or could not be reached."""


class NoSuchKey(StoreError):
    pass


class NoSuchBucket(StoreError):
    pass


class AccessDenied(StoreError):
    pass


class PreconditionFailed(StoreError):
    pass


class NotSupported(StoreError):
    """The store does not implement the request (HTTP 501 NotImplemented)."""


class TransientStoreError(StoreError):
    """Worth retrying: throttling, server errors, dropped connections."""


class StoreUnavailable(TransientStoreError):
    """Retries were exhausted; the store is down or unreachable."""


class FsError(ObjmountError):
    """A POSIX-level refusal decided by the engine."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(err, str(err)))
        self.errno = err


# The one errno table. Judgement calls are commented.
_STORE_ERRNO: dict[type[StoreError], int] = {
    NoSuchKey: errno.ENOENT,
    # The bucket vanished under a mount: the files in it are gone.
    NoSuchBucket: errno.ENOENT,
    AccessDenied: errno.EACCES,
    # Someone replaced the object while we held it open: NFS says ESTALE.
    PreconditionFailed: errno.ESTALE,
    # A store we cannot reach is an I/O error, as for a dead disk.
    StoreUnavailable: errno.EIO,
    TransientStoreError: errno.EIO,
}


def to_errno(exc: BaseException) -> int:
    """Map any exception raised below a frontend to the errno the caller sees."""
    if isinstance(exc, FsError):
        return exc.errno
    for cls in type(exc).__mro__:
        if cls in _STORE_ERRNO:
            return _STORE_ERRNO[cls]
    if isinstance(exc, OSError) and exc.errno:
        # Local cache file trouble: ENOSPC on a full cache disk must reach the caller as is.
        return exc.errno
    return errno.EIO
