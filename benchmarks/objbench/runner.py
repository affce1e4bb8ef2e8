"""Run every workload for every tool and collect the timings (or the failures)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from objbench.config import Job, Plan, S3Endpoint
from objbench.job import one_line
from objbench.s3client import botocore_client
from objbench.tools import Tool
from objbench.workloads import WORKLOADS, Timings, Workload

BENCH_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Failure:
    reason: str


Cell = float | Failure | None  # seconds; a failure; None: no equivalent for this tool
NOT_RUN = Failure("not run (interrupted)")


@dataclass
class Results:
    tools: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (row, tool) -> cell
    # (workload, tool) -> requests the server answered, by type
    requests: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)

    def get(self, row: str, tool: str) -> Cell:
        return self.cells.get((row, tool), NOT_RUN)

    def record(self, workload: Workload, tool: str, cell: Cell | Timings) -> None:
        for row, _ in workload.rows():
            self.cells[(row, tool)] = cell.get(row, NOT_RUN) if isinstance(cell, dict) else cell

    def fail(self, workloads: tuple[Workload, ...], tool: str, reason: str) -> None:
        for workload in workloads:
            self.record(workload, tool, Failure(reason))


class JobFailed(RuntimeError):
    pass


def run_job_process(job: Job, timeout: float, prefix: list[str] | None = None,
                    env: dict[str, str] | None = None) -> tuple[Timings, dict[str, int]]:
    """Time one workload in a child process (see objbench/job.py), run under ``prefix``.
    The child leads its own process group, so that a timeout or Ctrl-C also ends the
    programs it runs (cp, rm)."""
    argv = [*(prefix or []), sys.executable, "-m", "objbench.job", json.dumps(job.to_json())]
    proc = subprocess.Popen(argv, cwd=BENCH_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                            env=env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as exc:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise JobFailed(f"timed out after {timeout:g} s") from exc
        raise
    if proc.returncode != 0:
        lines = stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        raise JobFailed(lines[-1])
    result = json.loads(stdout)
    timings: Timings = result["timings"]
    requests: dict[str, int] = result["requests"]
    return timings, requests


def warm_bucket(s3: S3Endpoint, bucket: str) -> None:
    """One small PUT, GET and DELETE, so that the server has its volumes for the bucket
    before anything is timed."""
    client = botocore_client(s3)
    client.put_object(Bucket=bucket, Key=".warmup", Body=b"x" * 4096)
    client.get_object(Bucket=bucket, Key=".warmup")["Body"].read()
    client.delete_object(Bucket=bucket, Key=".warmup")


def progress(tool: str, what: str, text: str) -> None:
    print(f"  {tool:<9} {what:<22} {text}", file=sys.stderr, flush=True)


@dataclass
class Runner:
    s3: S3Endpoint
    plan: Plan
    results: Results
    timeout: float

    def run_tool(self, tool: Tool) -> None:
        """Every workload in order on ``tool``; failures are recorded, never raised."""
        try:
            warm_bucket(self.s3, tool.bucket)
            tool.mount()
        except Exception as exc:
            self.results.fail(WORKLOADS, tool.name, f"mount: {one_line(exc)}")
            progress(tool.name, "mount", f"FAIL {one_line(exc)}")
            tool.cleanup()
            return
        try:
            self._run_workloads(tool)
        finally:
            tool.cleanup()

    def _run_workloads(self, tool: Tool) -> None:
        for i, workload in enumerate(WORKLOADS):
            if tool.root is None and workload.raw is None:
                self.results.record(workload, tool.name, None)
                continue
            if workload.remount_before:
                try:
                    tool.remount()
                except Exception as exc:
                    self.results.fail(WORKLOADS[i:], tool.name, f"remount: {one_line(exc)}")
                    progress(tool.name, "remount", f"FAIL {one_line(exc)}")
                    return
            self._run_workload(tool, workload)

    def _run_workload(self, tool: Tool, workload: Workload) -> None:
        job = Job(workload.key, tool.bucket, self.s3, self.plan,
                  None if tool.root is None else str(tool.root))
        try:
            timings, requests = run_job_process(job, self.timeout, tool.job_prefix(),
                                                tool.job_env())
        except JobFailed as exc:
            self.results.record(workload, tool.name, Failure(str(exc)))
            progress(tool.name, workload.key, f"FAIL {exc}")
            return
        self.results.record(workload, tool.name, timings)
        if requests:
            self.results.requests[(workload.key, tool.name)] = requests
        for row, seconds in timings.items():
            progress(tool.name, row, f"{seconds:8.3f} s")
