"""The acceptance scenario: a real tree (about 300 files, a 200 MiB file among them) goes
in with ``cp -a``, survives unmount and remount unchanged, and s3fs-fuse sees the same
attributes.

Directories are compared by mode, owner and time too (SeaweedFS, the test server, drops
user metadata on ``dir/`` markers, so objmount writes them there in older s3fs's form);
s3fs is compared on files and symlinks fully, on directories by type.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from peers import run, s3fs_mount, snapshot

pytestmark = [pytest.mark.fuse, pytest.mark.s3, pytest.mark.slow]

MIB = 1024 * 1024
BIG_SIZE = 200 * MIB
OWNERS = [(0, 0), (1234, 5678), (1000, 1000), (65534, 65534), (0, 5678), (4242, 0)]
MODES = [0o644, 0o600, 0o755, 0o640, 0o700, 0o444, 0o750, 0o664, 0o400]
NAMES = ["plain", "ünïcödé", "日本語", "emoji-😀", "with space", "ñandú", "Ελληνικά",
         "dash-name", "UPPER", "x.y.z"]


def build_tree(root: Path) -> int:
    """About 300 files, symlinks, nested and empty directories, one 200 MiB file.
    Returns the number of files and symlinks."""
    root.mkdir()
    count = 0
    t0 = 1_500_000_000_000_000_000
    dirs = [root]
    for i, name in enumerate(NAMES):
        d = root / f"{i:02d}-{name}"
        sub = d / "nested" / f"deep-{name}"
        sub.mkdir(parents=True)
        dirs += [d, d / "nested", sub]
        (d / "empty").mkdir()
    (root / "lonely" / "empty" / "chain").mkdir(parents=True)
    for n in range(300):
        d = dirs[n % len(dirs)]
        path = d / f"file-{n:03d}-{NAMES[n % len(NAMES)]}.dat"
        size = (n * 7919) % 20_000 if n % 17 else 0
        path.write_bytes(os.urandom(size))
        os.chmod(path, MODES[n % len(MODES)])
        os.chown(path, *OWNERS[n % len(OWNERS)])
        mtime = t0 + n * 3_600_123_456_789
        os.utime(path, ns=(mtime, mtime))
        count += 1
    for n in range(12):
        d = dirs[(n * 5) % len(dirs)]
        link = d / f"link-{n:02d}"
        target = ("../" * (n % 3)) + f"target-{n}-{NAMES[n % len(NAMES)]}"
        os.symlink(target, link)
        os.lchown(link, *OWNERS[(n + 2) % len(OWNERS)])
        mtime = t0 + n * 1_000_000_007
        os.utime(link, ns=(mtime, mtime), follow_symlinks=False)
        count += 1
    for n, d in enumerate(dirs[1:]):
        if n % 3 == 0:
            os.chmod(d, (0o700, 0o750, 0o711)[n % 9 // 3])
    big = root / "05-ñandú" / "big.bin"
    with open(big, "wb") as f:
        for _ in range(BIG_SIZE // (8 * MIB)):
            f.write(os.urandom(8 * MIB))
    os.chmod(big, 0o640)
    os.chown(big, 1234, 5678)
    os.utime(big, ns=(1_700_000_000_500_000_000, 1_700_000_000_500_000_000))
    return count + 1


def assert_same(expected: dict[str, tuple[Any, ...]], actual: dict[str, tuple[Any, ...]],
                what: str) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert not missing and not extra, f"{what}: missing {missing[:20]}, extra {extra[:20]}"
    diffs = [f"  {k}: {expected[k]} != {actual[k]}" for k in sorted(expected)
             if expected[k] != actual[k]]
    assert not diffs, f"{what}: {len(diffs)} differ (expected != actual):\n" + "\n".join(
        diffs[:40])


def test_tree_survives_remount_and_s3fs_agrees(mounted: Mount, s3_server: Any, bucket: str,
                                               tmp_path: Path) -> None:
    src = tmp_path / "tree"
    count = build_tree(src)
    assert 300 <= count <= 320
    expected = snapshot(src)
    timings: dict[str, float] = {}

    t = time.monotonic()
    run("cp", "-a", src, mounted.path / "tree")
    timings["cp -a"] = time.monotonic() - t

    t = time.monotonic()
    mounted.remount()
    timings["umount+mount"] = time.monotonic() - t

    t = time.monotonic()
    run("diff", "-r", "--no-dereference", src, mounted.path / "tree")
    timings["diff -r"] = time.monotonic() - t
    assert_same(expected, snapshot(mounted.path / "tree"), "objmount after remount")

    t = time.monotonic()
    with s3fs_mount(s3_server, bucket, tmp_path / "s3fs", tmp_path) as s3fs:
        # s3fs asks for dir/ first, and SeaweedFS answers that itself, with no metadata,
        # for a directory with entries: s3fs shows directories' types, not attributes.
        seen = snapshot(s3fs / "tree")
        assert_same({k: v for k, v in expected.items() if v[0] != "dir"},
                    {k: v for k, v in seen.items() if v[0] != "dir"}, "s3fs-fuse")
        assert {k for k, v in expected.items() if v[0] == "dir"} == {
            k for k, v in seen.items() if v[0] == "dir"}
    timings["s3fs compare"] = time.monotonic() - t
    print("timings:", {k: round(v, 1) for k, v in timings.items()})
