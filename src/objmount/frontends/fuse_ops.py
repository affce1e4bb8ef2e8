"""pyfuse3 adapter: each handler runs one engine call in a worker thread and maps errors
through the one errno table. No file-system logic lives here."""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import stat
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pyfuse3
import trio

from objmount.core import xattrs
from objmount.core.engine import Engine
from objmount.core.metadata import Attr, Xattrs
from objmount.errors import NoSuchBucket, ObjmountError, to_errno

log = logging.getLogger(__name__)
T = TypeVar("T")

# Worker threads: one blocking engine call each (store I/O releases the GIL).
_LIMITER = trio.CapacityLimiter(64)


_bucket_warned = 0.0


def _warn_bucket_gone(exc: NoSuchBucket) -> None:
    """The bucket was deleted while mounted: every operation fails (ENOENT) until it
    exists again. Said in the log once a minute, not once per operation."""
    global _bucket_warned
    now = time.monotonic()
    if now - _bucket_warned > 60:
        _bucket_warned = now
        log.warning("the bucket is gone (%s): operations give ENOENT until it exists again",
                    exc)


def entry(attr: Attr, timeout: float, attr_known: bool = True) -> pyfuse3.EntryAttributes:
    """``attr_known``: False for provisional attributes (a listing's): the kernel asks
    for them (getattr) before it uses them, and only then are they fetched."""
    e = pyfuse3.EntryAttributes()
    e.st_ino = attr.ino
    e.st_mode = attr.mode
    e.st_nlink = attr.nlink
    e.st_rdev = attr.rdev
    e.st_uid = attr.uid
    e.st_gid = attr.gid
    e.st_size = attr.size
    e.st_blksize = 512 * 1024
    e.st_blocks = (attr.size + 511) // 512
    e.st_atime_ns = attr.atime_ns
    e.st_mtime_ns = attr.mtime_ns
    e.st_ctime_ns = attr.ctime_ns
    e.entry_timeout = timeout
    e.attr_timeout = timeout if attr_known else 0
    return e


