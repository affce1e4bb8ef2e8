"""Mounting: validate, daemonize, serve the FUSE session, unmount cleanly.

The command forks before anything starts threads (obstore's runtime, worker pools);
the child builds the store and the engine, checks them, mounts, and only then tells
the waiting parent "ok" through a pipe, so every mount-time error is one line on the
user's terminal and a non-zero exit, whether or not the mount daemonizes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from objmount import paths
from objmount.core.engine import Engine, EngineOptions, MountRoot
from objmount.errors import ConfigError, ObjmountError
from objmount.frontends import status
from objmount.frontends.fuse_ops import FuseOperations
from objmount.store.base import Account

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MountRequest:
    mountpoint: Path
    root: MountRoot
    engine: EngineOptions
    allow_other: bool = False
    default_permissions: bool = True
    foreground: bool = False
    xattrs: bool = False


def pid_file(mountpoint: Path) -> Path:
    digest = hashlib.sha256(str(mountpoint).encode()).hexdigest()[:16]
    return paths.runtime_dir() / f"mount-{digest}.pid"


def is_mountpoint(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1 and fields[1].replace("\\040", " ") == target:
                return True
    return False


def check_mountpoint(mountpoint: Path) -> None:
    if not mountpoint.exists():
        raise ConfigError(f"mountpoint {mountpoint} does not exist")
    if not mountpoint.is_dir():
        raise ConfigError(f"mountpoint {mountpoint} is not a directory")
    if is_mountpoint(mountpoint):
        raise ConfigError(f"mountpoint {mountpoint} is busy: something is already mounted there")


def _fuse_options(req: MountRequest) -> set[str]:
    root = req.root
    # What `mount` and `df` show as the source; commas would split the option list.
    source = status.describe_root(root) if root.bucket else "objmount"
    opts = {f"fsname={source.replace(',', '_')}", "subtype=objmount"}
    if req.default_permissions:
        opts.add("default_permissions")
    if req.allow_other:
        opts.add("allow_other")
    if req.engine.read_only:
        opts.add("ro")
    return opts


async def _serve(ops: FuseOperations, mountpoint: Path, ready: Callable[[str], None]) -> None:
    async with trio.open_nursery() as nursery:
        async def on_signals() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    log.info("signal received: unmounting")
                    pyfuse3.terminate()
                    return

        async def after_init() -> None:
            # The kernel caps the read-ahead when it gets the reply to its INIT, which
            # pyfuse3.main() sends first thing. A stat() of the mountpoint returns once
            # that is done (from a worker thread: this loop answers it); only then is
            # ours set, and only then is the mount reported ready, so that the first
            # reader already gets it.
            with contextlib.suppress(OSError):
                await trio.to_thread.run_sync(os.stat, mountpoint)
            _raise_kernel_read_ahead(mountpoint)
            ready("ok")
        nursery.start_soon(on_signals)
        nursery.start_soon(after_init)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


# The kernel's read-ahead for the mount: how much it asks for per read request (FUSE
# allows up to 1 MiB). Its default, 128 KiB, makes a sequential reader cost four times
# the requests, each a round trip through the daemon.
KERNEL_READ_AHEAD_KB = 1024


def _raise_kernel_read_ahead(mountpoint: Path) -> None:
    """Best effort: only root may change it. Found through /proc/self/mountinfo by the
    absolute path it was mounted on: a stat() of the mountpoint (realpath too) would be a
    request to this very daemon, from its event loop."""
    target = str(mountpoint)
    device = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            # Spaces, tabs, newlines and backslashes appear as octal escapes there.
            if len(fields) > 4 and re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)),
                                          fields[4]) == target:
                device = fields[2]  # the last mount there is ours
    if device is None:
        return
    try:
        Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(f"{KERNEL_READ_AHEAD_KB}\n")
    except OSError as exc:
        log.debug("kernel read-ahead of %s left as it is: %s", mountpoint, exc)


def serve(req: MountRequest, make_account: Callable[[], Account],
          ready: Callable[[str], None]) -> int:
    """Build the engine, mount, serve until unmounted. ``ready`` gets "ok" or an error."""
    try:
        engine = Engine(make_account(), req.root, req.engine)
        engine.check()
        ops = FuseOperations(engine, xattrs=req.xattrs)
        pyfuse3.init(ops, str(req.mountpoint), _fuse_options(req))
    except ObjmountError as exc:
        ready(str(exc))
        return 1
    except RuntimeError as exc:  # pyfuse3.init: the kernel refused the mount
        ready(f"cannot mount {req.mountpoint}: {exc}")
        return 1
    pid_path = pid_file(req.mountpoint)
    pid_path.write_text(f"{os.getpid()}\n")
    log.info("mounted %s", req.mountpoint)
    publisher = status.Publisher("mount", str(req.mountpoint), status.describe_root(req.root),
                                 engine).start()
    try:
        trio.run(_serve, ops, req.mountpoint, ready)
    finally:
        publisher.stop()
        # After fusermount3 -u the kernel side is gone already; after a signal it is not.
        pyfuse3.close(unmount=True)
        engine.shutdown()
        pid_path.unlink(missing_ok=True)
        log.info("unmounted %s", req.mountpoint)
    return 0


def mount(req: MountRequest, make_account: Callable[[], Account],
          log_file: Path | None) -> int:
    check_mountpoint(req.mountpoint)
    if req.foreground:
        def say(msg: str) -> None:
            if msg != "ok":
                raise ConfigError(msg)
        return serve(req, make_account, say)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_end)
        with os.fdopen(read_end, "r") as reader:
            message = reader.read().strip()
        if message == "ok":
            return 0
        _, status = os.waitpid(pid, 0)
        raise ConfigError(message or f"the mount daemon died (status {status})")

    # Child: the daemon.
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if log_file is None:
        log_file = paths.log_dir() / f"mount-{pid_file(req.mountpoint).stem[6:]}.log"
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    writer = os.fdopen(write_end, "w")

    def tell(msg: str) -> None:
        if not writer.closed:
            writer.write(msg + "\n")
            writer.close()

    code = 1
    try:
        code = serve(req, make_account, tell)
    except BaseException as exc:  # the parent must hear something, whatever happened
        log.exception("mount daemon failed")
        tell(f"mount failed: {exc}")
    finally:
        tell("mount failed")
        logging.shutdown()
        os._exit(code)


def _is_mount_daemon(pid: int) -> bool:
    """Alive, not a zombie, and still objmount (a stale pid file may name a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and b"objmount" in cmdline


def umount(mountpoint: Path, timeout: float = 120.0) -> None:
    mountpoint = Path(os.path.realpath(mountpoint))
    if not is_mountpoint(mountpoint):
        raise ConfigError(f"{mountpoint} is not mounted")
    pid_path = pid_file(mountpoint)
    pid = None
    if pid_path.exists():
        try:
            pid = int(pid_path.read_text().strip())
        except ValueError:
            pid = None
    result = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        msg = result.stderr.strip() or f"fusermount3 exited with {result.returncode}"
        raise ConfigError(f"cannot unmount {mountpoint}: {msg}")
    # Wait for the daemon to finish storing and exit, so that "umount returned" means
    # "everything is in the store".
    deadline = time.monotonic() + timeout
    while pid is not None and _is_mount_daemon(pid):
        if time.monotonic() > deadline:
            raise ConfigError(f"the daemon (pid {pid}) is still running after {timeout:.0f}s")
        time.sleep(0.05)
    pid_path.unlink(missing_ok=True)

