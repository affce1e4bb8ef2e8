"""One method per request: resolve the path, check permissions as the kernel would,
call the engine, answer. No file-system semantics live here; they are the engine's,
shared with the FUSE mount."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from objmount.core import permissions
from objmount.core.engine import Engine
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Attr
from objmount.core.pathwalk import Escaped, Found, Parent, PathWalker
from objmount.core.permissions import R_OK, W_OK, X_OK, Caller
from objmount.errors import FsError
from objmount.frontends.intercept import protocol as p
from objmount.frontends.intercept.execcheck import unreachable_reason
from objmount.frontends.intercept.openobjects import OpenObject, OpenObjects
from objmount.frontends.intercept.statpage import StatPage

log = logging.getLogger(__name__)

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
AT_EACCESS = 0x200
NFS_SUPER_MAGIC = 0x6969  # gnulib's fts must not trust directory link counts here
_LISTING_PAGE = 96 * 1024
_EXEC_VERDICT_TTL = 60.0  # seconds; the shim also checks the program is unchanged


@dataclass(frozen=True)
class Answer:
    message: p.Message
    fds: tuple[int, ...] = ()  # sent with the reply
    close: tuple[int, ...] = ()  # ours to close once sent


def ok(*args: p.Arg, fds: tuple[int, ...] = (), close: tuple[int, ...] = ()) -> Answer:
    return Answer(p.reply(0, *args, fd_count=len(fds)), fds, close)


def attr_args(attr: Attr) -> tuple[int, ...]:
    return p.attr_args(attr.ino, attr.mode, attr.nlink, attr.uid, attr.gid, attr.size,
                       attr.atime_ns, attr.mtime_ns, attr.ctime_ns)


def dtype(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return p.DT_DIR
    return p.DT_LNK if stat.S_ISLNK(mode) else p.DT_REG


def canonical(components: tuple[bytes, ...]) -> bytes:
    return b"/" + b"/".join(components)


def normalized(vpath: bytes) -> bytes | None:
    """The path as the stat table keys it, or None when only a walk can tell (``..``)."""
    parts = [c for c in vpath.split(b"/") if c not in (b"", b".")]
    if b".." in parts:
        return None
    return b"/" + b"/".join(parts)


class Args:
    def __init__(self, msg: p.Message) -> None:
        self.values = msg.args

    def integer(self, i: int) -> int:
        value = self.values[i] if i < len(self.values) else None
        if not isinstance(value, int):
            raise p.ProtocolError(f"argument {i} must be an integer")
        return value

    def data(self, i: int) -> bytes:
        value = self.values[i] if i < len(self.values) else None
        if not isinstance(value, bytes):
            raise p.ProtocolError(f"argument {i} must be a byte string")
        return value


@dataclass
class Client:
    """One connected process."""

    caller: Caller
    pid: int
    session: bytes = b""
    root: bytes = b"/objmount"
    hello: bool = False
    listings: dict[bytes, list[tuple[int, int, bytes]]] = field(default_factory=dict)


class Pins:
    """Inodes the daemon's answers refer to stay in the engine's table (the kernel's
    lookup count, under FUSE): one reference each, for the most recent ``capacity``."""

    def __init__(self, engine: Engine, capacity: int = 200_000) -> None:
        self.engine = engine
        self.capacity = capacity
        self._pinned: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def looked_up(self, ino: int) -> None:
        with self._lock:
            if ino in self._pinned:
                self._pinned.move_to_end(ino)
                drop = ino
            else:
                self._pinned[ino] = None
                drop = None
                if len(self._pinned) > self.capacity:
                    drop, _ = self._pinned.popitem(last=False)
        if drop is not None:
            self.engine.forget(drop, 1)


class Handlers:
    def __init__(self, engine: Engine, objects: OpenObjects, page: StatPage, *,
                 shadow_root: Path, exec_cache: Path, version: str, instance: int,
                 st_dev: int, failures: defaultdict[bytes, list[str]]) -> None:
        self.engine = engine
        self.objects = objects
        self.page = page
        self.shadow_root = shadow_root
        self.exec_cache = exec_cache
        self.version = version
        self.instance = instance
        self.st_dev = st_dev
        self.failures = failures
        self.pins = Pins(engine)
        self.attr_ttl = engine.options.attr_ttl
        self.negative_ttl = engine.options.negative_ttl
        self._table: dict[int, Callable[[Client, Args], Answer]] = {
            p.Op.STAT: self.stat, p.Op.OPEN: self.open, p.Op.FSTAT: self.fstat,
            p.Op.FILL: self.fill, p.Op.FLUSH: self.flush, p.Op.DIRTY: self.dirty,
            p.Op.LIST: self.list_dir, p.Op.MKDIR: self.mkdir, p.Op.RMDIR: self.rmdir,
            p.Op.UNLINK: self.unlink, p.Op.RENAME: self.rename, p.Op.SYMLINK: self.symlink,
            p.Op.READLINK: self.readlink, p.Op.SETATTR: self.setattr,
            p.Op.ACCESS: self.access, p.Op.REALPATH: self.realpath, p.Op.CHDIR: self.chdir,
            p.Op.STATFS: self.statfs, p.Op.EXEC: self.exec, p.Op.ADOPT: self.adopt,
            p.Op.LINK: self.link, p.Op.MKNOD: self.mknod,
            p.Op.SESSION_WAIT: self.session_wait, p.Op.XATTR: self.xattr,
        }

    def dispatch(self, client: Client, msg: p.Message) -> Answer:
        handler = self._table.get(msg.op)
        if handler is None:
            return Answer(p.reply(errno.ENOSYS))
        return handler(client, Args(msg))

    # -- resolving --------------------------------------------------------------------------
    def _walker(self, client: Client) -> PathWalker:
        caller = client.caller

        def may_search(attr: Attr) -> None:
            permissions.require(attr, caller, X_OK)

        def inside(target: bytes) -> list[bytes] | None:
            root = client.root
            if target == root or target.startswith(root + b"/"):
                return [c for c in target[len(root):].split(b"/") if c]
            for scheme in (b"s3://", b"s3:/"):
                if target.startswith(scheme):
                    return [b"s3", *(c for c in target[len(scheme):].split(b"/") if c)]
            return None

        return PathWalker(self.engine, inside=inside, may_search=may_search,
                          on_lookup=self.pins.looked_up)

    def _external(self, client: Client, esc: Escaped) -> Answer:
        rest = b"/".join(esc.rest)
        if esc.target is None:
            base = os.path.dirname(client.root.rstrip(b"/")) or b"/"
        else:
            base = esc.target
        local = base.rstrip(b"/") + b"/" + rest if rest else base
        return Answer(p.reply(p.EXTERNAL, local or b"/"))

    def _found(self, client: Client, vpath: bytes, *, follow: bool = True
               ) -> Found | Answer:
        result = self._walker(client).walk(vpath, follow=follow)
        return self._external(client, result) if isinstance(result, Escaped) else result

    def _parent(self, client: Client, vpath: bytes) -> Parent | Answer:
        result = self._walker(client).walk_parent(vpath)
        return self._external(client, result) if isinstance(result, Escaped) else result

    def _live_attr(self, ino: int) -> Attr:
        """Attributes now, with the size and time of an open file as programs left it."""
        attr = self.engine.getattr(ino)
        obj = self.objects.of_inode(ino)
        if obj is not None and obj.writers:
            st = os.fstat(obj.of.fd)
            attr = attr.with_(size=st.st_size, mtime_ns=st.st_mtime_ns)
        return attr

    def _publish(self, path: bytes | None, attr: Attr | None, seen: int) -> None:
        if path is None:
            return
        if attr is not None and not self._publishable(attr):
            return
        self.page.put(path, attr, self.attr_ttl if attr else self.negative_ttl,
                      seen_changes=seen)

    def _publishable(self, attr: Attr) -> bool:
        """Attributes the shim may answer from by path: not those of an open file (its
        size moves under its writers), nor of a file with several names (a change by
        one name would leave the others' entries stale)."""
        inode = self.engine.table.find(attr.ino)
        return (inode is not None and inode.open_file is None
                and (attr.nlink == 1 or stat.S_ISDIR(attr.mode)))

    def _publish_missing(self, client: Client, vpath: bytes, seen: int) -> None:
        """Remember that the name itself is missing, when it is: a stat that followed a
        dangling symlink is ENOENT too, while the link exists."""
        key = normalized(vpath)
        if key is None:
            return
        try:
            parent = self._walker(client).walk_parent(vpath)
            if (isinstance(parent, Escaped)
                    or canonical((*parent.components, parent.name)) != key):
                return  # reached through a symlink: another name may change it
            attr = self.engine.lookup(parent.attr.ino, parent.name)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                self._publish(key, None, seen)
            return
        self.pins.looked_up(attr.ino)  # it exists: the ENOENT came from following it

    def _changed(self, *paths: bytes) -> None:
        with self.page.lock:
            self.page.changed(*paths)

    def object_changed(self, obj: OpenObject) -> None:
        self._changed(obj.vpath)

    # -- attributes -------------------------------------------------------------------------
    def stat(self, client: Client, a: Args) -> Answer:
        vpath, follow = a.data(0), bool(a.integer(1) & p.STAT_FOLLOW)
        seen = self.page.changes
        try:
            found = self._found(client, vpath, follow=follow)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                self._publish_missing(client, vpath, seen)
            raise
        if isinstance(found, Answer):
            return found
        attr = self._live_attr(found.ino)
        if canonical(found.components) == normalized(vpath):
            self._publish(normalized(vpath), attr, seen)
        return ok(*attr_args(attr))

    def fstat(self, client: Client, a: Args) -> Answer:
        obj = self.objects.get(a.integer(0))
        return ok(*attr_args(self._live_attr(obj.inode.ino)))

    def readlink(self, client: Client, a: Args) -> Answer:
        found = self._found(client, a.data(0), follow=False)
        if isinstance(found, Answer):
            return found
        return ok(self.engine.readlink(found.ino))

    def access(self, client: Client, a: Args) -> Answer:
        vpath, mode, flags = a.data(0), a.integer(1), a.integer(2)
        found = self._found(client, vpath, follow=not flags & AT_SYMLINK_NOFOLLOW)
        if isinstance(found, Answer):
            return found
        if mode & 7:
            permissions.require(found.attr, client.caller, mode & 7)
        return ok()

    def realpath(self, client: Client, a: Args) -> Answer:
        found = self._found(client, a.data(0))
        if isinstance(found, Answer):
            return found
        return ok(canonical(found.components))

    def statfs(self, client: Client, a: Args) -> Answer:
        found = self._found(client, a.data(0))
        if isinstance(found, Answer):
            return found
        s = self.engine.statfs()
        return ok(s.block_size, s.blocks, s.blocks_free, s.files, s.files_free, s.name_max,
                  NFS_SUPER_MAGIC)

    def setattr(self, client: Client, a: Args) -> Answer:
        vpath, handle, flags = a.data(0), a.integer(1), a.integer(2)
        mode = a.integer(3) if flags & p.SETATTR_MODE else None
        uid = a.integer(4) if flags & p.SETATTR_UID else None
        gid = a.integer(5) if flags & p.SETATTR_GID else None
        size = a.integer(6) if flags & p.SETATTR_SIZE else None
        now = time.time_ns()
        times: dict[str, int] = {}
        explicit = now_only = False
        for name, bit, sec_i in (("atime_ns", p.SETATTR_ATIME, 7),
                                 ("mtime_ns", p.SETATTR_MTIME, 9)):
            if not flags & bit:
                continue
            sec, nsec = a.integer(sec_i), a.integer(sec_i + 1)
            if nsec == UTIME_OMIT:
                continue
            if nsec == UTIME_NOW:
                times[name] = now
                now_only = True
            else:
                times[name] = sec * 1_000_000_000 + nsec
                explicit = True
        if uid == -1 or uid == 0xFFFFFFFF:
            uid = None
        if gid == -1 or gid == 0xFFFFFFFF:
            gid = None
        fh: int | None = None
        if handle:
            obj, fh = self.objects.live_handle(handle)
            ino, path = obj.inode.ino, obj.vpath
            attr = self.engine.getattr(ino)
        else:
            found = self._found(client, vpath, follow=bool(flags & p.SETATTR_FOLLOW))
            if isinstance(found, Answer):
                return found
            ino, path, attr = found.ino, canonical(found.components), found.attr
        cleared = permissions.require_setattr(
            attr, client.caller, mode=mode, uid=uid, gid=gid, size=size,
            times_explicit=explicit, times_now=now_only)
        if cleared is not None:
            mode = cleared
        if (mode, uid, gid, size) == (None, None, None, None) and not times:
            return ok(*attr_args(self._live_attr(ino)))
        new = self.engine.setattr(ino, mode=mode, uid=uid, gid=gid, size=size, fh=fh,
                                  **times)
        self._sync_cache_times(ino, new)
        self._changed(path)
        return ok(*attr_args(self._live_attr(ino)))

    def xattr(self, client: Client, a: Args) -> Answer:
        """get/set/list/removexattr and their l- and f- forms, as on the FUSE mount."""
        vpath, handle, follow, action = a.data(0), a.integer(1), a.integer(2), a.integer(3)
        name, value, flags = a.data(4), a.data(5), a.integer(6)
        if handle:
            obj, _fh = self.objects.live_handle(handle)
            ino, path, attr = obj.inode.ino, obj.vpath, self.engine.getattr(obj.inode.ino)
        else:
            found = self._found(client, vpath, follow=bool(follow))
            if isinstance(found, Answer):
                return found
            ino, path, attr = found.ino, canonical(found.components), found.attr
        if action == p.XATTR_LIST:
            return ok(b"".join(n + b"\0" for n in self.engine.listxattr(ino)))
        if action == p.XATTR_GET:
            permissions.require(attr, client.caller, R_OK)
            return ok(self.engine.getxattr(ino, name))
        if action not in (p.XATTR_SET, p.XATTR_REMOVE):
            return Answer(p.reply(errno.EINVAL))
        if action == p.XATTR_SET and flags & (os.XATTR_CREATE | os.XATTR_REPLACE):
            try:
                self.engine.getxattr(ino, name)
                exists = True
            except FsError as exc:
                if exc.errno != errno.ENODATA:
                    raise
                exists = False
            if exists and flags & os.XATTR_CREATE:
                return Answer(p.reply(errno.EEXIST))
            if not exists and flags & os.XATTR_REPLACE:
                return Answer(p.reply(errno.ENODATA))
        permissions.require(attr, client.caller, W_OK)
        if action == p.XATTR_SET:
            self.engine.setxattr(ino, name, value)
        else:
            self.engine.removexattr(ino, name)
        self._changed(path)
        return ok()

    def _sync_cache_times(self, ino: int, attr: Attr) -> None:
        """Programs holding the file open see its times through their own descriptor."""
        obj = self.objects.of_inode(ino)
        if obj is not None:
            obj.of.hold_times(attr.atime_ns, attr.mtime_ns)
            os.utime(obj.of.fd, ns=(attr.atime_ns, attr.mtime_ns))  # writers or not

    # -- files ------------------------------------------------------------------------------
    def open(self, client: Client, a: Args) -> Answer:
        vpath, flags, mode, umask = a.data(0), a.integer(1), a.integer(2), a.integer(3)
        accmode = flags & os.O_ACCMODE
        writable = accmode in (os.O_WRONLY, os.O_RDWR)
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise FsError(errno.EOPNOTSUPP, "O_TMPFILE is not supported on object paths")
        caller = client.caller
        try:
            found = self._found(client, vpath, follow=not flags & os.O_NOFOLLOW)
        except FsError as exc:
            if exc.errno != errno.ENOENT or not flags & os.O_CREAT:
                raise
            return self._create(client, vpath, flags, mode & ~umask)
        if isinstance(found, Answer):
            return found
        attr = found.attr
        if flags & os.O_CREAT and flags & os.O_EXCL:
            raise FsError(errno.EEXIST)
        if stat.S_ISLNK(attr.mode):
            raise FsError(errno.ELOOP)
        if stat.S_ISDIR(attr.mode):
            if writable or flags & os.O_CREAT:
                raise FsError(errno.EISDIR)
            if not flags & os.O_PATH:
                permissions.require(attr, caller, R_OK)
            return self._dir_answer(found)
        if flags & os.O_DIRECTORY:
            raise FsError(errno.ENOTDIR)
        if flags & os.O_PATH:  # a descriptor only to name the file: give a read-only one
            flags = os.O_RDONLY | (flags & os.O_CLOEXEC)
            accmode, writable = os.O_RDONLY, False
        want = (R_OK if accmode in (os.O_RDONLY, os.O_RDWR) else 0) | (W_OK if writable else 0)
        if flags & os.O_TRUNC:
            want |= W_OK
        if want:
            permissions.require(attr, caller, want)
        self.objects.settle(found.ino)
        fh = self.engine.open(found.ino, flags)
        return self._file_answer(client, fh, flags, canonical(found.components))

    def _create(self, client: Client, vpath: bytes, flags: int, mode: int) -> Answer:
        parent = self._parent(client, vpath)
        if isinstance(parent, Answer):
            return parent
        permissions.require(parent.attr, client.caller, W_OK | X_OK)
        fh, _attr = self.engine.create(parent.attr.ino, parent.name, mode, flags,
                                       client.caller.uid, client.caller.gid)
        path = canonical((*parent.components, parent.name))
        return self._file_answer(client, fh, flags, path)

    def _file_answer(self, client: Client, fh: int, flags: int, path: bytes) -> Answer:
        obj, fd = self.objects.hand_out(fh, flags, path, client.session)
        inode, of = obj.inode, obj.of
        attr = self._live_attr(inode.ino)
        # Programs read the object's times through their descriptor (fstat).
        of.hold_times(attr.atime_ns, attr.mtime_ns)
        os.utime(of.fd, ns=(attr.atime_ns, attr.mtime_ns))
        self._changed(path)
        assert of.blocks.memfd is not None
        return ok(obj.handle, p.DT_REG, path, *attr_args(attr), fds=(fd, of.blocks.memfd),
                  close=(fd,))

    def _dir_answer(self, found: Found) -> Answer:
        fd = self._shadow_fd(found.components)
        return ok(0, p.DT_DIR, canonical(found.components), *attr_args(found.attr),
                  fds=(fd,), close=(fd,))

    def _shadow_fd(self, components: tuple[bytes, ...]) -> int:
        """A real, empty directory standing for an object directory, so that programs
        get a kernel descriptor for fchdir, *at() calls and their working directory."""
        path = os.path.join(os.fsencode(self.shadow_root), *components) if components \
            else os.fsencode(self.shadow_root)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def fill(self, client: Client, a: Args) -> Answer:
        handle, offset, length = a.integer(0), a.integer(1), a.integer(2)
        _obj, fh = self.objects.live_handle(handle)
        if length < 0:
            self.engine.fill_all(fh)
        else:
            self.engine.fill(fh, offset, offset + length)
        return ok()

    def flush(self, client: Client, a: Args) -> Answer:
        self.objects.flush(a.integer(0))
        return ok()

    def dirty(self, client: Client, a: Args) -> Answer:
        failed = a.integer(1) if len(a.values) > 1 else 0
        if failed:
            self.objects.mark_write_failed(a.integer(0), failed)
        else:
            self.objects.mark_modified(a.integer(0))
        return ok()

    def adopt(self, client: Client, a: Args) -> Answer:
        obj = self.objects.get(a.integer(0))
        client.session = client.session or b""
        obj.sessions.add(client.session)
        assert obj.of.blocks.memfd is not None
        return ok(p.DT_REG, obj.vpath, *attr_args(self._live_attr(obj.inode.ino)),
                  fds=(obj.of.blocks.memfd,))

    # -- directories ------------------------------------------------------------------------
    def list_dir(self, client: Client, a: Args) -> Answer:
        vpath, cookie = a.data(0), a.integer(1)
        if cookie == 0 or vpath not in client.listings:
            found = self._found(client, vpath)
            if isinstance(found, Answer):
                return found
            if not stat.S_ISDIR(found.attr.mode):
                raise FsError(errno.ENOTDIR)
            permissions.require(found.attr, client.caller, R_OK)
            client.listings[vpath] = self._listing(found)
            cookie = 0
        entries = client.listings[vpath]
        size, end = 0, cookie
        while end < len(entries) and size < _LISTING_PAGE:
            size += p.ENTRY_HEADER_SIZE + len(entries[end][2])
            end += 1
        if end >= len(entries):
            del client.listings[vpath]
            next_cookie = 0
        else:
            next_cookie = end
        return ok(next_cookie, p.pack_entries(entries[cookie:end]))

    def _listing(self, found: Found) -> list[tuple[int, int, bytes]]:
        seen = self.page.changes
        fh = self.engine.opendir(found.ino)
        try:
            entries = self.engine.readdir(fh, 0)
        finally:
            self.engine.releasedir(fh)
        parent_ino = found.parent.ino if found.parent is not None else ROOT_INO
        out = [(found.ino, p.DT_DIR, b"."), (parent_ino, p.DT_DIR, b"..")]
        base = canonical(found.components).rstrip(b"/")
        # Readdir-plus: the next lstat of each entry needs no question.
        known: list[tuple[bytes, Attr]] = []
        for e in entries:
            name = e.name.encode()
            out.append((e.attr.ino, dtype(e.attr.mode), name))
            if e.attr_known and self._publishable(e.attr):
                known.append((base + b"/" + name, e.attr))
        self.page.put_many(base, known, self.attr_ttl, seen_changes=seen)
        return out

    def chdir(self, client: Client, a: Args) -> Answer:
        found = self._found(client, a.data(0))
        if isinstance(found, Answer):
            return found
        if not stat.S_ISDIR(found.attr.mode):
            raise FsError(errno.ENOTDIR)
        permissions.require(found.attr, client.caller, X_OK)
        fd = self._shadow_fd(found.components)
        return ok(canonical(found.components), fds=(fd,), close=(fd,))

    def mkdir(self, client: Client, a: Args) -> Answer:
        vpath, mode, umask = a.data(0), a.integer(1), a.integer(2)
        parent = self._parent(client, vpath)
        if isinstance(parent, Answer):
            return parent
        permissions.require(parent.attr, client.caller, W_OK | X_OK)
        self.engine.mkdir(parent.attr.ino, parent.name, mode & ~umask & 0o7777,
                          client.caller.uid, client.caller.gid)
        path = canonical((*parent.components, parent.name))
        self._changed(path, canonical(parent.components))
        return ok()

    def _removable(self, client: Client, vpath: bytes) -> tuple[Parent, Attr] | Answer:
        parent = self._parent(client, vpath)
        if isinstance(parent, Answer):
            return parent
        if parent.name in (b".", b".."):
            raise FsError(errno.EINVAL if parent.name == b"." else errno.ENOTEMPTY)
        # The type is all a removal needs (the owner too under a sticky bit, and there
        # listings leave no attributes provisional): no HEAD per file of an rm -r.
        victim, _known = self.engine.lookup_entry(parent.attr.ino, parent.name)
        self.pins.looked_up(victim.ino)
        permissions.require_removable(parent.attr, victim, client.caller)
        return parent, victim

    def rmdir(self, client: Client, a: Args) -> Answer:
        got = self._removable(client, a.data(0))
        if isinstance(got, Answer):
            return got
        parent, _victim = got
        self.engine.rmdir(parent.attr.ino, parent.name)
        components = (*parent.components, parent.name)
        self._changed(canonical(components), canonical(parent.components))
        with contextlib.suppress(OSError):  # never made, or someone's working directory
            os.rmdir(os.path.join(os.fsencode(self.shadow_root), *components))
        return ok()

    def unlink(self, client: Client, a: Args) -> Answer:
        got = self._removable(client, a.data(0))
        if isinstance(got, Answer):
            return got
        parent, _victim = got
        self.engine.unlink(parent.attr.ino, parent.name)
        self._changed(canonical((*parent.components, parent.name)),
                      canonical(parent.components))
        return ok()

    def rename(self, client: Client, a: Args) -> Answer:
        old, new, flags = a.data(0), a.data(1), a.integer(2)
        got = self._removable(client, old)
        if isinstance(got, Answer):
            return got
        src_parent, src = got
        dst_parent = self._parent(client, new)
        if isinstance(dst_parent, Answer):
            return Answer(p.reply(errno.EXDEV))
        permissions.require(dst_parent.attr, client.caller, W_OK | X_OK)
        try:
            existing = self.engine.lookup(dst_parent.attr.ino, dst_parent.name)
        except FsError as exc:
            if exc.errno != errno.ENOENT:
                raise
        else:
            self.pins.looked_up(existing.ino)
            permissions.require_removable(dst_parent.attr, existing, client.caller)
        self.engine.rename(src_parent.attr.ino, src_parent.name, dst_parent.attr.ino,
                           dst_parent.name, flags)
        with self.page.lock:
            if stat.S_ISDIR(src.mode):
                self.page.forget_all()  # every path below it changed
            else:
                self.page.changed(
                    canonical((*src_parent.components, src_parent.name)),
                    canonical((*dst_parent.components, dst_parent.name)),
                    canonical(src_parent.components), canonical(dst_parent.components))
        return ok()

    def symlink(self, client: Client, a: Args) -> Answer:
        target, vpath = a.data(0), a.data(1)
        parent = self._parent(client, vpath)
        if isinstance(parent, Answer):
            return parent
        permissions.require(parent.attr, client.caller, W_OK | X_OK)
        self.engine.symlink(parent.attr.ino, parent.name, target, client.caller.uid,
                            client.caller.gid)
        self._changed(canonical((*parent.components, parent.name)),
                      canonical(parent.components))
        return ok()

    def link(self, client: Client, a: Args) -> Answer:
        old, new, flags = a.data(0), a.data(1), a.integer(2)
        if flags & ~p.LINK_FOLLOW:
            return Answer(p.reply(errno.EINVAL))
        # linkat(2) links a symlink itself unless asked to follow it.
        found = self._found(client, old, follow=bool(flags & p.LINK_FOLLOW))
        if isinstance(found, Answer):
            return found
        parent = self._parent(client, new)
        if isinstance(parent, Answer):
            return Answer(p.reply(errno.EXDEV))
        permissions.require(parent.attr, client.caller, W_OK | X_OK)
        attr = self._live_attr(found.ino)
        if client.caller.uid not in (0, attr.uid) and not (
                stat.S_ISREG(attr.mode)
                and permissions.allowed(attr, client.caller, R_OK | W_OK)):
            # fs.protected_hardlinks, on by default: a file someone else owns is linked
            # only if it is a regular file the caller may read and write.
            return Answer(p.reply(errno.EPERM))
        linked = self.engine.link(found.ino, parent.attr.ino, parent.name)
        self.pins.looked_up(linked.ino)  # the engine counted one more lookup
        with self.page.lock:
            self.page.forget_all()  # the file's names were published as one name's
        return ok()

    def mknod(self, client: Client, a: Args) -> Answer:
        vpath, mode, dev, umask = a.data(0), a.integer(1), a.integer(2), a.integer(3)
        kind = stat.S_IFMT(mode)
        if kind in (stat.S_IFCHR, stat.S_IFBLK) and client.caller.uid != 0:
            return Answer(p.reply(errno.EPERM))  # the kernel's rule: CAP_MKNOD
        parent = self._parent(client, vpath)
        if isinstance(parent, Answer):
            return parent
        permissions.require(parent.attr, client.caller, W_OK | X_OK)
        self.engine.mknod(parent.attr.ino, parent.name, kind | (mode & ~umask & 0o7777), dev,
                          client.caller.uid, client.caller.gid)
        self._changed(canonical((*parent.components, parent.name)),
                      canonical(parent.components))
        return ok()

    # -- programs ---------------------------------------------------------------------------
    def exec(self, client: Client, a: Args) -> Answer:
        path, is_vpath, reasons = a.data(0), a.integer(1), a.integer(2)
        caller = client.caller
        interpreter = b""
        if is_vpath:
            found = self._found(client, path)
            if isinstance(found, Answer):
                return found
            if not stat.S_ISREG(found.attr.mode):
                raise FsError(errno.EACCES)
            permissions.require(found.attr, caller, X_OK)
            local = self._exec_copy(found)
            with open(local, "rb") as f:
                head = f.read(256)
            if head.startswith(b"#!"):
                interpreter = head[2:].split(b"\n", 1)[0].strip()
        else:
            local = Path(os.fsdecode(path))
        if reasons:
            target = local
            if interpreter:
                target = Path(os.fsdecode(interpreter.split(None, 1)[0]))
            why = unreachable_reason(target, caller.uid, caller.gid)
            if why is not None:
                shown = path.decode(errors="replace")
                if is_vpath:
                    shown = (client.root + path).decode(errors="replace")
                message = (f"objmount: {shown} {why}, so it cannot use object paths: "
                           "use a FUSE mount (objmount mount), or OBJMOUNT_DISABLE=1 to "
                           "run it anyway")
                return Answer(p.reply(errno.EPERM, message.encode()))
        if not is_vpath:
            self._publish_reachable(path)
        return ok(os.fsencode(local), interpreter)

    def _publish_reachable(self, path: bytes) -> None:
        """Let shims skip asking about this local program again while it is unchanged.
        Only plain ELF programs: a setuid/setgid one's verdict depends on the caller's
        ids, a script's on its interpreter."""
        key = normalized(p.EXEC_VERDICT_KEY + path)
        if key is None or not path.startswith(b"/"):
            return
        seen = self.page.changes
        try:
            st = os.stat(path)
            with open(path, "rb") as f:
                elf = f.read(4) == b"\x7fELF"
        except OSError:
            return
        if not elf or not stat.S_ISREG(st.st_mode) or st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            return
        attr = Attr(ino=st.st_ino, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid,
                    size=st.st_size, atime_ns=0, mtime_ns=st.st_mtime_ns,
                    ctime_ns=st.st_ctime_ns, nlink=st.st_nlink)
        self.page.put(key, attr, _EXEC_VERDICT_TTL, seen_changes=seen)

    def _exec_copy(self, found: Found) -> Path:
        """A local, executable copy of the object: the kernel and ld.so read programs
        themselves. One copy per object version."""
        fh = self.engine.open(found.ino, os.O_RDONLY)
        try:
            self.engine.fill_all(fh)
            inode, of = self.engine.open_file(fh)
            tag = hashlib.sha256(f"{inode.ino}\0{of.etag}\0{of.size}".encode()).hexdigest()
            dest = self.exec_cache / f"{found.name.decode(errors='replace')[:60]}-{tag[:16]}"
            if not dest.exists():
                tmp = dest.with_suffix(".tmp")
                out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
                try:
                    of.copy_into(out)
                finally:
                    os.close(out)
                os.replace(tmp, dest)
            return dest
        finally:
            self.engine.release(fh)

    def session_wait(self, client: Client, a: Args) -> Answer:
        session = a.data(0)
        self.objects.wait_for(session)
        return ok("\n".join(self.failures.pop(session, [])).encode())