class FuseOperations(pyfuse3.Operations):
    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, engine: Engine, *, xattrs: bool = False) -> None:
        super().__init__()
        self.engine = engine
        # The kernel checks permissions against ACLs (read as xattrs) and we store them.
        self.enable_acl = engine.options.posix_acls
        # Off by default: the kernel then stops asking (ENOSYS), where otherwise ls -l
        # sends two getxattr requests per file (its SELinux label and ACL), 15x the cost
        # of a warm ls -l (doc/CONFIGURATION.md).
        self.xattrs = xattrs
        self.timeout = engine.options.attr_ttl

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            try:
                return fn(*args, **kwargs)
            except NoSuchBucket as exc:
                _warn_bucket_gone(exc)
                raise pyfuse3.FUSEError(to_errno(exc)) from exc
            except ObjmountError as exc:
                log.debug("%s: %s", fn.__name__, exc)
                raise pyfuse3.FUSEError(to_errno(exc)) from exc
            except OSError as exc:
                log.warning("%s: %s", fn.__name__, exc)
                raise pyfuse3.FUSEError(to_errno(exc)) from exc
            except pyfuse3.FUSEError:
                raise
            except Exception as exc:
                log.exception("unexpected error in %s", fn.__name__)
                raise pyfuse3.FUSEError(errno.EIO) from exc
        return await trio.to_thread.run_sync(call, limiter=_LIMITER)

    async def lookup(self, parent_inode: int, name: bytes, ctx: Any) -> pyfuse3.EntryAttributes:
        # Answered here when the caches can (no hop to a worker thread); else there.
        try:
            found = self.engine.lookup_nowait(parent_inode, name)
        except ObjmountError as exc:
            raise pyfuse3.FUSEError(to_errno(exc)) from exc
        if found is None:
            found = await self._run(self.engine.lookup_entry, parent_inode, name)
        attr, known = found
        return entry(attr, self.timeout, known)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.engine.forget(ino, count)

    async def getattr(self, inode: int, ctx: Any) -> pyfuse3.EntryAttributes:
        attr = self.engine.getattr_nowait(inode)
        if attr is None:
            attr = await self._run(self.engine.getattr, inode)
        return entry(attr, self.timeout)

    async def setattr(self, inode: int, attr: Any, fields: Any, fh: int | None,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        kwargs: dict[str, int | None] = {"fh": fh}
        if fields.update_mode:
            kwargs["mode"] = attr.st_mode
        if fields.update_uid:
            kwargs["uid"] = attr.st_uid
        if fields.update_gid:
            kwargs["gid"] = attr.st_gid
        if fields.update_size:
            kwargs["size"] = attr.st_size
        if fields.update_atime:
            kwargs["atime_ns"] = attr.st_atime_ns
        if fields.update_mtime:
            kwargs["mtime_ns"] = attr.st_mtime_ns
        result = await self._run(self.engine.setattr, inode, **kwargs)
        return entry(result, self.timeout)

    async def readlink(self, inode: int, ctx: Any) -> bytes:
        return await self._run(self.engine.readlink, inode)

    async def opendir(self, inode: int, ctx: Any) -> int:
        return await self._run(self.engine.opendir, inode)

    async def readdir(self, fh: int, start_id: int, token: Any) -> None:
        entries = await self._run(self.engine.readdir, fh, start_id)
        for e in entries:
            if not pyfuse3.readdir_reply(token, e.name.encode(),
                                         entry(e.attr, self.timeout, e.attr_known), e.offset):
                break
            # readdirplus handed the inode to the kernel: it will forget it later.
            self.engine.remember(e.attr.ino)

    async def releasedir(self, fh: int) -> None:
        self.engine.releasedir(fh)

    async def mkdir(self, parent_inode: int, name: bytes, mode: int,
                    ctx: Any) -> pyfuse3.EntryAttributes:
        mode, inherited = await self._new_mode(parent_inode, mode, ctx, is_dir=True)
        attr = await self._run(self.engine.mkdir, parent_inode, name, mode, ctx.uid, ctx.gid,
                               inherited)
        return entry(attr, self.timeout)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._run(self.engine.rmdir, parent_inode, name)

    async def unlink(self, parent_inode: int, name: bytes, ctx: Any) -> None:
        await self._run(self.engine.unlink, parent_inode, name)

    async def symlink(self, parent_inode: int, name: bytes, target: bytes,
                      ctx: Any) -> pyfuse3.EntryAttributes:
        attr = await self._run(self.engine.symlink, parent_inode, name, target, ctx.uid,
                               ctx.gid)
        return entry(attr, self.timeout)

    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int,
                     name_new: bytes, flags: int, ctx: Any) -> None:
        await self._run(self.engine.rename, parent_inode_old, name_old, parent_inode_new,
                        name_new, flags)

    async def link(self, inode: int, new_parent_inode: int, new_name: bytes,
                   ctx: Any) -> pyfuse3.EntryAttributes:
        attr = await self._run(self.engine.link, inode, new_parent_inode, new_name)
        return entry(attr, self.timeout)

    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int,
                    ctx: Any) -> pyfuse3.EntryAttributes:
        # The kernel checked the caller may (devices: CAP_MKNOD) and serves the FIFO,
        # socket or device itself: only the inode is stored.
        bits, inherited = await self._new_mode(parent_inode, stat.S_IMODE(mode), ctx,
                                               is_dir=False)
        attr = await self._run(self.engine.mknod, parent_inode, name,
                               stat.S_IFMT(mode) | bits, rdev, ctx.uid, ctx.gid, inherited)
        return entry(attr, self.timeout)

    async def _new_mode(self, parent_inode: int, mode: int, ctx: Any, *, is_dir: bool
                        ) -> tuple[int, Xattrs]:
        """The mode (and inherited ACLs) of a new entry: the kernel leaves the umask to
        us, since with ACLs a directory's default ACL replaces it."""
        if not self.engine.options.posix_acls:
            return mode & ~ctx.umask, ()
        return await self._run(self.engine.mode_for_new, parent_inode, mode, ctx.umask,
                               is_dir)

    def _xattrs_on(self) -> None:
        if not self.xattrs:
            raise pyfuse3.FUSEError(errno.ENOSYS)

    async def getxattr(self, inode: int, name: bytes, ctx: Any) -> bytes:
        self._xattrs_on()
        if xattrs.stored_name(name, self.engine.options.posix_acls) is None:
            # ls -l asks every file for its SELinux label and ACL: answered here.
            raise pyfuse3.FUSEError(errno.ENODATA)
        return await self._run(self.engine.getxattr, inode, name)

    async def listxattr(self, inode: int, ctx: Any) -> Sequence[bytes]:
        self._xattrs_on()
        return await self._run(self.engine.listxattr, inode)

    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: Any) -> None:
        self._xattrs_on()
        await self._run(self.engine.setxattr, inode, name, value)

    async def removexattr(self, inode: int, name: bytes, ctx: Any) -> None:
        self._xattrs_on()
        await self._run(self.engine.removexattr, inode, name)

    async def open(self, inode: int, flags: int, ctx: Any) -> pyfuse3.FileInfo:
        fh = await self._run(self.engine.open, inode, flags)
        # Keeping the kernel's page cache makes a re-read of an unchanged file as fast as
        # FUSE allows; a changed one (other ETag) drops it.
        return pyfuse3.FileInfo(fh=fh, keep_cache=self.engine.unchanged_since_last_open(fh))

    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: Any) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        bits, inherited = await self._new_mode(parent_inode, mode, ctx, is_dir=False)
        args = (parent_inode, name, bits, flags, ctx.uid, ctx.gid, inherited)
        try:
            made = self.engine.create_nowait(*args)
        except ObjmountError as exc:
            raise pyfuse3.FUSEError(to_errno(exc)) from exc
        fh, attr = made if made is not None else await self._run(self.engine.create, *args)
        return pyfuse3.FileInfo(fh=fh, keep_cache=False), entry(attr, self.timeout)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        # Cached bytes are read here: a hop to a worker thread would cost more than the
        # read. Anything that may wait (a fetch, a lock held by an upload) goes there.
        try:
            data = self.engine.read_nowait(fh, off, size)
        except OSError:
            data = None  # the worker reports it
        if data is not None:
            return data
        return await self._run(self.engine.read, fh, off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        try:
            written = self.engine.write_nowait(fh, off, buf)
        except (ObjmountError, OSError):
            written = None  # the worker reports it
        if written is not None:
            return written
        return await self._run(self.engine.write, fh, off, buf)

    async def flush(self, fh: int) -> None:
        if not self.engine.flush_nowait(fh):
            await self._run(self.engine.flush, fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        await self._run(self.engine.fsync, fh)

    async def release(self, fh: int) -> None:
        try:
            if self.engine.release_nowait(fh):
                return
        except (ObjmountError, OSError):
            log.exception("release of %d", fh)  # what the worker would have done
            return
        await self._run(self.engine.release, fh)

    async def statfs(self, ctx: Any) -> pyfuse3.StatvfsData:
        s = self.engine.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = s.block_size
        out.f_frsize = s.block_size
        out.f_blocks = s.blocks
        out.f_bfree = s.blocks_free
        out.f_bavail = s.blocks_free
        out.f_files = s.files
        out.f_ffree = s.files_free
        out.f_favail = s.files_free
        out.f_namemax = s.name_max
        return out



def _guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Whatever a handler raises becomes an errno for that one request: an exception that
    escaped to pyfuse3's loop would end the daemon, and every program using the mount
    with it."""
    @functools.wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except ObjmountError as exc:
            raise pyfuse3.FUSEError(to_errno(exc)) from exc
        except Exception as exc:
            log.exception("unexpected error in %s", handler.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from exc
    return guarded


for _name, _handler in list(vars(FuseOperations).items()):
    if inspect.iscoroutinefunction(_handler) and not _name.startswith("_"):
        setattr(FuseOperations, _name, _guarded(_handler))
