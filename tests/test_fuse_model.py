"""A stateful reference-model test of the FUSE mount over the real SeaweedFS: Hypothesis
drives programs' system calls on the mount (os.* on its paths), and another client's PUT
and DELETE through a plain S3 client, and compares every answer with a small model of
paths -> files, directories, symlinks and FIFOs (kind, bytes, mode, mtime, user.*
extended attributes; a directory's mode; hard links: one entry under several paths).

One mount serves the whole test, with caches off (attr_timeout=0) so that the other
client's changes show at once; each example works in a fresh directory of its own.
CI runs a bounded number of steps; ``OBJMOUNT_MODEL_STEPS=10000 pytest
tests/test_fuse_model.py -s`` (scripts/soak.sh) runs a soak and prints the steps it ran.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

pytestmark = pytest.mark.s3

NAMES = ["a", "b", "ü", "c d"]
STEPS_PER_EXAMPLE = 25
TOTAL_STEPS = int(os.environ.get("OBJMOUNT_MODEL_STEPS", "150"))
payloads = st.binary(max_size=40)
modes = st.sampled_from([0o600, 0o640, 0o644, 0o700, 0o755])
times = st.integers(1_000_000_000, 1_900_000_000).map(lambda s: s * 1_000_000_000 + 123)
targets = st.sampled_from(["a", "../b", "c d/ü", "/abs/x"])


@dataclass
class MFile:
    data: bytes
    mode: int | None  # None: written by the other client (the mount's default mode)
    mtime_ns: int | None = None  # set by utime; None: whenever it was written
    xattrs: dict[str, bytes] = field(default_factory=dict)
    # False while another client removed or replaced one of its hard links' objects:
    # the other names count it until the file is next changed through the mount.
    nlink_exact: bool = True


@dataclass
class MDir:
    mode: int = 0o755  # mkdir's 0777 under the umask 022


@dataclass
class MLink:
    target: str


@dataclass
class MFifo:
    mode: int


Entry = MFile | MDir | MLink | MFifo


@dataclass
class World:
    """What the machine works on, set up once for the test."""
    mount: Path
    bucket: str
    client: Any
    steps: int = 0
    examples: int = 0


WORLD: World | None = None


class MountModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert WORLD is not None
        self.w = WORLD
        self.w.examples += 1
        self.prefix = f"ex{self.w.examples}"
        self.root = self.w.mount / self.prefix
        self.root.mkdir()
        self.entries: dict[str, Entry] = {"": MDir()}

    # -- helpers --------------------------------------------------------------------
    def p(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}"

    def dirs(self) -> list[str]:
        return sorted(k for k, v in self.entries.items() if isinstance(v, MDir)
                      and k.count("/") < 2)

    def of_kind(self, kind: type) -> list[str]:
        return sorted(k for k, v in self.entries.items() if isinstance(v, kind) and k)

    def children(self, d: str) -> list[str]:
        pre = d + "/" if d else ""
        return sorted(k[len(pre):] for k in self.entries
                      if k and k.startswith(pre) and "/" not in k[len(pre):])

    def new_path(self, data: st.DataObject) -> str:
        parent = data.draw(st.sampled_from(self.dirs()))
        name = data.draw(st.sampled_from(NAMES))
        return f"{parent}/{name}" if parent else name

    def step(self) -> None:
        self.w.steps += 1

    def expect_error(self, err: int, fn: Callable[[], object]) -> None:
        with pytest.raises(OSError) as caught:
            fn()
        assert caught.value.errno == err, caught.value

    # -- programs on the mount --------------------------------------------------------
    @rule(data=st.data(), payload=payloads, mode=modes)
    def write_file(self, data: st.DataObject, payload: bytes, mode: int) -> None:
        self.step()
        rel = self.new_path(data)
        existing = self.entries.get(rel)
        if isinstance(existing, MDir):
            self.expect_error(errno.EISDIR, lambda: self.p(rel).write_bytes(payload))
            return
        if isinstance(existing, (MLink, MFifo)):
            return  # would write through the link or block on the FIFO: out of scope
        fd = os.open(self.p(rel), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, payload)
        finally:
            os.close(fd)
        if existing is None:
            self.entries[rel] = MFile(payload, mode)
        else:
            assert isinstance(existing, MFile)
            existing.data, existing.mtime_ns = payload, None
            existing.nlink_exact = True

    @precondition(lambda self: self.of_kind(MFile))
    @rule(data=st.data(), payload=payloads.filter(bool))
    def append(self, data: st.DataObject, payload: bytes) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile)))
        with open(self.p(rel), "ab") as f:
            f.write(payload)
        entry = self.entries[rel]
        assert isinstance(entry, MFile)
        entry.data += payload
        entry.mtime_ns = None
        entry.nlink_exact = True

    @precondition(lambda self: self.of_kind(MFile))
    @rule(data=st.data())
    def read_file(self, data: st.DataObject) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile)))
        entry = self.entries[rel]
        assert isinstance(entry, MFile)
        assert self.p(rel).read_bytes() == entry.data, rel

    @rule(data=st.data())
    def mkdir(self, data: st.DataObject) -> None:
        self.step()
        rel = self.new_path(data)
        if rel in self.entries:
            self.expect_error(errno.EEXIST, lambda: self.p(rel).mkdir())
            return
        self.p(rel).mkdir()
        self.entries[rel] = MDir()

    @rule(data=st.data(), mode=modes)
    def mkfifo(self, data: st.DataObject, mode: int) -> None:
        self.step()
        rel = self.new_path(data)
        if rel in self.entries:
            self.expect_error(errno.EEXIST, lambda: os.mkfifo(self.p(rel), mode))
            return
        os.mkfifo(self.p(rel), mode)
        self.entries[rel] = MFifo(mode & ~0o022)

    @precondition(lambda self: self.of_kind(MFile))
    @rule(data=st.data(), name=st.sampled_from(["user.a", "user.b"]), value=payloads)
    def setxattr(self, data: st.DataObject, name: str, value: bytes) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile)))
        entry = self.entries[rel]
        assert isinstance(entry, MFile)
        if name in entry.xattrs and not value:
            os.removexattr(self.p(rel), name)
            del entry.xattrs[name]
        else:
            os.setxattr(self.p(rel), name, value)
            entry.xattrs[name] = value
        entry.nlink_exact = True

    @precondition(lambda self: self.of_kind(MDir))
    @rule(data=st.data())
    def rmdir(self, data: st.DataObject) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MDir)))
        if self.children(rel):
            self.expect_error(errno.ENOTEMPTY, lambda: self.p(rel).rmdir())
            return
        self.p(rel).rmdir()
        del self.entries[rel]

    @precondition(lambda self: self.of_kind(MFile) or self.of_kind(MLink)
                  or self.of_kind(MFifo))
    @rule(data=st.data())
    def unlink(self, data: st.DataObject) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile) + self.of_kind(MLink)
                                        + self.of_kind(MFifo)))
        self.p(rel).unlink()
        del self.entries[rel]

    @precondition(lambda self: len(self.entries) > 1)
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        self.step()
        src = data.draw(st.sampled_from(sorted(k for k in self.entries if k)))
        dst = self.new_path(data)
        if dst == src:
            return
        target = self.entries.get(dst)
        moving = self.entries[src]
        if dst.startswith(src + "/"):
            self.expect_error(errno.EINVAL, lambda: self.p(src).rename(self.p(dst)))
            return
        if src.startswith(dst + "/"):  # the kernel's check, before any of the types
            self.expect_error(errno.ENOTEMPTY, lambda: self.p(src).rename(self.p(dst)))
            return
        if isinstance(moving, MDir) and target is not None and not isinstance(target, MDir):
            self.expect_error(errno.ENOTDIR, lambda: self.p(src).rename(self.p(dst)))
            return
        if not isinstance(moving, MDir) and isinstance(target, MDir):
            self.expect_error(errno.EISDIR, lambda: self.p(src).rename(self.p(dst)))
            return
        if isinstance(target, MDir) and self.children(dst):
            self.expect_error(errno.ENOTEMPTY, lambda: self.p(src).rename(self.p(dst)))
            return
        self.p(src).rename(self.p(dst))
        if target is moving:
            return  # two names of one file: rename(2) does nothing
        moved = {k: v for k, v in self.entries.items() if k == src or k.startswith(src + "/")}
        for k in moved:
            del self.entries[k]
        for k in [k for k in self.entries if k == dst or k.startswith(dst + "/")]:
            del self.entries[k]
        for k, v in moved.items():
            self.entries[dst + k[len(src):]] = v

    @rule(data=st.data(), link_to=targets)
    def symlink(self, data: st.DataObject, link_to: str) -> None:
        self.step()
        rel = self.new_path(data)
        if rel in self.entries:
            self.expect_error(errno.EEXIST, lambda: os.symlink(link_to, self.p(rel)))
            return
        os.symlink(link_to, self.p(rel))
        self.entries[rel] = MLink(link_to)

    @precondition(lambda self: self.of_kind(MFile) or self.of_kind(MDir))
    @rule(data=st.data(), mode=modes)
    def chmod(self, data: st.DataObject, mode: int) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile) + self.of_kind(MDir)))
        os.chmod(self.p(rel), mode)
        entry = self.entries[rel]
        assert isinstance(entry, (MFile, MDir))
        entry.mode = mode
        if isinstance(entry, MFile):
            entry.nlink_exact = True

    @precondition(lambda self: self.of_kind(MFile))
    @rule(data=st.data(), mtime=times)
    def utime(self, data: st.DataObject, mtime: int) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile)))
        os.utime(self.p(rel), ns=(mtime, mtime))
        entry = self.entries[rel]
        assert isinstance(entry, MFile)
        entry.mtime_ns = mtime
        entry.nlink_exact = True

    @precondition(lambda self: len(self.entries) > 1)
    @rule(data=st.data())
    def link(self, data: st.DataObject) -> None:
        self.step()
        src = data.draw(st.sampled_from(sorted(k for k in self.entries if k)))
        dst = self.new_path(data)
        entry = self.entries[src]
        if dst in self.entries:
            self.expect_error(errno.EEXIST, lambda: os.link(self.p(src), self.p(dst)))
            return
        if isinstance(entry, MDir):
            self.expect_error(errno.EPERM, lambda: os.link(self.p(src), self.p(dst)))
            return
        os.link(self.p(src), self.p(dst), follow_symlinks=False)
        self.entries[dst] = entry  # the same file under two names
        if isinstance(entry, MFile):
            entry.nlink_exact = True

    def names_of(self, entry: Entry) -> list[str]:
        return [k for k, v in self.entries.items() if v is entry]

    # -- another client ----------------------------------------------------------------
    @rule(data=st.data(), payload=payloads)
    def other_client_puts(self, data: st.DataObject, payload: bytes) -> None:
        self.step()
        rel = self.new_path(data)
        existing = self.entries.get(rel)
        if existing is not None and not isinstance(existing, MFile):
            return  # an object beside a directory of the same name: not modelled
        self.w.client.put_object(Bucket=self.w.bucket, Key=self.key(rel), Body=payload)
        self.left_by_other_client(rel)
        self.entries[rel] = MFile(payload, None)

    @precondition(lambda self: self.of_kind(MFile))
    @rule(data=st.data())
    def other_client_deletes(self, data: st.DataObject) -> None:
        self.step()
        rel = data.draw(st.sampled_from(self.of_kind(MFile)))
        self.w.client.delete_object(Bucket=self.w.bucket, Key=self.key(rel))
        self.left_by_other_client(rel)
        del self.entries[rel]

    def left_by_other_client(self, rel: str) -> None:
        entry = self.entries.get(rel)
        if isinstance(entry, MFile) and len(self.names_of(entry)) > 1:
            entry.nlink_exact = False

    # -- what every step must leave true ----------------------------------------------
    @invariant()
    def hard_links_share_the_inode(self) -> None:
        seen: dict[int, int] = {}
        for rel, entry in self.entries.items():
            if rel and not isinstance(entry, MDir):
                ino = seen.setdefault(id(entry), os.lstat(self.p(rel)).st_ino)
                assert os.lstat(self.p(rel)).st_ino == ino, rel

    @invariant()
    def listings_and_attributes_agree(self) -> None:
        for d in [*self.of_kind(MDir), ""]:
            assert sorted(os.listdir(self.p(d))) == self.children(d), d
        for rel, entry in self.entries.items():
            if not rel:
                continue
            st_ = os.lstat(self.p(rel))
            if isinstance(entry, MDir):
                assert stat.S_ISDIR(st_.st_mode), rel
                assert stat.S_IMODE(st_.st_mode) == entry.mode, rel
            elif isinstance(entry, MFifo):
                assert st_.st_mode == stat.S_IFIFO | entry.mode, rel
            elif isinstance(entry, MLink):
                assert stat.S_ISLNK(st_.st_mode), rel
                assert os.readlink(self.p(rel)) == entry.target
            else:
                assert stat.S_ISREG(st_.st_mode), rel
                assert st_.st_size == len(entry.data), rel
                if entry.nlink_exact:
                    assert st_.st_nlink == len(self.names_of(entry)), rel
                if entry.mode is not None:
                    assert stat.S_IMODE(st_.st_mode) == entry.mode, rel
                if entry.mtime_ns is not None:
                    assert st_.st_mtime_ns == entry.mtime_ns, rel
                path = self.p(rel)
                assert {n: os.getxattr(path, n) for n in os.listxattr(path)} == entry.xattrs


def model_settings(steps: int) -> settings:
    """Enough examples for about ``steps`` steps (an example averages ~20 of its 25)."""
    return settings(max_examples=max(1, steps // 20), stateful_step_count=STEPS_PER_EXAMPLE,
                    deadline=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate], database=None)


@pytest.fixture
def world(mount_factory: Callable[..., Mount], bucket: str, s3_client: Any) -> Iterator[World]:
    global WORLD
    m = mount_factory(f"s3://{bucket}", options="attr_timeout=0,negative_timeout=0,xattr")
    m.mount()
    WORLD = World(m.path, bucket, s3_client)
    try:
        yield WORLD
    finally:
        print(f"\nFUSE model: {WORLD.steps} steps in {WORLD.examples} examples")
        WORLD = None


def test_the_mount_behaves_as_the_model(world: World) -> None:
    while world.steps < TOTAL_STEPS:  # at least as many steps as asked for
        MountModel.TestCase.settings = model_settings(TOTAL_STEPS - world.steps)
        MountModel.TestCase().runTest()
