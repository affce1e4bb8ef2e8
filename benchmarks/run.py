"""Benchmark objmount against s3fs-fuse, rclone mount and a raw S3 client, on one
SeaweedFS server started for the run.

    .venv/bin/python benchmarks/run.py                 # full run (256 MiB, 300 files)
    .venv/bin/python benchmarks/run.py --quick         # about a minute or two
    .venv/bin/python benchmarks/run.py --size-mib 512 --small-files 1000 --tools objmount,raw

Prints one Markdown table and writes it to --out (default benchmarks/results/latest.md).
See benchmarks/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from objbench.config import Plan, S3Endpoint
from objbench.localdata import make_local_data
from objbench.overhead import measure
from objbench.overhead import render as render_overhead
from objbench.report import render_report
from objbench.runner import Results, Runner
from objbench.server import embedded_server
from objbench.tools import TOOLS, Intercept, Tool, mounts_under

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
QUICK = Plan(big_mib=64, n_small=100, tree_files=40)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"small sizes ({QUICK.big_mib} MiB, {QUICK.n_small} small files, "
                        f"{QUICK.tree_files}-file tree): about 1-2 minutes")
    p.add_argument("--size-mib", type=int, help="size of the large file (default 256)")
    p.add_argument("--small-files", type=int, help="number of small files (default 300)")
    p.add_argument("--small-kib", type=int, help="size of each small file (default 4)")
    p.add_argument("--tree-files", type=int, help="files in the cp -a tree (default 100)")
    p.add_argument("--tools", default=",".join(TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)} (default: all)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.md",
                   help="Markdown file for the table (default: benchmarks/results/latest.md)")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds one workload may take before it counts as FAIL (default 600)")
    p.add_argument("--workdir", type=Path, help="parent of the scratch directory (default: "
                   "the system temp dir); needs room for the server's data, ~4x --size-mib")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the scratch directory (logs, server data) after the run")
    p.add_argument("--overhead-reps", type=int, default=21,
                   help="alternating runs with and without the shim for the local-path "
                        "overhead table (default 21; 0: skip it)")
    p.add_argument("--server-wait", type=float, default=900,
                   help="seconds to wait for objmount.server to become importable (default 900)")
    args = p.parse_args(argv)
    unknown = set(args.tools.split(",")) - set(TOOLS)
    if unknown:
        p.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    overrides = {"big_mib": args.size_mib, "n_small": args.small_files,
                 "small_kib": args.small_kib, "tree_files": args.tree_files}
    return replace(plan, **{k: v for k, v in overrides.items() if v is not None})


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


def notes(plan: Plan, started: float) -> list[str]:
    return [
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, total run time "
        f"{time.monotonic() - started:.0f} s, on one machine against one local SeaweedFS "
        "server (separate bucket per tool).",
        f"Versions: {versions()}.",
        "Seconds, lower is better. `X/objmount` is X's time divided by objmount's: "
        "2.0x means X took twice as long, 0.50x half as long.",
        "Reads and `ls -l` run after unmount and mount again, so they come from the store.",
        "`until visible in bucket`: from the start of the write until every object is "
        "there (polled with HEAD/LIST every 50 ms).",
        "rclone runs with `--vfs-cache-mode writes` (needed for POSIX-ish writes): close() "
        "returns before the upload, which starts after `--vfs-write-back` (default 5 s); "
        "compare it on the `until visible` rows. objmount and s3fs upload before close().",
        "raw: no file system. obstore for the large PUT (multipart) and GET; botocore, one "
        "request at a time, for small files; `ls -l` = LIST + one HEAD per object; `cp -a` "
        "and `cp -r` = one PUT per file (no directories, no metadata).",
        "`cp -r` copies the same tree as `cp -a` without preserving metadata, so that "
        "tools whose `cp -a` fails still get a time.",
        f"Sizes: large file {plan.big_mib} MiB, {plan.n_small} small files of "
        f"{plan.small_kib} KiB, tree of {plan.tree_files} files of 0.5-128 KiB.",
        "Requests: counted by the server (SeaweedFS's metrics) for the tool's bucket, "
        "from the start of the timed action to its end (for writes, until visible, less "
        "the benchmark's own polling). SeaweedFS counts a HEAD as a GET and each part of "
        "a multipart upload as a PUT (POST starts and completes one); the warm rows "
        "count every pass. Mounting and unmounting are not counted.",
    ]


def check_nothing_left(workdir: Path, tools: list[Tool]) -> list[str]:
    """Mounts and daemons this run leaves behind (should be none)."""
    left = [f"mount {m}" for m in mounts_under(workdir)]
    for tool in tools:
        left += [f"{tool.name} process {pid}" for pid in tool.leftover_pids()]
    return left


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def shim_overhead(workdir: Path, s3: S3Endpoint, args: argparse.Namespace,
                  tools: list[Tool]) -> str:
    """The interception shim's cost on local paths, as a Markdown section."""
    print("[shim overhead on local paths]", file=sys.stderr, flush=True)
    tool = Intercept("bench-overhead", workdir, s3)
    tools.append(tool)
    try:
        tool.mount()
        rows = measure(workdir, tool.job_prefix(), tool.job_env(), args.overhead_reps,
                       args.timeout)
    except Exception as exc:
        print(f"  shim overhead: FAIL {exc}", file=sys.stderr)
        return f"Shim overhead on local paths: FAIL: {exc}"
    finally:
        tool.cleanup()
    for row in rows:
        print(f"  {row.label}: {row.without:.4f} s -> {row.with_shim:.4f} s "
              f"({row.ratio:+.1%})", file=sys.stderr)
    return render_overhead(rows)


def run(args: argparse.Namespace, workdir: Path, started: float, tools: list[Tool]) -> None:
    """Make the data, start the server, run every tool (appended to ``tools`` as it
    starts), write the report."""
    names = args.tools.split(",")
    plan = make_plan(args)
    print(f"scratch directory {workdir}; making local data", file=sys.stderr)
    plan = make_local_data(workdir / "local", plan)
    buckets = [f"bench-{name}" for name in names]
    results = Results(names)
    overhead = ""
    with embedded_server(workdir / "server", buckets, args.server_wait) as (s3, pid):
        print(f"SeaweedFS at {s3.endpoint} (pid {pid})", file=sys.stderr)
        if args.overhead_reps > 0:
            overhead = shim_overhead(workdir / "overhead", s3, args, tools)
        runner = Runner(s3, plan, results, args.timeout)
        for name, bucket in zip(names, buckets, strict=True):
            tool = TOOLS[name](bucket, workdir / name, s3)
            tools.append(tool)
            print(f"[{name}]", file=sys.stderr, flush=True)
            runner.run_tool(tool)
    report = render_report(results, plan, notes(plan, started), overhead)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(f"written to {args.out}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="objbench-", dir=args.workdir))
    tools: list[Tool] = []
    status = 0
    try:
        run(args, workdir, started, tools)
    except KeyboardInterrupt:
        print("interrupted: mounts and server stopped, no report written", file=sys.stderr)
        status = 130
    finally:
        left = check_nothing_left(workdir, tools)
        if left:
            print(f"ERROR: left behind: {', '.join(left)}", file=sys.stderr)
        if args.keep_workdir or left:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 3 if left else status


if __name__ == "__main__":
    sys.exit(main())
