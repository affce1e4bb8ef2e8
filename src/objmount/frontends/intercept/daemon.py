"""The interception daemon: the engine behind a Unix socket that only its user can reach.

One thread per connected process (the engine is thread-safe and its store calls
release the GIL). Each connection starts with HELLO: protocol and package versions must
match the shim's exactly, or the shim is told why it is refused. The daemon exits when
no process has been connected and no object has been open for ``idle_timeout`` seconds.

The FUSE mount and this daemon can be one process: both are thin front ends over one
Engine, which is thread-safe. They are separate today because a mount is rooted at one
bucket or prefix with its own options and lives until unmounted, while this daemon
serves every bucket of one set of credentials and comes and goes with its clients
(see doc/design/interception.md).
"""

from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import secrets
import signal
import socket
import struct
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from objmount import __version__
from objmount.core.engine import Engine, EngineOptions, MountRoot
from objmount.core.metadata import Defaults
from objmount.core.permissions import Caller
from objmount.errors import ObjmountError, StoreError, to_errno
from objmount.frontends import status
from objmount.frontends.intercept import protocol as p
from objmount.frontends.intercept import statpage
from objmount.frontends.intercept.handlers import Answer, Client, Handlers
from objmount.frontends.intercept.layout import DaemonSettings, Layout
from objmount.frontends.intercept.openobjects import OpenObject, OpenObjects
from objmount.store.base import Account

log = logging.getLogger(__name__)

_PEERCRED = struct.Struct("3i")


def _describe(data: bytes) -> str:
    try:
        msg = p.decode_frame(data)
        return f"{p.Op(msg.op).name} {msg.args!r}"
    except (p.ProtocolError, ValueError):
        return data[:40].hex()


def _groups(pid: int) -> frozenset[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return frozenset(int(g) for g in line.split()[1:])
    except (OSError, ValueError):
        pass
    return frozenset()


def st_dev_for(ident: str) -> int:
    """The device number object files show: one per daemon, unlike any disk's."""
    return os.makedev(4000, int(ident[:5], 16))


class Daemon:
    def __init__(self, layout: Layout, settings: DaemonSettings,
                 make_account: Callable[[], Account]) -> None:
        self.layout = layout
        self.settings = settings
        self.make_account = make_account
        self.instance = secrets.randbits(62)
        self._clients = 0
        self._clients_lock = threading.Lock()
        self._last_active = time.monotonic()
        self._stop = threading.Event()
        self.failures: defaultdict[bytes, list[str]] = defaultdict(list)

    # -- lifecycle ------------------------------------------------------------------------
    def run(self, ready: Callable[[str], None]) -> int:
        lock_fd = os.open(self.layout.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            ready("running")  # another daemon for these credentials is up or starting
            return 0
        try:
            engine = self._engine()
            engine.check()
        except ObjmountError as exc:
            ready(str(exc))
            return 1
        listener = self._listen()
        ident = self.layout.dir.name.removeprefix("intercept-")
        page = statpage.StatPage(self.instance, st_dev_for(ident))
        objects = OpenObjects(engine, engine.open_dir, on_change=self._object_changed,
                              on_failure=self._failed)
        exec_cache = self.layout.cache / "exec"
        exec_cache.mkdir(mode=0o700, exist_ok=True)
        for stale in exec_cache.iterdir():
            stale.unlink(missing_ok=True)
        self.handlers = Handlers(engine, objects, page, shadow_root=self.layout.shadow,
                                 exec_cache=exec_cache, version=__version__,
                                 instance=self.instance, st_dev=st_dev_for(ident),
                                 failures=self.failures)
        self.page = page
        self.layout.pid_file.write_text(f"{os.getpid()}\n")
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        log.info("serving %s (pid %d)", self.layout.socket, os.getpid())
        publisher = status.Publisher("intercept", str(self.layout.socket),
                                     status.describe_root(MountRoot()), engine).start()
        ready("ok")
        try:
            self._accept_loop(listener, objects)
        finally:
            publisher.stop()
            listener.close()
            self.layout.socket.unlink(missing_ok=True)
            objects.close()
            engine.shutdown()
            page.close()
            self.layout.pid_file.unlink(missing_ok=True)
            log.info("stopped")
            os.close(lock_fd)
        return 0

    def _engine(self) -> Engine:
        s = self.settings
        options = EngineOptions(
            defaults=Defaults(uid=os.getuid(), gid=os.getgid()),
            cache_dir=self.layout.cache, attr_ttl=s.attr_ttl, negative_ttl=s.negative_ttl,
            block_size=s.block_size, cache_size=s.cache_size, shared_block_maps=True)
        return Engine(self.make_account(), MountRoot(), options)

    def _listen(self) -> socket.socket:
        path = self.layout.socket
        path.unlink(missing_ok=True)  # a dead daemon's: we hold the lock
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)  # the socket is born 0600
        try:
            sock.bind(os.fsencode(path))
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(128)
        sock.settimeout(1.0)
        return sock

    def _accept_loop(self, listener: socket.socket, objects: OpenObjects) -> None:
        idle = self.settings.idle_timeout
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                with self._clients_lock:
                    quiet = self._clients == 0 and not objects.busy()
                    if not quiet:
                        self._last_active = time.monotonic()
                    elif time.monotonic() - self._last_active > idle:
                        log.info("idle for %.0f s: exiting", idle)
                        return
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            with self._clients_lock:
                self._clients += 1
                self._last_active = time.monotonic()
            threading.Thread(target=self._serve_client, args=(conn,), daemon=True,
                             name="objmount-client").start()

    # -- one client -------------------------------------------------------------------------
    def _serve_client(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(None)
            pid, uid, gid = _PEERCRED.unpack(
                conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
            if uid != os.getuid():
                log.warning("refused a connection from uid %d (pid %d)", uid, pid)
                return
            client = Client(Caller(uid, gid, _groups(pid)), pid)
            while True:
                try:
                    data, ancdata, _flags, _addr = conn.recvmsg(
                        p.MAX_FRAME, socket.CMSG_SPACE(4 * p.MAX_FDS))
                except (ConnectionResetError, BrokenPipeError):
                    return
                for level, kind, fds in ancdata:  # shims send no descriptors: drop any
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        for fd in array.array("i", fds[:len(fds) - len(fds) % 4]):
                            os.close(fd)
                if not data:
                    return
                answer = self._answer(client, data)
                try:
                    self._send(conn, answer)
                finally:
                    for fd in answer.close:
                        os.close(fd)
        except OSError as exc:
            log.debug("client connection: %s", exc)
        finally:
            conn.close()
            with self._clients_lock:
                self._clients -= 1
                self._last_active = time.monotonic()

    def _answer(self, client: Client, data: bytes) -> Answer:
        try:
            msg = p.decode_frame(data)
            if not client.hello:
                return self._hello(client, msg)
            answer = self.handlers.dispatch(client, msg)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("pid %d: %s %r -> %r", client.pid, p.Op(msg.op).name, msg.args,
                          answer.message.args[:3])
            return answer
        except p.ProtocolError as exc:
            log.warning("protocol error from pid %d: %s", client.pid, exc)
            return Answer(p.reply(errno.EPROTO, str(exc).encode()))
        except (ObjmountError, OSError) as exc:
            if isinstance(exc, StoreError) or to_errno(exc) == errno.EIO:
                log.warning("%s", exc)
            else:
                log.debug("pid %d: %s -> %s", client.pid, _describe(data), exc)
            return Answer(p.reply(to_errno(exc)))
        except Exception:
            log.exception("unexpected error")
            return Answer(p.reply(errno.EIO))

    def _hello(self, client: Client, msg: p.Message) -> Answer:
        args = msg.args
        if msg.op != p.Op.HELLO or len(args) < 4:
            raise p.ProtocolError("the first message must be HELLO")
        proto, version, session, root = args[:4]
        if proto != p.PROTOCOL_VERSION or version != __version__.encode():
            shown = version.decode(errors="replace") if isinstance(version, bytes) else "?"
            message = (f"objmount: this program's shim (objmount {shown}, protocol {proto!r}) "
                       f"and the running daemon (objmount {__version__}, protocol "
                       f"{p.PROTOCOL_VERSION}) differ: stop the daemon with 'objmount "
                       "daemon stop' and start again")
            return Answer(p.reply(errno.EPROTO, message.encode()))
        if not isinstance(session, bytes) or not isinstance(root, bytes) or not root:
            raise p.ProtocolError("bad HELLO")
        client.hello = True
        client.session = session
        client.root = root.rstrip(b"/") or b"/"
        page = self.page
        size = page.mmap_size() if statpage.available() else 0
        flags = 0  # none defined
        return Answer(p.reply(0, __version__.encode(), self.instance, flags,
                              self.handlers.st_dev, size, fd_count=1), (page.memfd,))

    @staticmethod
    def _send(conn: socket.socket, answer: Answer) -> None:
        data = p.encode(answer.message)
        if answer.fds:
            conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                   array.array("i", answer.fds))])
        else:
            conn.sendall(data)

    # -- callbacks ----------------------------------------------------------------------------
    def _object_changed(self, obj: OpenObject) -> None:
        self.handlers.object_changed(obj)

    def _failed(self, obj: OpenObject, message: str) -> None:
        for session in obj.sessions:
            self.failures[session].append(message)


