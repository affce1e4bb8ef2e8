"""The workloads' raw-client side: no file system, the least each one needs from the
store. obstore for data (the large file, and the small files one request at a time),
botocore for listing and the server-side partial updates."""

from __future__ import annotations

from pathlib import Path

import obstore

from objbench import partial
from objbench.config import MIB
from objbench.context import Action, Context, Prepare, check_count
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
    tree_files,
)
from objbench.s3client import list_keys, list_objects


def write_big(ctx: Context) -> Action:
    store, source = ctx.store, Path(ctx.plan.local_big)

    def action() -> None:
        obstore.put(store, BIG, source)
    return action


def read_big(ctx: Context) -> Action:
    store, expected = ctx.store, ctx.plan.big_bytes

    def action() -> None:
        total = sum(len(chunk) for chunk in obstore.get(store, BIG).stream(min_chunk_size=MIB))
        check_count(f"bytes read from {BIG}", total, expected)
    return action


def random_reads(ctx: Context) -> Action:
    store, offsets = ctx.store, random_offsets(ctx.plan)

    def action() -> None:
        for offset in offsets:
            got = obstore.get_range(store, BIG, start=offset, length=PAGE)
            check_count(f"bytes at {offset}", len(got), PAGE)
    return action


def overwrite(ctx: Context) -> Action:
    client, offset, data = ctx.client, overwrite_offset(ctx.plan), overwrite_payload(ctx.rep)

    def action() -> None:
        partial.overwrite(client, ctx.bucket, BIG, offset, data)
    return action


def append(ctx: Context) -> Action:
    client, data = ctx.client, append_payload(ctx.rep)

    def action() -> None:
        partial.append(client, ctx.bucket, BIG, data)
    return action


def copy_whole(ctx: Context) -> Action:
    client = ctx.client

    def action() -> None:
        partial.copy_whole(client, ctx.bucket, BIG)
    return action


def create_small(ctx: Context) -> Action:
    store, payloads = ctx.store, small_payloads(ctx.plan)

    def action() -> None:
        for name, data in payloads:
            obstore.put(store, f"{SMALL}/{name}", data)
    return action


def list_small(ctx: Context) -> Action:
    """What ``ls -l`` needs of each file beyond LIST (mode, owner, times): a HEAD."""
    client = ctx.client

    def action() -> None:
        keys = list(list_keys(client, ctx.bucket, f"{SMALL}/"))
        for key in keys:
            client.head_object(Bucket=ctx.bucket, Key=key)
        check_count(f"objects under {SMALL}/", len(keys), ctx.plan.n_small)
    return action


def copy_tree(dest: str) -> Prepare:
    """One PUT per file of the local tree, under ``dest/``."""
    def prepare(ctx: Context) -> Action:
        store, files = ctx.store, tree_files(ctx.plan)

        def action() -> None:
            for key, path in files:
                obstore.put(store, f"{dest}/{key}", path.read_bytes())
        return action
    return prepare


def read_small(ctx: Context) -> Action:
    store, names, size = ctx.store, small_names(ctx.plan), ctx.plan.small_bytes

    def action() -> None:
        for name in names:
            data = obstore.get(store, f"{SMALL}/{name}").bytes()
            check_count(f"bytes of {SMALL}/{name}", len(data), size)
    return action


def delete_small(ctx: Context) -> Action:
    store, names = ctx.store, small_names(ctx.plan)

    def action() -> None:
        for name in names:
            obstore.delete(store, f"{SMALL}/{name}")
    return action


def list_fan(ctx: Context) -> Action:
    """``find -size`` and ``du`` of the tree: one recursive LIST (it gives the sizes)."""
    client, expected = ctx.client, ctx.plan.fan_dirs * ctx.plan.fan_files

    def action() -> None:
        sizes = [obj["Size"] for obj in list_objects(client, ctx.bucket, f"{FAN}/")
                 if not obj["Key"].endswith("/")]
        check_count(f"objects under {FAN}/", sum(1 for s in sizes if s > 0), expected)
    return action


def list_big_dir(n: int) -> Prepare:
    """``ls -l`` of n entries: LIST alone (sizes and times come with it)."""
    def prepare(ctx: Context) -> Action:
        client = ctx.client

        def action() -> None:
            check_count(f"objects under {ls_dir(n)}/",
                        sum(1 for _ in list_keys(client, ctx.bucket, f"{ls_dir(n)}/")), n)
        return action
    return prepare
