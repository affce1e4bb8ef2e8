"""Benchmark objmount against s3fs-fuse, rclone mount and a raw S3 client, on one
SeaweedFS server started for the run.

    .venv/bin/python benchmarks/run.py                 # full run (1 GiB, 1000 files, 3 reps)
    .venv/bin/python benchmarks/run.py --quick         # three to four minutes
    .venv/bin/python benchmarks/run.py --size-mib 256 --reps 1 --tools objmount,raw

Prints the tables and writes them to --out (default benchmarks/results/latest.md), with
the ratio chart next to it (latest.svg). See benchmarks/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType

from objbench.chart import ChartRow, ChartSection, render_chart
from objbench.config import Plan, S3Endpoint
from objbench.fixtures import FixtureContext, put_ls_dirs
from objbench.job import one_line
from objbench.latency import latency_proxy
from objbench.localdata import make_local_data
from objbench.notes import latency_notes, notes
from objbench.overhead import measure
from objbench.overhead import render as render_overhead
from objbench.proxycost import measure as measure_proxy
from objbench.report import BASELINE, Report, render_report, time_rows
from objbench.results import DIRECT, LATENCY, LS, Results
from objbench.runner import Runner, Suite
from objbench.server import embedded_server
from objbench.tools import TOOLS, Intercept, Tool, mounts_under, pid_alive
from objbench.workloads import MAIN, latency_workloads, ls_workloads

BENCH_DIR = Path(__file__).resolve().parent
QUICK = Plan(big_mib=64, n_small=100, tree_files=40, reps=1, random_reads=500, fan_files=20,
             ls_sizes=(1000, 5000))
# The latency series repeats the headline rows at these sizes at most: with 20 ms per
# request, a tool that sends 9 requests per small file needs 3 minutes for 1000 files.
LATENCY_LIMITS = (256, 100)  # large file MiB, small files
QUICK_LATENCY_LIMITS = (16, 20)
QUICK_OVERHEAD_REPS = 7


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Plan()
    p.add_argument("--quick", action="store_true",
                   help=f"small sizes ({QUICK.big_mib} MiB, {QUICK.n_small} small files, "
                        f"1 repetition, ls of {QUICK.ls_sizes}): three to four minutes")
    p.add_argument("--size-mib", type=int,
                   help=f"size of the large file (default {default.big_mib})")
    p.add_argument("--small-files", type=int,
                   help=f"number of small files (default {default.n_small})")
    p.add_argument("--small-kib", type=int,
                   help=f"size of each small file (default {default.small_kib})")
    p.add_argument("--tree-files", type=int,
                   help=f"files in the cp -a tree (default {default.tree_files})")
    p.add_argument("--reps", type=int, help=f"repetitions per figure, the median is "
                   f"shown (default {default.reps}; --quick: {QUICK.reps})")
    p.add_argument("--random-reads", type=int,
                   help=f"4 KiB random reads in the large file (default {default.random_reads})")
    p.add_argument("--ls-sizes", help="entries of the one-directory ls -l rows, comma-"
                   f"separated, '' for none (default {','.join(map(str, default.ls_sizes))})")
    p.add_argument("--latency-ms", type=float, default=20,
                   help="latency added per request in the second series (default 20; 0: "
                        "no latency series)")
    p.add_argument("--tools", default=",".join(TOOLS),
                   help=f"comma-separated subset of {','.join(TOOLS)} (default: all)")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results" / "latest.md",
                   help="Markdown file for the tables (default: benchmarks/results/latest.md); "
                        "the chart goes next to it as .svg")
    p.add_argument("--timeout", type=float, default=600,
                   help="seconds one repetition may take before it counts as FAIL (default 600)")
    p.add_argument("--workdir", type=Path, help="parent of the scratch directory (default: "
                   "the system temp dir); needs room for the server's data, ~4x --size-mib")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep the scratch directory (logs, server data) after the run")
    p.add_argument("--overhead-reps", type=int,
                   help="alternating runs with and without the shim for the local-path "
                        f"overhead table (default 21; --quick: {QUICK_OVERHEAD_REPS}; 0: "
                        "skip it)")
    p.add_argument("--server-wait", type=float, default=900,
                   help="seconds to wait for objmount.server to become importable (default 900)")
    args = p.parse_args(argv)
    unknown = set(args.tools.split(",")) - set(TOOLS)
    if unknown:
        p.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    if args.reps is not None and args.reps < 1:
        p.error("--reps must be at least 1")
    if args.overhead_reps is None:
        args.overhead_reps = QUICK_OVERHEAD_REPS if args.quick else 21
    return args


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else Plan()
    ls_sizes = None if args.ls_sizes is None else tuple(
        int(n) for n in args.ls_sizes.split(",") if n.strip())
    overrides = {"big_mib": args.size_mib, "n_small": args.small_files,
                 "small_kib": args.small_kib, "tree_files": args.tree_files,
                 "reps": args.reps, "random_reads": args.random_reads, "ls_sizes": ls_sizes}
    return replace(plan, **{k: v for k, v in overrides.items() if v is not None})


def latency_plan(plan: Plan, quick: bool) -> Plan:
    big_mib, n_small = QUICK_LATENCY_LIMITS if quick else LATENCY_LIMITS
    return replace(plan, big_mib=min(plan.big_mib, big_mib), n_small=min(plan.n_small, n_small))


@dataclass
class Started:
    """Everything this run starts, for the check that nothing is left behind."""

    tools: list[Tool] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)  # the latency proxies

    def left_behind(self, workdir: Path) -> list[str]:
        left = [f"mount {m}" for m in mounts_under(workdir)]
        for tool in self.tools:
            left += [f"{tool.name} process {pid}" for pid in tool.leftover_pids()]
        left += [f"latency proxy {pid}" for pid in self.pids if pid_alive(pid)]
        return left


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def shim_overhead(workdir: Path, s3: S3Endpoint, args: argparse.Namespace,
                  started: Started) -> str:
    """The interception shim's cost on local paths, as a Markdown section."""
    print("[shim overhead on local paths]", file=sys.stderr, flush=True)
    tool = Intercept("bench-overhead", workdir, s3)
    started.tools.append(tool)
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


