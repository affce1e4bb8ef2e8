"""What a workload works on, in the child process that times it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from objbench.config import Job, Plan
from objbench.s3client import botocore_client, obstore_store

# An action returns None (its wall time is the timing) or the seconds it measured itself.
Action = Callable[[], float | None]


@dataclass
class Context:
    """The job, its clients (made before the clock starts), and the mountpoint if any.
    ``client`` and ``store`` reach the store the way the tool does (through the latency
    proxy, in that series); ``check`` is the server itself, for the benchmark's polling."""

    job: Job

    @property
    def plan(self) -> Plan:
        return self.job.plan

    @property
    def bucket(self) -> str:
        return self.job.bucket

    @property
    def rep(self) -> int:
        return self.job.rep

    @property
    def root(self) -> Path:
        if self.job.root is None:
            raise ValueError("this workload needs a mountpoint")
        return Path(self.job.root)

    @cached_property
    def client(self) -> Any:
        return botocore_client(self.job.s3)

    @cached_property
    def check(self) -> Any:
        return botocore_client(self.job.server)

    @cached_property
    def store(self) -> Any:
        return obstore_store(self.job.s3, self.bucket)


Prepare = Callable[[Context], Action]
Check = Callable[[Context], None]


class CommandError(RuntimeError):
    pass


def run_command(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no message)"]
        more = f" (and {len(lines) - 1} more errors)" if len(lines) > 1 else ""
        raise CommandError(f"{' '.join(argv[:2])} exited {result.returncode}: {lines[0]}{more}")
    return result.stdout


def command_action(argv: list[str]) -> Action:
    def action() -> None:
        run_command(argv)
    return action


def check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got}, expected {expected}")
