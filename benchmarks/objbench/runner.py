"""Run a suite of workloads on one tool, every workload ``reps`` times, and collect the
timings, the server's counts and the daemon's usage (or the failures).

Before a repetition, untimed: the workload's fixture (fill the bucket before the first,
undo the previous repetition before the others), then a remount if there was a fixture
or the workload is cold, so that the tool starts from the store, not from its caches.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from objbench.config import Job, Plan, S3Endpoint
from objbench.fixtures import FixtureContext
from objbench.job import one_line
from objbench.resources import UsageMeter
from objbench.results import Results
from objbench.s3client import botocore_client
from objbench.tools import Tool
from objbench.workloads import Timings, Workload

BENCH_DIR = Path(__file__).resolve().parent.parent


class JobFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class JobResult:
    timings: Timings
    requests: dict[str, int] | None  # None: the server counts nothing
    traffic: dict[str, int]


def run_job_process(job: Job, timeout: float, prefix: list[str] | None = None,
                    env: dict[str, str] | None = None) -> JobResult:
    """Time one repetition in a child process (see objbench/job.py), run under ``prefix``.
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
    counts = result["counts"]
    return JobResult(result["timings"], None if counts is None else counts["requests"],
                     {} if counts is None else counts["traffic"])


def warm_bucket(s3: S3Endpoint, bucket: str) -> None:
    """One small PUT, GET and DELETE, so that the server has its volumes for the bucket
    before anything is timed."""
    client = botocore_client(s3)
    client.put_object(Bucket=bucket, Key=".warmup", Body=b"x" * 4096)
    client.get_object(Bucket=bucket, Key=".warmup")["Body"].read()
    client.delete_object(Bucket=bucket, Key=".warmup")


STARTED = time.monotonic()


def progress(tool: str, what: str, text: str) -> None:
    """One line per figure, after the run's elapsed time (where the time goes)."""
    elapsed = time.monotonic() - STARTED
    print(f"  {elapsed:5.0f} s  {tool:<9} {what:<24} {text}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Suite:
    """Workloads run in order on one tool, with one plan, recorded under ``series``."""

    series: str
    plan: Plan
    workloads: tuple[Workload, ...]


@dataclass
class Runner:
    server: S3Endpoint  # the server itself: fixtures, polling and counting
    results: Results
    timeout: float

    def run_tool(self, tool: Tool, suite: Suite) -> None:
        """Every workload of ``suite`` on ``tool``; failures are recorded, never raised."""
        try:
            warm_bucket(self.server, tool.bucket)
            tool.mount()
        except Exception as exc:
            self._fail(suite, suite.workloads, tool, f"mount: {one_line(exc)}")
            progress(tool.name, "mount", f"FAIL {one_line(exc)}")
            tool.cleanup()
            return
        try:
            self._run_workloads(tool, suite)
        finally:
            tool.cleanup()

    def _fail(self, suite: Suite, workloads: tuple[Workload, ...], tool: Tool,
              reason: str) -> None:
        for workload in workloads:
            for row, _ in workload.rows():
                self.results.fail(suite.series, row, tool.name, reason)

    def _run_workloads(self, tool: Tool, suite: Suite) -> None:
        fixtures = FixtureContext(self.server, tool.bucket, suite.plan)
        for i, workload in enumerate(suite.workloads):
            if workload.prepare_for(raw=tool.root is None) is None:
                for row, _ in workload.rows():
                    self.results.absent.add((suite.series, row, tool.name))
                continue
            reps = workload.reps(suite.plan)
            for rep in range(reps):
                fixture = workload.setup if rep == 0 else workload.reset
                try:
                    if fixture is not None:
                        fixture(fixtures)
                except Exception as exc:
                    self._fail(suite, (workload,), tool, f"untimed set-up: {one_line(exc)}")
                    progress(tool.name, workload.key, f"FAIL set-up: {one_line(exc)}")
                    break
                if workload.cold or fixture is not None:
                    try:
                        tool.remount()
                    except Exception as exc:
                        self._fail(suite, suite.workloads[i:], tool,
                                   f"remount: {one_line(exc)}")
                        progress(tool.name, "remount", f"FAIL {one_line(exc)}")
                        return
                if not self._run_rep(tool, suite, workload, rep, reps):
                    break

    def _run_rep(self, tool: Tool, suite: Suite, workload: Workload, rep: int,
                 reps: int) -> bool:
        job = Job(workload.key, tool.bucket, tool.s3, suite.plan,
                  None if tool.root is None else str(tool.root), rep, check=self.server)
        meter = UsageMeter(tool.daemons())
        try:
            result = run_job_process(job, self.timeout, tool.job_prefix(), tool.job_env())
        except JobFailed as exc:
            self._fail(suite, (workload,), tool, str(exc))
            progress(tool.name, workload.key, f"FAIL {exc}")
            return False
        usage = meter.stop()
        series = suite.series
        for row, seconds in result.timings.items():
            self.results.add_time(series, row, tool.name, seconds)
            progress(tool.name, row, f"{seconds:8.3f} s" +
                     (f"  [{rep + 1}/{reps}]" if reps > 1 else ""))
        if result.requests is not None:
            self.results.add_counts(series, workload.key, tool.name, result.requests,
                                    result.traffic)
        if usage is not None:
            self.results.add_usage(series, workload.key, tool.name, usage)
        return True
