"""Untimed preparation on the bucket itself, with the raw client: filling it with what a
workload reads, and removing what a write left so that the write can be repeated.

Objects are put with their directory markers ("dir/" keys), so that every tool sees the
directories. These run in the benchmark's own process, directly against the server; the
runner remounts afterwards so that no tool works from what it had cached before.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import obstore

from objbench.config import Plan, S3Endpoint
from objbench.s3client import (
    botocore_client,
    list_objects,
    obstore_store,
    wait_gone,
    wait_until,
)

# PUTs in flight at once: obstore's async client (no GIL) does ~1000 small PUTs a
# second here at 16, about twice what 32 botocore threads do; more only queue up.
CONCURRENCY = 16
DELETE_BATCH = 1000


@dataclass
class FixtureContext:
    s3: S3Endpoint  # the server directly
    bucket: str
    plan: Plan

    @cached_property
    def client(self) -> Any:
        return botocore_client(self.s3)

    @cached_property
    def store(self) -> Any:
        return obstore_store(self.s3, self.bucket)


Fixture = Callable[[FixtureContext], None]


def parents(key: str) -> list[str]:
    """The directory markers above ``key``: "a/b/c" -> ["a/", "a/b/"]."""
    parts = key.split("/")[:-1]
    return ["/".join(parts[:i + 1]) + "/" for i in range(len(parts))]


def put_objects(ctx: FixtureContext, objects: Iterable[tuple[str, bytes]]) -> None:
    """PUT every (key, body), CONCURRENCY at a time, and the markers of their
    directories (botocore: obstore takes "dir/" for the path "dir")."""
    items = list(objects)
    store = ctx.store

    async def put_all() -> None:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def put(key: str, body: bytes) -> None:
            async with slots:
                await obstore.put_async(store, key, body)
        await asyncio.gather(*(put(key, body) for key, body in items))

    asyncio.run(put_all())
    for marker in sorted({m for key, _ in items for m in parents(key)}):
        ctx.client.put_object(Bucket=ctx.bucket, Key=marker, Body=b"")


def remove_prefix(prefix: str) -> Fixture:
    """Delete everything under ``prefix`` ("dir/"), files first, then the directories
    deepest first, and wait until LIST agrees. (SeaweedFS keeps a directory whose files
    were deleted, and shows it to a delimiter LIST, until its "dir/" key is deleted after
    them: a tool would find the directory still there.)"""
    def remove(ctx: FixtureContext) -> None:
        keys = [obj["Key"] for obj in list_objects(ctx.client, ctx.bucket, prefix)]
        files = [k for k in keys if not k.endswith("/")]
        for i in range(0, len(files), DELETE_BATCH):
            batch = [{"Key": k} for k in files[i:i + DELETE_BATCH]]
            ctx.client.delete_objects(Bucket=ctx.bucket, Delete={"Objects": batch,
                                                                   "Quiet": True})
        dirs = {prefix, *(m for k in keys for m in parents(k) if m.startswith(prefix))}
        for directory in sorted(dirs, key=lambda d: -d.count("/")):
            ctx.client.delete_object(Bucket=ctx.bucket, Key=directory)
        wait_gone(ctx.client, ctx.bucket, prefix, ctx.plan.visible_timeout)
        wait_until(lambda: prefix not in listed_directories(ctx, prefix),
                   ctx.plan.visible_timeout, f"{prefix} gone from its parent's listing")
    return remove


def listed_directories(ctx: FixtureContext, prefix: str) -> list[str]:
    """The directories a delimiter LIST shows next to ``prefix`` ("a/b/" -> those in "a/")."""
    parent = prefix.rstrip("/").rpartition("/")[0]
    result = ctx.client.list_objects_v2(Bucket=ctx.bucket, Delimiter="/",
                                        Prefix=f"{parent}/" if parent else "")
    return [p["Prefix"] for p in result.get("CommonPrefixes", [])]


def remove_key(key: str) -> Fixture:
    def remove(ctx: FixtureContext) -> None:
        ctx.client.delete_object(Bucket=ctx.bucket, Key=key)
        wait_gone(ctx.client, ctx.bucket, key, ctx.plan.visible_timeout)
    return remove


def put_small_files(directory: str, names: Callable[[Plan], list[str]],
                    payload: Callable[[Plan, str], bytes]) -> Fixture:
    """``directory/NAME`` for every name, with its payload."""
    def fill(ctx: FixtureContext) -> None:
        put_objects(ctx, ((f"{directory}/{name}", payload(ctx.plan, name))
                          for name in names(ctx.plan)))
    return fill


def fan_keys(plan: Plan, top: str) -> list[str]:
    return [f"{top}/d{d:02d}/f{f:04d}" for d in range(plan.fan_dirs)
            for f in range(plan.fan_files)]


def put_fan_tree(top: str) -> Fixture:
    """The find/du tree: fan_dirs directories of fan_files small random files each."""
    def fill(ctx: FixtureContext) -> None:
        rng = random.Random(3)
        put_objects(ctx, ((key, rng.randbytes(ctx.plan.small_bytes))
                          for key in fan_keys(ctx.plan, top)))
    return fill


def ls_dir(n: int) -> str:
    return f"ls{n}"


def put_ls_dirs(ctx: FixtureContext) -> None:
    """One directory of n tiny objects for every n in ls_sizes (each once: a later run
    against the same bucket would find them there)."""
    def all_there(n: int) -> Callable[[], bool]:
        prefix = f"{ls_dir(n)}/"
        return lambda: sum(1 for _ in list_objects(ctx.client, ctx.bucket, prefix)) == n + 1

    for n in ctx.plan.ls_sizes:
        put_objects(ctx, ((f"{ls_dir(n)}/e{i:06d}", b"%d\n" % i) for i in range(n)))
        wait_until(all_there(n), ctx.plan.visible_timeout, f"{n} objects under {ls_dir(n)}/")
