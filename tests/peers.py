"""Helpers shared by the tests that compare trees and mount s3fs-fuse beside objmount."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import is_mounted


def run(*cmd: str | Path, cwd: Path | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a program; fail the test with its output if it fails."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
        f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}")
    return result


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """What must survive, per relative path: files, symlinks and directories with their
    metadata (mtime to the second)."""
    result: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("symlink", os.readlink(path), st.st_uid, st.st_gid,
                               int(st.st_mtime))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid,
                               int(st.st_mtime))
            elif stat.S_ISREG(st.st_mode):
                result[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid,
                               st.st_size, int(st.st_mtime))
            else:
                result[rel] = ("other", oct(st.st_mode))
    return result


@contextmanager
def s3fs_mount(server: Any, bucket: str, mountpoint: Path, workdir: Path,
               extra_options: str = "") -> Iterator[Path]:
    """s3fs-fuse on ``mountpoint``, in the foreground as our child so that we always know
    its pid; always unmounted and reaped on the way out."""
    passwd = workdir / "s3fs-passwd"
    passwd.write_text(f"{server.access_key}:{server.secret_key}\n")
    os.chmod(passwd, 0o600)
    mountpoint.mkdir(parents=True, exist_ok=True)
    log = workdir / f"s3fs-{mountpoint.name}.log"
    opts = f"url={server.endpoint},use_path_request_style,passwd_file={passwd},dbglevel=warn"
    if extra_options:
        opts += "," + extra_options
    with open(log, "ab") as log_f:
        proc = subprocess.Popen(["s3fs", bucket, str(mountpoint), "-f", "-o", opts],
                                stdin=subprocess.DEVNULL, stdout=log_f, stderr=log_f)
    try:
        deadline = time.monotonic() + 30
        while not is_mounted(mountpoint):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"s3fs did not mount (exit {proc.poll()}):\n{log.read_text()}")
            time.sleep(0.1)
        yield mountpoint
    finally:
        if is_mounted(mountpoint):
            res = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True)
            if res.returncode != 0:
                subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], check=False)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
