"""The workloads: each a file-system version (run on a mountpoint) and a raw-client
version (run on the bucket), what makes it repeatable, and for writes when they are
durable; and ``run_job``, which times one repetition in the child process.

A repetition is timed in steps: ``prepare`` (untimed: payloads, clients) returns the
action; the action is timed; for writes, the bucket is then polled until a plain client
reads what was written, and the time from the action's start to then is the *durable*
row; the server's counters are read; ``verify`` checks the result (untimed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

from objbench import durable, fsops, rawops
from objbench.config import Job, Plan
from objbench.context import Check, Context, Prepare
from objbench.fixtures import (
    Fixture,
    put_fan_tree,
    put_small_files,
    remove_key,
    remove_prefix,
)
from objbench.payloads import BIG, FAN, SMALL, TREE, TREE_DATA, small_names, small_payload
from objbench.requests import ClientCounter, ServerCounts, server_counts

DURABLE_SUFFIX = "_durable"
Timings = dict[str, float]


@dataclass(frozen=True)
class Rate:
    """A figure derived from a row's time: ``count / seconds`` ("IOPS"), or with
    ``per_item`` milliseconds per item."""

    unit: str
    count: Callable[[Plan], int]
    per_item: bool = False

    def of(self, plan: Plan, seconds: float) -> float:
        n = self.count(plan)
        return seconds * 1000 / n if self.per_item else n / seconds


@dataclass(frozen=True)
class Workload:
    key: str
    label: str  # str.format()ted with the Plan's fields
    fs: Prepare | None  # None: only the raw client has it
    raw: Prepare | None  # None: the raw client has no equivalent ("-")
    durable: Check | None = None  # writes: returns once a plain client reads the result
    verify: Check | None = None  # untimed check of the result, after the counters
    cold: bool = False  # remount before every repetition
    setup: Fixture | None = None  # untimed, before the first repetition; then a remount
    reset: Fixture | None = None  # untimed, before every later one; then a remount
    rate: Rate | None = None
    max_reps: int | None = None  # fewer repetitions than the plan's (long, steady rows)

    def reps(self, plan: Plan) -> int:
        return plan.reps if self.max_reps is None else min(plan.reps, self.max_reps)

    def rows(self) -> list[tuple[str, str]]:
        """(row key, label template) of the table rows this workload fills."""
        rows = [(self.key, self.label)]
        if self.durable is not None:
            rows.append((self.key + DURABLE_SUFFIX, self.label + ", durable"))
        return rows

    def prepare_for(self, raw: bool) -> Prepare | None:
        return self.raw if raw else self.fs


MAIN: tuple[Workload, ...] = (
    Workload("write_big", "seq. write {big_mib} MiB (cp)", fsops.write_big, rawops.write_big,
             durable=durable.big_written, verify=durable.verify_big, reset=remove_key(BIG)),
    Workload("read_big", "seq. read {big_mib} MiB, cold", fsops.read_big, rawops.read_big,
             cold=True),
    Workload("reread_big", "seq. read {big_mib} MiB again, warm", fsops.read_big, None),
    Workload("random_reads", "{random_reads} random 4 KiB reads in {big_mib} MiB, cold",
             fsops.random_reads, rawops.random_reads, cold=True,
             rate=Rate("IOPS", lambda plan: plan.random_reads)),
    Workload("overwrite", "overwrite 4 KiB in the middle of {big_mib} MiB (r+, pwrite)",
             fsops.overwrite, rawops.overwrite, durable=durable.overwritten,
             verify=durable.verify_overwrite, cold=True),
    Workload("append", "append 1 MiB to {big_mib} MiB (open 'ab')", fsops.append,
             rawops.append, durable=durable.appended, verify=durable.verify_append,
             cold=True),
    Workload("copy_whole", "UploadPartCopy of the whole {big_mib} MiB object onto itself",
             None, rawops.copy_whole),
    Workload("create_small", "create {n_small} x {small_kib} KiB files", fsops.create_small,
             rawops.create_small, durable=durable.small_written, verify=durable.verify_small,
             reset=remove_prefix(f"{SMALL}/")),
    Workload("list_small", "ls -l of {n_small} files, cold", fsops.list_small,
             rawops.list_small, cold=True),
    Workload("ls_warm", "ls -l of {n_small} files, warm (median pass)",
             fsops.warm(fsops.ls_l), None),
    Workload("find_warm", "find -size of {n_small} files, warm (median pass)",
             fsops.warm(fsops.find_size), None),
    Workload("stat_warm", "stat() of {n_small} files, warm (median pass)",
             fsops.warm(fsops.stat_each), None),
    Workload("copy_tree", "cp -a tree of {tree_files} files", fsops.copy_tree("-a", TREE),
             rawops.copy_tree(TREE), durable=durable.tree_written(TREE),
             reset=remove_prefix(f"{TREE}/")),
    Workload("copy_tree_data", "cp -r tree of {tree_files} files (no metadata)",
             fsops.copy_tree("-r", TREE_DATA), rawops.copy_tree(TREE_DATA),
             durable=durable.tree_written(TREE_DATA), reset=remove_prefix(f"{TREE_DATA}/")),
    Workload("read_small", "read {n_small} x {small_kib} KiB files, cold", fsops.read_small,
             rawops.read_small, cold=True),
    Workload("delete_small", "rm -r {n_small} files, cold", fsops.delete_small,
             rawops.delete_small, durable=durable.small_deleted, cold=True,
             reset=put_small_files(SMALL, small_names, small_payload)),
    Workload("find_fan", "find -type f -size +0, {fan_dirs} dirs x {fan_files} files, cold",
             fsops.find_fan, rawops.list_fan, cold=True, setup=put_fan_tree(FAN)),
    Workload("du_fan", "du -sh, {fan_dirs} dirs x {fan_files} files, cold", fsops.du_fan,
             rawops.list_fan, cold=True),
)

# The rows the latency series repeats.
HEADLINE = ("write_big", "read_big", "create_small", "list_small", "read_small",
            "delete_small")


def latency_workloads() -> tuple[Workload, ...]:
    return tuple(w for w in MAIN if w.key in HEADLINE)


def entries(n: int) -> Callable[[Plan], int]:
    return lambda plan: n


# Listings larger than this run once: one takes up to minutes, and varies little.
LS_REPEATED_UP_TO = 10_000


def ls_workloads(plan: Plan) -> tuple[Workload, ...]:
    """``ls -l`` of one directory at each size (filled once, before any tool runs)."""
    return tuple(Workload(f"ls_dir_{n}", f"ls -l of one directory of {n:,} entries, cold",
                          fsops.ls_big_dir(n), rawops.list_big_dir(n), cold=True,
                          rate=Rate("ms per entry", entries(n), per_item=True),
                          max_reps=None if n <= LS_REPEATED_UP_TO else 1)
                 for n in plan.ls_sizes)


def all_workloads(plan: Plan) -> tuple[Workload, ...]:
    return MAIN + ls_workloads(plan)


def run_job(job: Job) -> tuple[Timings, ServerCounts | None]:
    """Time one repetition as the job says; raises on any failure. Also what the server
    counted for the bucket meanwhile (requests, body bytes), less the benchmark's own
    polling; None when the server counts nothing."""
    workload = {w.key: w for w in all_workloads(job.plan)}[job.workload]
    prepare = workload.prepare_for(raw=job.root is None)
    if prepare is None:
        raise ValueError(f"{job.workload}: not for this tool")
    ctx = Context(job)
    # Only writes poll; a botocore client costs ~0.1 s to make, so only they get one.
    polling = ClientCounter(ctx.check) if workload.durable is not None else None
    action = prepare(ctx)
    metrics = job.server.metrics_url
    before = server_counts(metrics, job.bucket) if metrics else None
    start = perf_counter()
    measured = action()
    timings = {workload.key: perf_counter() - start if measured is None else measured}
    polled = ServerCounts(Counter(), Counter())
    if workload.durable is not None and polling is not None:
        polling.on = True
        workload.durable(ctx)
        polling.on = False
        timings[workload.key + DURABLE_SUFFIX] = perf_counter() - start
        polled = polling.counts
    counted = None if before is None else server_counts(metrics, job.bucket) - before - polled
    if workload.verify is not None:
        workload.verify(ctx)
    return timings, counted
