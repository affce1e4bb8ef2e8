"""When a write is durable: a plain S3 client (botocore, on the server directly) reads
what was written. New objects are polled for with HEAD or LIST; an overwrite or append
changes an object that is already there, so its new bytes are polled for with a ranged
GET. After the clock stops, ``verify`` checks (untimed) that the bytes around the change
are still the old ones."""

from __future__ import annotations

from objbench.config import KIB
from objbench.context import Check, Context
from objbench.payloads import (
    APPEND,
    BIG,
    PAGE,
    SMALL,
    append_payload,
    local_range,
    overwrite_offset,
    overwrite_payload,
    size_before_append,
    small_names,
    small_payload,
    tree_files,
)
from objbench.s3client import (
    list_keys,
    list_objects,
    read_range,
    wait_content,
    wait_until,
    wait_visible_keys,
    wait_visible_object,
)

EDGE = 64 * KIB  # how much of the old bytes around a change verify compares


def expect_bytes(ctx: Context, what: str, start: int, expected: bytes) -> None:
    got = read_range(ctx.check, ctx.bucket, BIG, start, len(expected))
    if got != expected:
        raise RuntimeError(f"{BIG}: {what} ({len(expected)} bytes at {start}) differ "
                           f"from what was written")


def big_written(ctx: Context) -> None:
    wait_visible_object(ctx.check, ctx.bucket, BIG, ctx.plan.big_bytes,
                        ctx.plan.visible_timeout)


def verify_big(ctx: Context) -> None:
    size = ctx.plan.big_bytes
    for what, start in (("head", 0), ("tail", size - EDGE)):
        expect_bytes(ctx, what, start, local_range(ctx.plan, start, EDGE))


def overwritten(ctx: Context) -> None:
    wait_content(ctx.check, ctx.bucket, BIG, ctx.plan.big_bytes, overwrite_offset(ctx.plan),
                 overwrite_payload(ctx.rep), ctx.plan.visible_timeout)


def verify_overwrite(ctx: Context) -> None:
    offset = overwrite_offset(ctx.plan)
    for what, start in (("bytes before the change", offset - EDGE),
                        ("bytes after the change", offset + PAGE)):
        expect_bytes(ctx, what, start, local_range(ctx.plan, start, EDGE))


def appended(ctx: Context) -> None:
    base = size_before_append(ctx.plan, ctx.rep)
    wait_content(ctx.check, ctx.bucket, BIG, base + APPEND, base, append_payload(ctx.rep),
                 ctx.plan.visible_timeout)


def verify_append(ctx: Context) -> None:
    base = size_before_append(ctx.plan, ctx.rep)
    old_tail = (local_range(ctx.plan, base - EDGE, EDGE) if ctx.rep == 0
                else append_payload(ctx.rep - 1)[-EDGE:])
    expect_bytes(ctx, "bytes before the appended ones", base - EDGE, old_tail)


def small_written(ctx: Context) -> None:
    wait_visible_keys(ctx.check, ctx.bucket, f"{SMALL}/",
                      {f"{SMALL}/{name}" for name in small_names(ctx.plan)},
                      ctx.plan.visible_timeout)


def verify_small(ctx: Context) -> None:
    sizes = {obj["Key"]: obj["Size"] for obj in list_objects(ctx.check, ctx.bucket, f"{SMALL}/")
             if not obj["Key"].endswith("/")}
    wrong = [key for key, size in sizes.items() if size != ctx.plan.small_bytes]
    if wrong:
        raise RuntimeError(f"{len(wrong)} small files have the wrong size, e.g. {wrong[0]}")
    name = sorted(sizes)[-1].rsplit("/", 1)[1]
    body = ctx.check.get_object(Bucket=ctx.bucket, Key=f"{SMALL}/{name}")["Body"].read()
    if body != small_payload(ctx.plan, name):
        raise RuntimeError(f"{SMALL}/{name} differs from what was written")


def small_deleted(ctx: Context) -> None:
    """No file left (a directory marker may be: rclone and the raw client make none)."""
    wait_until(lambda: next(list_keys(ctx.check, ctx.bucket, f"{SMALL}/"), None) is None,
               ctx.plan.visible_timeout, f"no file left under {SMALL}/")


def tree_written(dest: str) -> Check:
    def check(ctx: Context) -> None:
        wait_visible_keys(ctx.check, ctx.bucket, f"{dest}/",
                          {f"{dest}/{key}" for key, _ in tree_files(ctx.plan)},
                          ctx.plan.visible_timeout)
    return check
