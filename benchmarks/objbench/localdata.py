"""The local source data the write workloads copy from: one large random file and a tree
of small files in a few directories."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

from objbench.config import KIB, MIB, Plan

TREE_DIRS = ("", "src", "src/core", "src/util", "docs", "tests", "data/raw", "data/out")
TREE_SIZES = (512, 2 * KIB, 8 * KIB, 32 * KIB, 128 * KIB)
CHUNK = 8 * MIB


def write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        remaining = size
        while remaining:
            n = min(CHUNK, remaining)
            f.write(os.urandom(n))
            remaining -= n


def write_tree(top: Path, count: int, seed: int = 7) -> None:
    """``count`` regular files spread over TREE_DIRS; no empty directories, no symlinks
    (rclone stores neither on S3)."""
    rng = random.Random(seed)
    for i in range(count):
        directory = top / TREE_DIRS[i % len(TREE_DIRS)]
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"file{i:04d}.dat").write_bytes(rng.randbytes(rng.choice(TREE_SIZES)))


def make_local_data(directory: Path, plan: Plan) -> Plan:
    """Write the source files under ``directory``; the plan that points at them."""
    directory.mkdir(parents=True, exist_ok=True)
    big, tree = directory / "big.bin", directory / "tree"
    write_random_file(big, plan.big_bytes)
    write_tree(tree, plan.tree_files)
    return replace(plan, local_big=str(big), local_tree=str(tree))
