"""The tools compared: one ``Tool`` abstraction, one subclass per FUSE file system, and
the raw client, which mounts nothing.

A FUSE tool is a command that daemonizes and mounts, and a command that unmounts; the base
class runs them, waits for /proc/mounts to agree, finds the daemon's PID (the process
whose argument list holds the mountpoint) and makes sure it has exited after unmounting.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from objbench.config import S3Endpoint

MOUNT_TIMEOUT = 120.0
EXIT_TIMEOUT = 30.0
VENV_BIN = Path(sys.executable).parent


class ToolError(RuntimeError):
    pass


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(fields[1] == target for fields in (line.split() for line in f)
                   if len(fields) > 1)


def mounts_under(directory: Path) -> list[str]:
    prefix = os.path.realpath(directory) + os.sep
    with open("/proc/self/mounts") as f:
        return [fields[1] for fields in (line.split() for line in f)
                if len(fields) > 1 and fields[1].startswith(prefix)]


def pids_with_argument(argument: str) -> list[int]:
    """Processes (other than this one) with ``argument`` as one of their arguments."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise ToolError(f"{what}: not after {timeout:.0f} s")
        time.sleep(0.05)


def last_line(path: Path) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return text.splitlines()[-1][:200] if text else "(no message)"


class Tool(ABC):
    """One way of reaching the bucket. ``root`` is the mountpoint, or None (raw client)."""

    name: ClassVar[str]

    def __init__(self, bucket: str, workdir: Path, s3: S3Endpoint) -> None:
        self.bucket = bucket
        self.workdir = workdir
        self.s3 = s3

    @property
    @abstractmethod
    def root(self) -> Path | None: ...

    @abstractmethod
    def mount(self) -> None:
        """Make the bucket reachable at ``root``."""

    @abstractmethod
    def umount(self) -> None:
        """Unmount; everything written must be stored once this returns."""

    def remount(self) -> None:
        """Unmount and mount again, so that reads come from the store."""
        self.umount()
        self.mount()

    @abstractmethod
    def cleanup(self) -> None:
        """Teardown whatever the state: leave no mount and no daemon."""

    def job_prefix(self) -> list[str]:
        """What the job process runs under (interception: ``objmount run --``)."""
        return []

    def job_env(self) -> dict[str, str] | None:
        """The job process's environment; None: this process's."""
        return None

    def leftover_pids(self) -> list[int]:
        """This tool's processes still running (after cleanup: should be none)."""
        return [] if self.root is None else pids_with_argument(str(self.root))

    def daemons(self) -> list[int]:
        """The processes that serve the file system now (for their memory and CPU)."""
        return []


