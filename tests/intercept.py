"""Fixtures for the interception tests: ``objmount run`` against the session's
SeaweedFS, with a private runtime directory (short, so the daemon's socket path fits in
sun_path) and private cache and state directories. One daemon serves the whole session,
as one would serve a user; tests that kill it or need another start their own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
OBJMOUNT = [sys.executable, "-m", "objmount"]
ROOT = "/objmount"


def private_dirs(prefix: str = "omi-") -> Path:
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    for name in ("run", "cache", "state"):
        (base / name).mkdir(mode=0o700)
    return base


def dirs_env(base: Path) -> dict[str, str]:
    return {"XDG_RUNTIME_DIR": str(base / "run"), "XDG_CACHE_HOME": str(base / "cache"),
            "XDG_STATE_HOME": str(base / "state")}


def stop_daemons(env: dict[str, str]) -> None:
    subprocess.run([*OBJMOUNT, "daemon", "stop"], env={**os.environ, **env},
                   capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def intercept_env(s3_env: dict[str, str]) -> Iterator[dict[str, str]]:
    base = private_dirs()
    env = {**s3_env, **dirs_env(base)}
    yield env
    stop_daemons(env)
    shutil.rmtree(base, ignore_errors=True)


@dataclass
class Intercept:
    """Run programs under ``objmount run`` with the test's bucket at ``self.path``."""

    env: dict[str, str]
    bucket: str

    @property
    def path(self) -> str:
        return f"{ROOT}/s3/{self.bucket}"

    def run(self, *cmd: str | Path, check: bool = True, timeout: float = 180,
            cwd: str | Path | None = None, input: str | None = None,
            extra_env: dict[str, str] | None = None,
            options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, **(extra_env or {})}
        result = subprocess.run([*OBJMOUNT, "run", *options, "--", *map(str, cmd)], env=env,
                                cwd=cwd, capture_output=True, text=True, timeout=timeout,
                                input=input, stdin=None if input is not None
                                else subprocess.DEVNULL)
        if check and result.returncode != 0:
            pytest.fail(f"objmount run {' '.join(map(str, cmd))[:300]} exited "
                        f"{result.returncode}\nstdout: {result.stdout[-3000:]}\n"
                        f"stderr: {result.stderr[-3000:]}\ndaemon log (tail):\n"
                        f"{self.log_tail()}", pytrace=False)
        return result

    def sh(self, script: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-euo", "pipefail", "-c", script, **kw)

    def snapshot(self, path: str) -> dict[str, list[Any]]:
        out = self.run(sys.executable, HERE / "treesnap.py", path).stdout
        return dict(json.loads(out))

    def log_tail(self, lines: int = 20) -> str:
        logs = sorted(Path(self.env["XDG_STATE_HOME"]).glob("objmount/logs/intercept-*.log"))
        if not logs:
            return "(no daemon log)"
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture
def om(intercept_env: dict[str, str], bucket: str) -> Intercept:
    return Intercept(intercept_env, bucket)


def local_snapshot(path: str | Path) -> dict[str, list[Any]]:
    out = subprocess.run([sys.executable, HERE / "treesnap.py", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out))
