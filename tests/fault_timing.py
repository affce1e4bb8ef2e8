"""How long `cp -a` of a tree into a FUSE mount and back out takes with no faults and under
a fault rate, through tests/faultproxy.py in front of a private SeaweedFS (a measurement,
not a test):

    .venv/bin/python tests/fault_timing.py [--rate 0.1] [--big-mib 200] [--small 160]

Prints the time of each run, the faults injected by kind, and whether every byte, mode
and mtime came back.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faultproxy import FaultPlan, FaultProxy
from treesnap import snapshot

from objmount.server import botocore_client, start_server, stop_server

OBJMOUNT = [sys.executable, "-m", "objmount"]


def make_tree(root: Path, small: int, big_mib: int) -> None:
    for i in range(small):
        sub = root / f"d{i % 8}" / ("deep" if i % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        f = sub / f"f{i}"
        f.write_bytes(os.urandom(4096 + (i * 997) % 60_000))
        f.chmod(0o600 + 0o44 * (i % 2))
        os.utime(f, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i))
    with open(root / "big", "wb") as out:
        for _ in range(big_mib):
            out.write(os.urandom(1 << 20))


def run_once(rate: float, src: Path, work: Path, server_endpoint: str,
             env: dict[str, str], bucket: str) -> None:
    proxy = FaultProxy(server_endpoint, FaultPlan(rate=rate, stall_seconds=20,
                                                  seed=int(rate * 1000) + 1)).start()
    mnt = work / f"mnt-{rate}"
    mnt.mkdir()
    out = work / f"out-{rate}"
    menv = {**os.environ, **env, "AWS_ENDPOINT_URL": proxy.endpoint}
    try:
        subprocess.run([*OBJMOUNT, "mount", "-o", f"cache_dir={work / 'cache'}",
                        f"s3://{bucket}", str(mnt)], env=menv, check=True)
        started = time.monotonic()
        subprocess.run(["cp", "-a", str(src), str(mnt / f"t{rate}")], check=True)
        copied_in = time.monotonic() - started
        subprocess.run([*OBJMOUNT, "umount", str(mnt)], env=menv, check=True)
        subprocess.run([*OBJMOUNT, "mount", "-o", f"cache_dir={work / 'cache'}",
                        f"s3://{bucket}", str(mnt)], env=menv, check=True)
        started = time.monotonic()
        subprocess.run(["cp", "-a", str(mnt / f"t{rate}"), str(out)], check=True)
        copied_out = time.monotonic() - started
        whole = snapshot(str(out)) == snapshot(str(src))
    finally:
        subprocess.run([*OBJMOUNT, "umount", str(mnt)], env=menv, check=False)
        proxy.stop()
    faults = dict(sorted(proxy.stats.injected.items()))
    print(f"fault rate {rate:.0%}: cp -a in {copied_in:.1f} s, out {copied_out:.1f} s; "
          f"{proxy.stats.requests} requests, {sum(faults.values())} faults injected; "
          f"every byte, mode and mtime back: {whole}")
    print(f"  faults: {faults}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--big-mib", type=int, default=200)
    parser.add_argument("--small", type=int, default=160)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fault-timing-"))
    bucket = "timing"
    info = start_server(work / "server", [bucket], access_key="k-" + secrets.token_hex(4),
                        secret_key=secrets.token_hex(16))
    try:
        botocore_client(info.endpoint, info.access_key, info.secret_key)
        src = work / "src"
        make_tree(src, args.small, args.big_mib)
        env = {**info.env(), "AWS_CONFIG_FILE": "/nonexistent",
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
        for rate in (0.0, args.rate):
            run_once(rate, src, work, info.endpoint, env, bucket)
    finally:
        stop_server(info.pid)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