class RawClient(Tool):
    """obstore and botocore on the bucket, no file system: the floor (the least time)."""

    name = "raw"

    @property
    def root(self) -> Path | None:
        return None

    def mount(self) -> None:
        pass

    def umount(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class FuseTool(Tool):
    """A FUSE file system started by a daemonizing command."""

    umount_timeout: ClassVar[float] = 60.0

    def __init__(self, bucket: str, workdir: Path, s3: S3Endpoint) -> None:
        super().__init__(bucket, workdir, s3)
        self.mountpoint = workdir / "mnt"
        self.cache_dir = workdir / "cache"
        self.log = workdir / f"{self.name}.log"
        self.daemon_pids: list[int] = []

    @property
    def root(self) -> Path | None:
        return self.mountpoint

    @abstractmethod
    def mount_argv(self) -> list[str]: ...

    def umount_argv(self) -> list[str]:
        return ["fusermount3", "-u", str(self.mountpoint)]

    def daemons(self) -> list[int]:
        return [pid for pid in self.daemon_pids if pid_alive(pid)]

    def mount_env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Write config files; called before every mount."""

    def _run(self, argv: list[str], env: dict[str, str], timeout: float) -> None:
        with open(self.log, "a") as log:
            log.write(f"\n$ {' '.join(argv)}\n")
            log.flush()
            # Output goes to a file, not a pipe: a daemon keeps its stdout open.
            result = subprocess.run(argv, env=env, stdout=log, stderr=log, timeout=timeout,
                                    stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise ToolError(f"{argv[0]} exited {result.returncode}: {last_line(self.log)}")

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        self._run(self.mount_argv(), self.mount_env(), MOUNT_TIMEOUT)
        wait_for(lambda: is_mounted(self.mountpoint), MOUNT_TIMEOUT, f"{self.name} mounted")
        self.daemon_pids = pids_with_argument(str(self.mountpoint))

    def umount(self) -> None:
        if is_mounted(self.mountpoint):
            self._run(self.umount_argv(), dict(os.environ), self.umount_timeout)
            wait_for(lambda: not is_mounted(self.mountpoint), EXIT_TIMEOUT,
                     f"{self.name} unmounted")
        self._reap(EXIT_TIMEOUT)
        # Nothing is pending once unmounted: drop local caches so reads go to the store.
        shutil.rmtree(self.cache_dir, ignore_errors=True)

    def _reap(self, timeout: float) -> None:
        """Wait for the daemon to exit; terminate it (by PID) if it does not."""
        deadline = time.monotonic() + timeout
        for pid in self.daemon_pids:
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if pid_alive(pid):
                    os.kill(pid, sig)
                    time.sleep(1)
        self.daemon_pids = []

    def cleanup(self) -> None:
        try:
            self.umount()
        except Exception as exc:
            print(f"[{self.name}] cleanup: {exc}; lazy unmount", file=sys.stderr)
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False,
                           capture_output=True, timeout=60)
            self._reap(5)


class Objmount(FuseTool):
    name = "objmount"
    umount_timeout = 600.0  # waits until everything is stored

    def mount_argv(self) -> list[str]:
        return [str(VENV_BIN / "objmount"), "mount", "-o", f"cache_dir={self.cache_dir}",
                f"s3://{self.bucket}", str(self.mountpoint)]

    def umount_argv(self) -> list[str]:
        return [str(VENV_BIN / "objmount"), "umount", str(self.mountpoint)]

    def mount_env(self) -> dict[str, str]:
        return {**os.environ, **self.s3.env()}


class S3fs(FuseTool):
    name = "s3fs"

    @property
    def passwd_file(self) -> Path:
        return self.workdir / "passwd-s3fs"

    def prepare(self) -> None:
        self.passwd_file.write_text(f"{self.s3.access_key}:{self.s3.secret_key}\n")
        self.passwd_file.chmod(0o600)

    def mount_argv(self) -> list[str]:
        opts = f"url={self.s3.endpoint},use_path_request_style,passwd_file={self.passwd_file}"
        return ["s3fs", self.bucket, str(self.mountpoint), "-o", opts]


class Rclone(FuseTool):
    name = "rclone"
    remote = "bench"

    @property
    def config_file(self) -> Path:
        return self.workdir / "rclone.conf"

    def prepare(self) -> None:
        self.config_file.write_text(
            f"[{self.remote}]\ntype = s3\nprovider = Other\nendpoint = {self.s3.endpoint}\n"
            f"access_key_id = {self.s3.access_key}\n"
            f"secret_access_key = {self.s3.secret_key}\n"
            f"region = {self.s3.region}\nforce_path_style = true\n")
        self.config_file.chmod(0o600)

    def mount_argv(self) -> list[str]:
        return ["rclone", "mount", f"{self.remote}:{self.bucket}", str(self.mountpoint),
                "--config", str(self.config_file), "--vfs-cache-mode", "writes",
                "--cache-dir", str(self.cache_dir), "--log-file", str(self.log), "--daemon"]

    def mount_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)
        return env


class Intercept(Tool):
    """objmount's direct interception: nothing is mounted; every job runs under
    ``objmount run`` with the bucket at /objmount/s3/BUCKET. "Unmount" stops the daemon
    (which stores everything first) and empties its cache, as a FUSE tool's unmount does."""

    name = "intercept"

    def __init__(self, bucket: str, workdir: Path, s3: S3Endpoint) -> None:
        super().__init__(bucket, workdir, s3)
        self.dirs = {"XDG_RUNTIME_DIR": workdir / "run", "XDG_CACHE_HOME": workdir / "cache",
                     "XDG_STATE_HOME": workdir / "state"}

    @property
    def root(self) -> Path | None:
        return Path("/objmount/s3") / self.bucket

    def job_env(self) -> dict[str, str]:
        return {**os.environ, **self.s3.env(), **{k: str(v) for k, v in self.dirs.items()}}

    def job_prefix(self) -> list[str]:
        return [str(VENV_BIN / "objmount"), "run", "--"]

    def _objmount(self, *args: str, timeout: float) -> None:
        result = subprocess.run([str(VENV_BIN / "objmount"), *args], env=self.job_env(),
                                capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            said = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise ToolError(f"objmount {args[0]} exited {result.returncode}: {said}")

    def mount(self) -> None:
        for path in self.dirs.values():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Start the daemon now, as a FUSE tool's mount does, so no job pays for it.
        self._objmount("run", "--", "true", timeout=MOUNT_TIMEOUT)

    def umount(self) -> None:
        self._objmount("daemon", "stop", timeout=600)
        wait_for(lambda: not self.leftover_pids(), EXIT_TIMEOUT, "interception daemon exited")
        shutil.rmtree(self.dirs["XDG_CACHE_HOME"], ignore_errors=True)
        self.dirs["XDG_CACHE_HOME"].mkdir(mode=0o700)

    def leftover_pids(self) -> list[int]:
        """The daemon runs with ``--dir RUNTIME/objmount/intercept-ID``."""
        runtime = self.dirs["XDG_RUNTIME_DIR"] / "objmount"
        if not runtime.is_dir():
            return []
        return [pid for d in runtime.iterdir() for pid in pids_with_argument(str(d))]

    def daemons(self) -> list[int]:
        return self.leftover_pids()

    def cleanup(self) -> None:
        try:
            self.umount()
        except Exception as exc:
            print(f"[{self.name}] cleanup: {exc}; killing the daemon", file=sys.stderr)
            for pid in self.leftover_pids():
                os.kill(pid, signal.SIGKILL)


TOOLS: dict[str, type[Tool]] = {t.name: t for t in (Objmount, Intercept, S3fs, Rclone,
                                                    RawClient)}
