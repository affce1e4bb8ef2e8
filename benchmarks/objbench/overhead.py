"""The interception shim's cost on local paths, with and without the shim, in one run.

``measure`` (in the runner) makes the inputs and runs this module's ``main`` under
``objmount run``, as a program in ``objmount shell`` would run. ``main`` alternates the
two variants (with the shim inherited; with ``OBJMOUNT_DISABLE=1``, which takes the shim
out of LD_PRELOAD at exec) so that drift on the machine hits both alike, checks in each
child that the shim is (or is not) loaded, and prints every sample as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

HERE = Path(__file__).resolve().parent
N_FILES = 20_000
IMPORTS = ("json, email.parser, http.client, decimal, asyncio, xml.etree.ElementTree, "
           "sqlite3, unittest, argparse, logging, urllib.request, csv, zipfile, tarfile, "
           "pathlib, subprocess, socket, ssl, hashlib, datetime")
SHIM_CHECK = "print(int('libobjmount' in open('/proc/self/maps').read()))"
VARIANTS = ("without", "with")


def local_files(limit: int = N_FILES) -> list[str]:
    """Up to ``limit`` readable regular files under /usr, in a stable order."""
    found: list[str] = []
    for top, dirs, files in os.walk("/usr"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            if "\n" not in path and os.path.isfile(path) and os.access(path, os.R_OK):
                found.append(path)
                if len(found) == limit:
                    return found
    return found


def variant_env(variant: str) -> dict[str, str]:
    env = dict(os.environ)
    if variant == "without":
        env["OBJMOUNT_DISABLE"] = "1"
    return env


def expect_shim(variant: str, loaded: str, what: str) -> None:
    if loaded.strip() != ("1" if variant == "with" else "0"):
        raise RuntimeError(f"{what}: shim loaded={loaded.strip()!r} in the {variant} variant")


def sample_loop(loop: str, paths: str, variant: str) -> float:
    out = subprocess.run([loop, paths], env=variant_env(variant), capture_output=True,
                         text=True, check=True).stdout.split()
    expect_shim(variant, out[1], "lstat loop")
    return float(out[0])


def sample_start(argv: list[str], variant: str) -> float:
    env = variant_env(variant)
    start = perf_counter()
    subprocess.run(argv, env=env, check=True)
    return perf_counter() - start


PYTHON_IMPORTS = [sys.executable, "-c", f"import {IMPORTS}"]
TRUE = ["/bin/true"]


def main(argv: list[str]) -> int:
    """``python -m objbench.overhead LOOP_BINARY PATH_LIST REPETITIONS`` (under the shim)."""
    loop, paths, reps = argv[1], argv[2], int(argv[3])
    for variant in VARIANTS:
        check = subprocess.run([sys.executable, "-c", SHIM_CHECK], env=variant_env(variant),
                               capture_output=True, text=True, check=True).stdout
        expect_shim(variant, check, "python")
        sample_loop(loop, paths, variant)  # warms the page and dentry caches
        sample_start(PYTHON_IMPORTS, variant)
    samples: dict[str, dict[str, list[float]]] = {
        key: {v: [] for v in VARIANTS} for key in ("loop", "python", "true")}
    for i in range(reps):
        order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            samples["loop"][variant].append(sample_loop(loop, paths, variant))
        for variant in order:
            samples["python"][variant].append(sample_start(PYTHON_IMPORTS, variant))
        for variant in order:
            # Tiny: the median of 10 starts is one sample.
            samples["true"][variant].append(statistics.median(
                sample_start(TRUE, variant) for _ in range(10)))
    print(json.dumps(samples))
    return 0


@dataclass(frozen=True)
class Overhead:
    label: str
    without: float  # median seconds
    with_shim: float
    reps: int

    @property
    def ratio(self) -> float:
        return self.with_shim / self.without - 1


def summarize(samples: dict[str, dict[str, list[float]]], n_files: int) -> list[Overhead]:
    labels = {"loop": f"lstat+open+read+close of {n_files} files under /usr, in one process",
              "python": f"python3 start-up importing {len(IMPORTS.split(','))} modules",
              "true": "start of /bin/true (fork + exec + exit)"}
    return [Overhead(labels[key], statistics.median(s["without"]), statistics.median(s["with"]),
                     len(s["with"])) for key, s in samples.items()]


def render(rows: list[Overhead]) -> str:
    lines = ["| local paths (median of N alternating runs) | N | without shim (s) | "
             "with shim (s) | with/without |", "|---|--:|--:|--:|--:|"]
    lines += [f"| {r.label} | {r.reps} | {r.without:.4f} | {r.with_shim:.4f} | "
              f"{r.ratio:+.1%} |" for r in rows]
    return "\n".join(lines)


def measure(workdir: Path, prefix: list[str], env: dict[str, str], reps: int,
            timeout: float) -> list[Overhead]:
    """Build the loop program, list the files, run ``main`` under ``prefix``."""
    workdir.mkdir(parents=True, exist_ok=True)
    loop = workdir / "lstat_loop"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(loop),
                    str(HERE / "lstat_loop.c")], check=True, capture_output=True)
    files = local_files()
    paths = workdir / "paths"
    paths.write_text("\n".join(files) + "\n")
    argv = [*prefix, sys.executable, "-m", "objbench.overhead", str(loop), str(paths),
            str(reps)]
    result = subprocess.run(argv, cwd=HERE.parent, env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        said = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"overhead run exited {result.returncode}: {said}")
    return summarize(json.loads(result.stdout), len(files))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
