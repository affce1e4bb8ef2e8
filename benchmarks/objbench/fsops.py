"""The workloads' file-system side: what a program does on the mountpoint (or, for
interception, on /objmount/s3/BUCKET)."""

from __future__ import annotations

import os
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from time import perf_counter

from objbench.config import MIB
from objbench.context import (
    Action,
    Context,
    Prepare,
    check_count,
    command_action,
    run_command,
)
from objbench.fixtures import ls_dir
from objbench.payloads import (
    BIG,
    FAN,
    PAGE,
    SMALL,
    append_payload,
    overwrite_offset,
    overwrite_payload,
    random_offsets,
    small_names,
    small_payloads,
)


def write_big(ctx: Context) -> Action:
    argv = ["cp", ctx.plan.local_big, str(ctx.root / BIG)]
    return command_action(argv)


def read_big(ctx: Context) -> Action:
    path, expected = ctx.root / BIG, ctx.plan.big_bytes

    def action() -> None:
        buf, total = bytearray(MIB), 0
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
        check_count(f"bytes read from {BIG}", total, expected)
    return action


def random_reads(ctx: Context) -> Action:
    path, offsets = ctx.root / BIG, random_offsets(ctx.plan)

    def action() -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            for offset in offsets:
                check_count(f"bytes at {offset}", len(os.pread(fd, PAGE, offset)), PAGE)
        finally:
            os.close(fd)
    return action


def overwrite(ctx: Context) -> Action:
    path, offset, data = ctx.root / BIG, overwrite_offset(ctx.plan), overwrite_payload(ctx.rep)

    def action() -> None:
        with open(path, "r+b", buffering=0) as f:
            check_count("bytes written", os.pwrite(f.fileno(), data, offset), len(data))
    return action


def append(ctx: Context) -> Action:
    path, data = ctx.root / BIG, append_payload(ctx.rep)

    def action() -> None:
        with open(path, "ab", buffering=0) as f:
            check_count("bytes appended", f.write(data) or 0, len(data))
    return action


def create_small(ctx: Context) -> Action:
    directory, payloads = ctx.root / SMALL, small_payloads(ctx.plan)

    def action() -> None:
        directory.mkdir()
        for name, data in payloads:
            with open(directory / name, "wb") as f:
                f.write(data)
    return action


def list_small(ctx: Context) -> Action:
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


def warm(command: Callable[[Path, list[str]], None]) -> Prepare:
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


def copy_tree(flag: str, dest: str) -> Prepare:
    """``cp FLAG`` of the local tree to ``dest`` in the mount."""
    def prepare(ctx: Context) -> Action:
        argv = ["cp", flag, ctx.plan.local_tree, str(ctx.root / dest)]
        return command_action(argv)
    return prepare


def read_small(ctx: Context) -> Action:
    directory, names, size = ctx.root / SMALL, small_names(ctx.plan), ctx.plan.small_bytes

    def action() -> None:
        for name in names:
            with open(directory / name, "rb") as f:
                check_count(f"bytes of {SMALL}/{name}", len(f.read()), size)
    return action


def delete_small(ctx: Context) -> Action:
    argv = ["rm", "-r", str(ctx.root / SMALL)]
    return command_action(argv)


def find_fan(ctx: Context) -> Action:
    argv, expected = ["find", str(ctx.root / FAN), "-type", "f", "-size", "+0"], \
        ctx.plan.fan_dirs * ctx.plan.fan_files

    def action() -> None:
        check_count(f"files found under {FAN}/", len(run_command(argv).splitlines()), expected)
    return action


def du_fan(ctx: Context) -> Action:
    argv = ["du", "-sh", str(ctx.root / FAN)]
    return command_action(argv)


def ls_big_dir(n: int) -> Prepare:
    """``ls -l`` of a directory of ``n`` entries."""
    def prepare(ctx: Context) -> Action:
        argv = ["ls", "-l", str(ctx.root / ls_dir(n))]

        def action() -> None:
            check_count(f"lines of ls -l {ls_dir(n)}/", len(run_command(argv).splitlines()) - 1,
                        n)
        return action
    return prepare
