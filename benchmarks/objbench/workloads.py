"""The workloads, each as a file-system version (run on a mountpoint) and a raw-client
version (run on the bucket), plus the check that what was written is visible in the bucket.

A workload is timed in three steps: ``prepare`` (untimed: make payloads, clients) returns
the action; the action is timed; then, for writes, the bucket is polled until the objects
are there, and the time from the action's start to that point is a second row.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

from objbench.config import MIB, Job, Plan
from objbench.requests import ClientCounter, server_counts
from objbench.s3client import (
    botocore_client,
    list_keys,
    obstore_store,
    wait_visible_count,
    wait_visible_object,
)

BIG = "big"
SMALL = "small"
TREE = "tree"
TREE_DATA = "tree-r"
VISIBLE_SUFFIX = "_visible"

# An action returns None (its wall time is the timing) or the seconds it measured itself.
Action = Callable[[], float | None]
Timings = dict[str, float]


@dataclass(frozen=True)
class Context:
    """What a workload works on: the job, a botocore client, and the mountpoint if any."""

    job: Job
    client: Any

    @property
    def plan(self) -> Plan:
        return self.job.plan

    @property
    def bucket(self) -> str:
        return self.job.bucket

    @property
    def root(self) -> Path:
        if self.job.root is None:
            raise ValueError("this workload needs a mountpoint")
        return Path(self.job.root)


Prepare = Callable[[Context], Action]
Visible = Callable[[Context], None]


class CommandError(RuntimeError):
    pass


def run_command(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            check=False)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["(no message)"]
        more = f" (and {len(lines) - 1} more errors)" if len(lines) > 1 else ""
        raise CommandError(f"{' '.join(argv[:2])} exited {result.returncode}: {lines[0]}{more}")


def check_count(what: str, got: int, expected: int) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got}, expected {expected}")


def small_names(plan: Plan) -> list[str]:
    return [f"f{i:05d}" for i in range(plan.n_small)]


def small_payloads(plan: Plan) -> list[tuple[str, bytes]]:
    rng = random.Random(1)
    return [(name, rng.randbytes(plan.small_bytes)) for name in small_names(plan)]


def tree_files(plan: Plan) -> list[tuple[str, Path]]:
    """(relative key, local path) of every regular file of the local tree."""
    top = Path(plan.local_tree)
    return sorted((p.relative_to(top).as_posix(), p) for p in top.rglob("*") if p.is_file())


# ------------------------------------------------------------------ file-system side --

def fs_write_big(ctx: Context) -> Action:
    argv = ["cp", ctx.plan.local_big, str(ctx.root / BIG)]
    return lambda: run_command(argv)


def fs_read_big(ctx: Context) -> Action:
    path, expected = ctx.root / BIG, ctx.plan.big_bytes

    def action() -> None:
        buf, total = bytearray(MIB), 0
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
        check_count(f"bytes read from {BIG}", total, expected)
    return action


def fs_create_small(ctx: Context) -> Action:
    directory, payloads = ctx.root / SMALL, small_payloads(ctx.plan)

    def action() -> None:
        directory.mkdir()
        for name, data in payloads:
            with open(directory / name, "wb") as f:
                f.write(data)
    return action


def fs_list_small(ctx: Context) -> Action:
    directory, expected = ctx.root / SMALL, ctx.plan.n_small

    def action() -> None:
        count = 0
        with os.scandir(directory) as entries:
            for entry in entries:
                entry.stat(follow_symlinks=False)
                count += 1
        check_count(f"entries of {SMALL}/", count, expected)
    return action


WARM_REPEATS = 9


def fs_warm(command: Callable[[Path, list[str]], None]) -> Prepare:
    """Metadata with attributes cached: one untimed pass, then WARM_REPEATS timed ones
    straight after; the median pass. (Every tool caches for 1 s by default, so one pass
    in a run may fall on the expiry and ask the store again: the median leaves it out.)"""
    def prepare(ctx: Context) -> Action:
        directory, names = ctx.root / SMALL, small_names(ctx.plan)
        command(directory, names)

        def action() -> float:
            passes = []
            for _ in range(WARM_REPEATS):
                start = perf_counter()
                command(directory, names)
                passes.append(perf_counter() - start)
            return statistics.median(passes)
        return action
    return prepare


def ls_l(directory: Path, names: list[str]) -> None:
    out = subprocess.run(["ls", "-l", str(directory)], capture_output=True, text=True,
                         check=True).stdout
    check_count(f"lines of ls -l {SMALL}/", len(out.splitlines()) - 1, len(names))


def find_size(directory: Path, names: list[str]) -> None:
    # -size needs each file's attributes (-type alone is answered from d_type).
    out = subprocess.run(["find", str(directory), "-type", "f", "-size", "+0"],
                         capture_output=True, text=True, check=True).stdout
    check_count(f"files found under {SMALL}/", len(out.splitlines()), len(names))


def stat_each(directory: Path, names: list[str]) -> None:
    for name in names:
        os.stat(directory / name)


def fs_copy_tree(flag: str, dest: str) -> Prepare:
    """``cp FLAG`` of the local tree to ``dest`` in the mount."""
    def prepare(ctx: Context) -> Action:
        argv = ["cp", flag, ctx.plan.local_tree, str(ctx.root / dest)]
        return lambda: run_command(argv)
    return prepare


def fs_read_small(ctx: Context) -> Action:
    directory, names, size = ctx.root / SMALL, small_names(ctx.plan), ctx.plan.small_bytes

    def action() -> None:
        for name in names:
            with open(directory / name, "rb") as f:
                check_count(f"bytes of {SMALL}/{name}", len(f.read()), size)
    return action


def fs_delete_small(ctx: Context) -> Action:
    argv = ["rm", "-r", str(ctx.root / SMALL)]
    return lambda: run_command(argv)


# ------------------------------------------------------------------------ raw side --

def raw_write_big(ctx: Context) -> Action:
    import obstore

    store, source = obstore_store(ctx.job.s3, ctx.bucket), Path(ctx.plan.local_big)

    def action() -> None:
        obstore.put(store, BIG, source)
    return action


def raw_read_big(ctx: Context) -> Action:
    import obstore

    store, expected = obstore_store(ctx.job.s3, ctx.bucket), ctx.plan.big_bytes

    def action() -> None:
        total = sum(len(chunk) for chunk in obstore.get(store, BIG).stream(min_chunk_size=MIB))
        check_count(f"bytes read from {BIG}", total, expected)
    return action


def raw_create_small(ctx: Context) -> Action:
    payloads = small_payloads(ctx.plan)

    def action() -> None:
        for name, data in payloads:
            ctx.client.put_object(Bucket=ctx.bucket, Key=f"{SMALL}/{name}", Body=data)
    return action


def raw_list_small(ctx: Context) -> Action:
    def action() -> None:
        keys = list(list_keys(ctx.client, ctx.bucket, f"{SMALL}/"))
        for key in keys:
            ctx.client.head_object(Bucket=ctx.bucket, Key=key)
        check_count(f"objects under {SMALL}/", len(keys), ctx.plan.n_small)
    return action


def raw_copy_tree(dest: str) -> Prepare:
    """One PUT per file of the local tree, under ``dest/``."""
    def prepare(ctx: Context) -> Action:
        files = tree_files(ctx.plan)

        def action() -> None:
            for key, path in files:
                with open(path, "rb") as f:
                    ctx.client.put_object(Bucket=ctx.bucket, Key=f"{dest}/{key}", Body=f)
        return action
    return prepare


def raw_read_small(ctx: Context) -> Action:
    names, size = small_names(ctx.plan), ctx.plan.small_bytes

    def action() -> None:
        for name in names:
            body = ctx.client.get_object(Bucket=ctx.bucket, Key=f"{SMALL}/{name}")["Body"]
            check_count(f"bytes of {SMALL}/{name}", len(body.read()), size)
    return action


def raw_delete_small(ctx: Context) -> Action:
    names = small_names(ctx.plan)

    def action() -> None:
        for name in names:
            ctx.client.delete_object(Bucket=ctx.bucket, Key=f"{SMALL}/{name}")
    return action


# --------------------------------------------------------------------- visibility --

def big_visible(ctx: Context) -> None:
    wait_visible_object(ctx.client, ctx.bucket, BIG, ctx.plan.big_bytes,
                        ctx.plan.visible_timeout)


def small_visible(ctx: Context) -> None:
    wait_visible_count(ctx.client, ctx.bucket, f"{SMALL}/", ctx.plan.n_small,
                       ctx.plan.visible_timeout)


def tree_visible(dest: str) -> Visible:
    def visible(ctx: Context) -> None:
        wait_visible_count(ctx.client, ctx.bucket, f"{dest}/", len(tree_files(ctx.plan)),
                           ctx.plan.visible_timeout)
    return visible


# ----------------------------------------------------------------------- registry --

@dataclass(frozen=True)
class Workload:
    key: str
    label: str  # str.format()ted with the Plan's fields
    fs: Prepare
    raw: Prepare | None  # None: the raw client has no equivalent ("-")
    visible: Visible | None = None  # writes: also time until the objects are in the bucket
    remount_before: bool = False  # reads: unmount and mount again first

    def rows(self) -> list[tuple[str, str]]:
        """(row key, label template) of the table rows this workload fills."""
        rows = [(self.key, self.label)]
        if self.visible is not None:
            rows.append((self.key + VISIBLE_SUFFIX, self.label + ", until visible in bucket"))
        return rows


WORKLOADS: tuple[Workload, ...] = (
    Workload("write_big", "seq. write {big_mib} MiB (cp)", fs_write_big, raw_write_big,
             visible=big_visible),
    Workload("read_big", "seq. read {big_mib} MiB", fs_read_big, raw_read_big,
             remount_before=True),
    Workload("create_small", "create {n_small} x {small_kib} KiB files", fs_create_small,
             raw_create_small, visible=small_visible),
    Workload("list_small", "ls -l of {n_small} files", fs_list_small, raw_list_small,
             remount_before=True),
    Workload("ls_warm", "ls -l of {n_small} files, warm (median pass)", fs_warm(ls_l), None),
    Workload("find_warm", "find -size of {n_small} files, warm (median pass)",
             fs_warm(find_size), None),
    Workload("stat_warm", "stat() of {n_small} files, warm (median pass)", fs_warm(stat_each),
             None),
    Workload("copy_tree", "cp -a tree of {tree_files} files", fs_copy_tree("-a", TREE),
             raw_copy_tree(TREE), visible=tree_visible(TREE)),
    Workload("copy_tree_data", "cp -r tree of {tree_files} files (no metadata)",
             fs_copy_tree("-r", TREE_DATA), raw_copy_tree(TREE_DATA),
             visible=tree_visible(TREE_DATA)),
    Workload("read_small", "read {n_small} x {small_kib} KiB files", fs_read_small,
             raw_read_small, remount_before=True),
    Workload("delete_small", "rm -r {n_small} files", fs_delete_small, raw_delete_small),
)
BY_KEY = {w.key: w for w in WORKLOADS}


def run_job(job: Job) -> tuple[Timings, dict[str, int]]:
    """Time one workload as the job says; raises on any failure. Also the requests the
    server answered for the bucket meanwhile, by type, less the polling for visibility
    (empty when the server counts none)."""
    workload = BY_KEY[job.workload]
    ctx = Context(job, botocore_client(job.s3))
    polling = ClientCounter(ctx.client)
    prepare = workload.fs if job.root is not None else workload.raw
    if prepare is None:
        raise ValueError(f"{job.workload}: no raw-client equivalent")
    action = prepare(ctx)
    counted = bool(job.s3.metrics_url)
    before = server_counts(job.s3.metrics_url, job.bucket) if counted else Counter()
    start = perf_counter()
    measured = action()
    timings = {workload.key: perf_counter() - start if measured is None else measured}
    if workload.visible is not None:
        polling.on = True
        workload.visible(ctx)
        polling.on = False
        timings[workload.key + VISIBLE_SUFFIX] = perf_counter() - start
    if not counted:
        return timings, {}
    requests = server_counts(job.s3.metrics_url, job.bucket) - before - polling.counts
    return timings, dict(requests)
