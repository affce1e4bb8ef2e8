"""The notes printed under the tables: what ran, on what, and how to read the figures."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from objbench.config import Plan
from objbench.partial import PART
from objbench.workloads import LS_REPEATED_UP_TO

REPO = Path(__file__).resolve().parent.parent.parent


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        return f"? ({exc})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def versions() -> str:
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or "weed"
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    parts = [f"objmount {commit} (working tree)", first_line(["s3fs", "--version"]),
             first_line(["rclone", "version"]), f"SeaweedFS {first_line([weed, 'version'])}",
             f"obstore {importlib.metadata.version('obstore')}",
             f"botocore {importlib.metadata.version('botocore')}",
             f"Python {sys.version.split()[0]}", f"Linux {os.uname().release}",
             f"{os.cpu_count()} CPUs"]
    return "; ".join(parts)


def latency_notes(plan: Plan, latency_ms: float, cost_note: str) -> list[str]:
    return [
        f"Latency series: every tool reaches the server through a proxy on 127.0.0.1 "
        f"(objbench/latency.py) that forwards each chunk the client sends {latency_ms:g} ms "
        "after it arrived, in order and without limiting bandwidth; replies are not "
        f"delayed, so each request/reply takes {latency_ms:g} ms longer (new connections "
        "cost nothing extra). Only the rows shown, with smaller sizes to keep the run "
        f"short: large file {plan.big_mib} MiB, {plan.n_small} small files. Requests and "
        "bytes are the same as in the first table and are not repeated; the benchmark's "
        "own checks go to the server directly.",
        cost_note,
    ]


def notes(plan: Plan, started: float, extra: list[str]) -> list[str]:
    return [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, total run time "
        f"{time.monotonic() - started:.0f} s, on one machine against one local SeaweedFS "
        "server (separate bucket per tool).",
        f"Versions: {versions()}.",
        "Seconds, lower is better; " + (
            f"each figure is the median of {plan.reps} repetitions (a failed repetition "
            "shows as FAIL). " if plan.reps > 1 else "each figure is one run. ") +
        "`X/objmount` is X's time divided by objmount's: 2.0x means X took twice as long, "
        "0.50x half as long.",
        "`cold`: after unmount and mount again (caches emptied), so the data comes from "
        "the store. `warm`: straight after the cold read, from the tool's caches. Before "
        "each repetition of a write, what the previous one wrote is removed (untimed, "
        "raw client) and the tool remounted.",
        "`durable`: from the start of the write until a plain S3 client on the server "
        "reads the result: new objects by HEAD/LIST, overwrites and appends by a ranged "
        "GET of the changed bytes (polled every 50 ms); `rm -r` until LIST shows no file.",
        "rclone runs with `--vfs-cache-mode writes` (needed for POSIX-ish writes): close() "
        "returns before the upload, which starts after `--vfs-write-back` (default 5 s); "
        "compare it on the `durable` rows. objmount and s3fs upload before close().",
        f"raw: no file system. obstore for the large PUT (multipart) and GET, the random "
        "reads (ranged GETs) and the small files (one PUT or GET at a time); `ls -l` = LIST "
        "+ one HEAD per object, but LIST alone for the one-directory rows; `find`/`du` = "
        "one recursive LIST; `cp -a`/`cp -r` = one PUT per file (no directories, no "
        "metadata). Overwrite/append: a multipart upload copying the unchanged ranges "
        "server-side (UploadPartCopy, CopySourceIfMatch on the ETag), uploading only the "
        f"changed {PART >> 20} MiB part (after a ranged GET of it) or the appended MiB; "
        "the UploadPartCopy row is the server-side copy of the whole object that such "
        "a write cannot avoid.",
        f"Sizes: large file {plan.big_mib} MiB, {plan.n_small} small files of "
        f"{plan.small_kib} KiB, tree of {plan.tree_files} files of 0.5-128 KiB, "
        f"find/du tree of {plan.fan_dirs} x {plan.fan_files} files of {plan.small_kib} KiB, "
        f"{plan.random_reads} random reads at seeded 4 KiB-aligned offsets; the "
        "one-directory rows use a bucket shared by the tools, filled once with tiny "
        f"objects by the raw client, and run once above {LS_REPEATED_UP_TO:,} entries.",
        "Requests and bytes: counted by the server (SeaweedFS's metrics) for the tool's "
        "bucket, from the start of the timed action to its end (for writes, until "
        "durable), less the benchmark's own polling; median of the repetitions. SeaweedFS "
        "counts a HEAD as a GET and each part of a multipart upload (sent or copied) as a "
        "PUT (POST starts and completes one); bytes are object bodies (PUT and GET), not "
        "listings or server-side copies. The warm rows count every pass. Mounting and "
        "unmounting are not counted.",
        "Daemon: the process serving the file system (objmount's FUSE daemon, the "
        "interception daemon, s3fs, rclone), from /proc: peak RSS during the workload "
        "(VmHWM, reset before it) and user+system CPU seconds. For interception, the "
        "work the library does inside the program itself is not in it.",
        *extra,
    ]