def run_series(runner: Runner, names: list[str], suite: Suite, workdir: Path, s3: S3Endpoint,
               started: Started, bucket: str | None = None) -> None:
    """``suite`` on every tool in turn; each in bucket ``bench-SERIES-TOOL`` (or the
    shared ``bucket``)."""
    for name in names:
        tool = TOOLS[name](bucket or f"bench-{suite.series}-{name}",
                           workdir / f"{name}-{suite.series}", s3)
        started.tools.append(tool)
        print(f"[{name}, {suite.series}]", file=sys.stderr, flush=True)
        runner.run_tool(tool, suite)


def fill_ls_bucket(s3: S3Endpoint, bucket: str, plan: Plan) -> None:
    print(f"[filling {bucket}: {', '.join(map(str, plan.ls_sizes))} entries]", file=sys.stderr,
          flush=True)
    began = time.monotonic()
    put_ls_dirs(FixtureContext(s3, bucket, plan))
    print(f"  {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)


def run_latency_series(runner: Runner, names: list[str], suite: Suite, plan: Plan,
                       workdir: Path, s3: S3Endpoint, started: Started,
                       latency_ms: float) -> list[str]:
    """The proxy's own cost (with the main plan's large file), then ``suite`` through
    it; the notes for it."""
    with latency_proxy(s3.endpoint, 0) as (plain, plain_pid), \
            latency_proxy(s3.endpoint, latency_ms) as (delayed, delayed_pid):
        started.pids += [plain_pid, delayed_pid]
        print("[latency proxy overhead]", file=sys.stderr, flush=True)
        try:
            costs = measure_proxy(s3, s3.via(plain), s3.via(delayed), "bench-proxy", plan,
                                  plan.reps)
            cost_note = "Proxy overhead, measured in this run: " + "; ".join(
                c.line() for c in costs) + "."
        except Exception as exc:
            cost_note = f"Proxy overhead: FAIL {one_line(exc)}"
        print(f"  {cost_note}", file=sys.stderr)
        run_series(runner, names, suite, workdir, s3.via(delayed), started)
    return latency_notes(suite.plan, latency_ms, cost_note)


def chart(results: Results, report: Report, latency_ms: float) -> str:
    others = [t for t in results.tools if t != BASELINE]

    def section(title: str, suites: list[Suite]) -> ChartSection:
        return ChartSection(title, [ChartRow(r.label, r.ratios(others))
                                    for r in time_rows(results, suites)])
    sections = [section("local server", report.main)]
    if report.latency:
        sections.append(section(f"+{latency_ms:g} ms per request", report.latency))
    return render_chart(sections, others, BASELINE)


def run(args: argparse.Namespace, workdir: Path, began: float, started: Started) -> None:
    """Make the data, start the server, run every series, write the report."""
    names = args.tools.split(",")
    plan = make_plan(args)
    print(f"scratch directory {workdir}; making local data", file=sys.stderr)
    plan = make_local_data(workdir / "local", plan)
    lat_plan = latency_plan(plan, args.quick)
    if lat_plan.big_mib != plan.big_mib:  # its own, smaller source file
        lat_plan = make_local_data(workdir / "local-latency", lat_plan)
    main_suite = Suite(DIRECT, plan, MAIN)
    ls_suite = Suite(LS, plan, ls_workloads(plan))
    lat_suite = Suite(LATENCY, lat_plan, latency_workloads())
    with_latency = args.latency_ms > 0
    buckets = [f"bench-{DIRECT}-{n}" for n in names] + ["bench-ls", "bench-proxy"]
    buckets += [f"bench-{LATENCY}-{n}" for n in names] if with_latency else []
    results = Results(names)
    overhead, extra = "", []
    with embedded_server(workdir / "server", buckets, args.server_wait) as (s3, pid):
        print(f"SeaweedFS at {s3.endpoint} (pid {pid})", file=sys.stderr)
        if args.overhead_reps > 0:
            overhead = shim_overhead(workdir / "overhead", s3, args, started)
        runner = Runner(s3, results, args.timeout)
        run_series(runner, names, main_suite, workdir, s3, started)
        if plan.ls_sizes:
            fill_ls_bucket(s3, "bench-ls", plan)
            run_series(runner, names, ls_suite, workdir, s3, started, bucket="bench-ls")
        if with_latency:
            extra = run_latency_series(runner, names, lat_suite, plan, workdir, s3, started,
                                       args.latency_ms)
    report = Report(main=[main_suite] + ([ls_suite] if plan.ls_sizes else []),
                    latency=[lat_suite] if with_latency else [],
                    latency_title=f"With {args.latency_ms:g} ms added to every request "
                                  f"(seconds; see the notes)",
                    latency_where=f" (+{args.latency_ms:g} ms)",
                    overhead=overhead, chart=args.out.with_suffix(".svg").name)
    text = render_report(results, report, notes(plan, began, extra))
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".svg").write_text(chart(results, report, args.latency_ms))
    print(f"written to {args.out} and {args.out.with_suffix('.svg')}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    signal.signal(signal.SIGTERM, on_sigterm)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="objbench-", dir=args.workdir))
    started = Started()
    status = 0
    try:
        run(args, workdir, began, started)
    except KeyboardInterrupt:
        print("interrupted: mounts and server stopped, no report written", file=sys.stderr)
        status = 130
    finally:
        left = started.left_behind(workdir)
        if left:
            print(f"ERROR: left behind: {', '.join(left)}", file=sys.stderr)
        if args.keep_workdir or left:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 3 if left else status


if __name__ == "__main__":
    sys.exit(main())
