"""Shared fixtures. Real servers come from s3fixtures.py; mounts are real FUSE mounts of
the objmount command, started and stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["s3fixtures", "intercept"]

OBJMOUNT = [sys.executable, "-m", "objmount"]


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and os.access("/dev/fuse", os.R_OK | os.W_OK)


def run_objmount(*args: str, env: dict[str, str], timeout: float = 120,
                 check: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run([*OBJMOUNT, *args], env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=check, stdin=subprocess.DEVNULL)


def is_mounted(path: Path) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == target for line in f if len(line.split()) > 1)


class Mount:
    """One objmount daemon on one mountpoint."""

    def __init__(self, source: str, path: Path, env: dict[str, str], workdir: Path,
                 options: str = "", args: tuple[str, ...] = ()) -> None:
        self.args = args  # more command-line options of `objmount mount`
        self.source = source
        self.path = path
        self.env = env
        self.workdir = workdir
        self.options = options
        self.log = workdir / f"{path.name}.log"
        self.pid: int | None = None

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        opts = f"cache_dir={self.workdir / 'cache'}"
        if self.options:
            opts += "," + self.options
        args = ["mount", "-o", opts, "--log-file", str(self.log), "-v", *self.args]
        args += [self.source, str(self.path)] if self.source else [str(self.path)]
        result = run_objmount(*args, env=self.env)
        assert result.returncode == 0, f"mount failed: {result.stderr}\n{self.read_log()}"
        assert is_mounted(self.path)
        self.pid = self._daemon_pid()

    def _daemon_pid(self) -> int | None:
        from objmount.frontends.mount import pid_file

        path = pid_file(Path(os.path.realpath(self.path)))
        return int(path.read_text()) if path.exists() else None

    def read_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def umount(self) -> None:
        if not is_mounted(self.path):
            return
        result = run_objmount("umount", str(self.path), env=self.env)
        assert result.returncode == 0, f"umount failed: {result.stderr}"
        assert not is_mounted(self.path)
        self.pid = None

    def remount(self) -> None:
        self.umount()
        self.mount()

    def cleanup(self) -> None:
        """Teardown: whatever state the test left, leave no mount and no daemon."""
        if is_mounted(self.path):
            res = run_objmount("umount", str(self.path), env=self.env)
            if res.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(self.path)], check=False)
        if self.pid is not None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(self.pid, signal.SIGKILL)


@pytest.fixture
def mount_factory(s3_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., Mount]]:
    if not fuse_available():
        if os.environ.get("CI"):
            pytest.fail("/dev/fuse is not usable")
        pytest.skip("/dev/fuse is not usable")
    made: list[Mount] = []

    class _Factory(Mount):
        def __init__(self, source: str, path: Path | None = None, options: str = "",
                     env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
            target = path or tmp_path / f"mnt{len(made)}"
            super().__init__(source, target, env or s3_env, tmp_path, options, args)
            made.append(self)

    yield _Factory
    for m in made:
        m.cleanup()


@pytest.fixture
def mounted(mount_factory: Callable[..., Mount], bucket: str) -> Mount:
    """The test's fresh bucket, mounted."""
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    return m
