"""What the workloads write and where they read: names, contents and offsets, all
derived from the plan (and the repetition) so that the timed side and the checks agree
without talking to each other."""

from __future__ import annotations

import random
from pathlib import Path

from objbench.config import KIB, MIB, Plan

BIG = "big"
SMALL = "small"
TREE = "tree"
TREE_DATA = "tree-r"
FAN = "fan"

PAGE = 4 * KIB  # one random read; one overwrite
APPEND = MIB


def small_names(plan: Plan) -> list[str]:
    return [f"f{i:05d}" for i in range(plan.n_small)]


def small_payload(plan: Plan, name: str) -> bytes:
    return random.Random(name).randbytes(plan.small_bytes)


def small_payloads(plan: Plan) -> list[tuple[str, bytes]]:
    return [(name, small_payload(plan, name)) for name in small_names(plan)]


def tree_files(plan: Plan) -> list[tuple[str, Path]]:
    """(relative key, local path) of every regular file of the local tree."""
    top = Path(plan.local_tree)
    return sorted((p.relative_to(top).as_posix(), p) for p in top.rglob("*") if p.is_file())


def random_offsets(plan: Plan) -> list[int]:
    """Seeded, 4 KiB-aligned offsets in the large file."""
    rng = random.Random(5)
    pages = plan.big_bytes // PAGE
    return [rng.randrange(pages) * PAGE for _ in range(plan.random_reads)]


def overwrite_offset(plan: Plan) -> int:
    return plan.big_bytes // 2


def overwrite_payload(rep: int) -> bytes:
    """Different in every repetition, so that each one changes the object."""
    return random.Random(f"overwrite {rep}").randbytes(PAGE)


def append_payload(rep: int) -> bytes:
    return random.Random(f"append {rep}").randbytes(APPEND)


def size_before_append(plan: Plan, rep: int) -> int:
    """Each repetition appends to what the one before left."""
    return plan.big_bytes + rep * APPEND


def local_range(plan: Plan, start: int, length: int) -> bytes:
    """Bytes of the local source of the large file."""
    with open(plan.local_big, "rb") as f:
        f.seek(start)
        return f.read(length)
