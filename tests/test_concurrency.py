"""Many processes at once: on different files of one mount, and on one file through two
mounts (two daemons) of the same bucket, where every open must find a whole version."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from conftest import Mount

pytestmark = pytest.mark.s3

WRITER = r"""
import hashlib, os, random, sys
root, me, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(me)
for i in range(files):
    data = rng.randbytes(rng.choice([0, 1, 4096, 100_000, 3 << 20]))
    path = os.path.join(root, f"p{me}-f{i}")
    with open(path, "wb") as f:
        f.write(data)
    with open(path, "rb") as f:
        assert f.read() == data, path
    print(f"p{me}-f{i}", hashlib.sha256(data).hexdigest())
"""

# Writes whole versions of one file: version v is v's byte repeated (v % 7 + 1) * 50 KiB
# times; a reader can tell a whole version from a mixture by looking at it.
VERSIONS = r"""
import os, sys, time
path, first, step, until = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
v = first
while time.time() < until:
    with open(path, "wb") as f:
        f.write(bytes([v % 256]) * ((v % 7 + 1) * 51200))
    v += step
"""

# A read of a version replaced since its open gives ESTALE (doc/SEMANTICS.md): it is
# counted and tried again, as an NFS client would.
READER = r"""
import errno, sys, time
path, until = sys.argv[1], float(sys.argv[2])
reads = stale = 0
while time.time() < until:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        continue
    except OSError as exc:
        if exc.errno != errno.ESTALE:
            raise
        stale += 1
        continue
    reads += 1
    if data:
        v = data[0]
        assert data == bytes([v]) * len(data), f"a mixture of versions ({len(data)} bytes)"
        assert len(data) % 51200 == 0, f"a version cut short: {len(data)} bytes"
print(reads, stale)
"""


def run_all(procs: list[subprocess.Popen[str]], timeout: float) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err[-2000:]
        outs.append(out)
    return outs


def test_many_processes_on_different_files(mounted: Mount, s3_client: Any,
                                           bucket: str) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(mounted.path), str(me), "8"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in range(8)]
    written = dict(line.split() for out in run_all(procs, 300) for line in out.splitlines())
    assert len(written) == 64
    for key, digest in written.items():
        body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, key


def test_two_mounts_write_one_file_and_readers_elsewhere_see_whole_versions(
        mount_factory: Callable[..., Mount], bucket: str, s3_client: Any) -> None:
    """Two daemons replace one file over and over; readers, each through a mount of its
    own, see at every open one whole version (close-to-open), never a mixture or a
    version cut short. (Programs that share a mount share the kernel's page cache and
    file size: see doc/SEMANTICS.md.)"""
    a, b, c, d, e = (mount_factory(f"s3://{bucket}") for _ in range(5))
    for m in (a, b, c, d, e):
        m.mount()
    until = time.time() + 6

    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    procs = [spawn(VERSIONS, str(a.path / "shared"), "1", "2", str(until)),
             spawn(VERSIONS, str(b.path / "shared"), "2", "2", str(until)),
             *(spawn(READER, str(m.path / "shared"), str(until)) for m in (c, d, e))]
    outs = run_all(procs, 120)
    reads = [int(out.split()[0]) for out in outs[2:]]
    assert all(n > 0 for n in reads), reads
    print(f"whole-version reads per reader: {reads}; "
          f"ESTALE: {[int(out.split()[1]) for out in outs[2:]]}")
    # After the last close, every mount shows what the store holds: one whole version.
    final = s3_client.get_object(Bucket=bucket, Key="shared")["Body"].read()
    assert final == bytes([final[0]]) * len(final)
    time.sleep(1.1)  # attr_timeout: the kernel's cached size expires
    for m in (a, b, c, d, e):
        assert (m.path / "shared").read_bytes() == final