def serve(directory: Path, make_account: Callable[[DaemonSettings], Account]) -> int:
    """``objmount daemon serve``: detach, and say "ok" (or why not) on stdout once the
    socket accepts connections; "running" when another daemon has it already."""
    directory = Path(os.path.abspath(directory))
    from objmount.frontends.intercept.layout import check_private_dir

    check_private_dir(directory)
    settings = DaemonSettings.loads((directory / "settings.json").read_bytes())
    layout = Layout(dir=directory, cache=Path(settings.cache_dir), log=Path(settings.log_file))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        with os.fdopen(read_end, "r") as reader:
            message = reader.read().strip() or "the daemon died while starting"
        print(message, flush=True)
        return 0 if message in ("ok", "running") else 1
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    layout.log.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(layout.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    logging.basicConfig(level=logging.DEBUG if settings.verbose >= 2 else logging.INFO,
                        force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(sys.stderr)])
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    writer = os.fdopen(write_end, "w")

    def tell(msg: str) -> None:
        if not writer.closed:
            writer.write(msg + "\n")
            writer.close()

    code = 1
    try:
        daemon = Daemon(layout, settings, lambda: make_account(settings))
        code = daemon.run(tell)
    except BaseException as exc:  # the starter must hear something, whatever happened
        log.exception("daemon failed")
        tell(f"the daemon failed: {exc}")
    finally:
        tell("the daemon stopped while starting")
        logging.shutdown()
        os._exit(code)


def running() -> list[tuple[Path, int]]:
    """The interception daemons of this user that are alive: (directory, pid)."""
    from objmount import paths

    found = []
    for directory in sorted(paths.runtime_dir().glob("intercept-*")):
        try:
            pid = int((directory / "pid").read_text().strip())
        except (OSError, ValueError):
            continue
        if status.pid_alive(pid):
            found.append((directory, pid))
    return found


def stop(directory: Path, pid: int, timeout: float = 120.0) -> bool:
    """SIGTERM the daemon and wait until it has stored what is open and exited."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while status.pid_alive(pid) and (directory / "pid").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
