"""The daemon's shared status page: a change counter and a table of recent attributes,
in shared memory that every shim maps read-only.

With it, ``stat``, ``lstat`` and ``access`` of an object path that was looked up or listed
moments ago are answered inside the calling process, with no round trip: `ls -l`,
`find` and `make` cost one question per directory, not one per file. The daemon writes
an entry only for a canonical path (no symlink or ``..`` on the way) whose inode is not
open (an open file's size changes under its writers), and removes or rewrites the entry
in the same lock that serialises every change it makes, so no process is shown anything
older than what another process already closed. Changes made by other clients show
after ``attr_timeout``, as through the FUSE mount.

Layout (C: ``struct om_page`` and ``struct om_slot`` in shim/objmount.h)::

    header, 4096 bytes: u64 magic 'OBJMSTAT', u32 version, u32 slot count, u32 slot size,
        u32 pad, u64 instance, u64 changes, u64 epoch, i64 st_dev
    slots, 512 bytes each: u32 seq (odd while written), u16 path length, u8 kind
        (0 none, 1 attributes, 2 no such file), u8 pad, u64 epoch, i64 expires (CLOCK_MONOTONIC
        ns), u64 ino, u32 mode, u32 nlink, u32 uid, u32 gid, i64 size, i64 atime ns,
        i64 mtime ns, i64 ctime ns, path bytes

A slot is valid while its epoch equals the header's; bumping the epoch forgets every
entry at once (a directory rename changes many paths). Paths hash with CRC-32 into 4
consecutive slots.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
import zlib

from objmount.core.metadata import Attr

MAGIC = int.from_bytes(b"OBJMSTAT", "little")
VERSION = 1
HEADER_SIZE = 4096
SLOT_SIZE = 512
SLOT_COUNT = 1 << 16
PROBES = 4
PATH_MAX = SLOT_SIZE - 80
KIND_NONE = 0
KIND_ATTR = 1
KIND_MISSING = 2

_HEADER = struct.Struct("<QIIIIQQQq")
_SLOT = struct.Struct("<IHBBQqQIIIIqqqq")
assert _SLOT.size == 80
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_EPOCH_EXPIRES = struct.Struct("<Qq")
_NO_ATTR = Attr(0, 0, 0, 0, 0, 0, 0, 0, 0)
_PUBLISHED_MAX = 256  # listings remembered as published


class StatPage:
    def __init__(self, instance: int, st_dev: int, *, slots: int = SLOT_COUNT) -> None:
        assert slots & (slots - 1) == 0, "a power of two"
        self.slots = slots
        self.lock = threading.Lock()
        self.memfd = os.memfd_create("objmount-stat", os.MFD_CLOEXEC)
        size = HEADER_SIZE + slots * SLOT_SIZE
        os.ftruncate(self.memfd, size)
        self._mem = mmap.mmap(self.memfd, size)
        self._changes = 0
        self._epoch = 1
        # directory -> ((changes, epoch), expires ns, items) of its last published listing
        self._published: dict[bytes, tuple[tuple[int, int], int, list[tuple[bytes, Attr]]]] = {}
        self._instance = instance
        self._st_dev = st_dev
        self._write_header()

    def _write_header(self) -> None:
        _HEADER.pack_into(self._mem, 0, MAGIC, VERSION, self.slots, SLOT_SIZE, 0,
                          self._instance, self._changes, self._epoch, self._st_dev)

    @property
    def changes(self) -> int:
        return self._changes

    def close(self) -> None:
        self._mem.close()
        os.close(self.memfd)

    # -- changes: call with self.lock held ------------------------------------------------
    def changed(self, *paths: bytes) -> None:
        """Something at these canonical paths changed: forget them, count a change."""
        for path in paths:
            slot = self._find(path)
            if slot is not None:
                self._write_slot(slot, path, KIND_NONE, None, 0)
        self._changes += 1
        struct.pack_into("<Q", self._mem, 32, self._changes)

    def forget_all(self) -> None:
        self._epoch += 1
        self._changes += 1
        struct.pack_into("<QQ", self._mem, 32, self._changes, self._epoch)

    # -- entries ----------------------------------------------------------------------
    def put(self, path: bytes, attr: Attr | None, ttl: float, *, seen_changes: int) -> None:
        """Publish lstat attributes of ``path`` (None: it does not exist), unless some
        change happened since ``seen_changes`` (the answer may be out of date)."""
        if len(path) > PATH_MAX or ttl <= 0:
            return
        with self.lock:
            if self._changes != seen_changes:
                return
            slot = self._find(path)
            if slot is None:
                slot = self._victim(path)
            expires = time.monotonic_ns() + int(ttl * 1e9)
            self._write_slot(slot, path, KIND_ATTR if attr else KIND_MISSING, attr, expires)

    def put_many(self, directory: bytes, items: list[tuple[bytes, Attr]], ttl: float, *,
                 seen_changes: int) -> None:
        """``put`` for a whole listing of ``directory``, under one lock. The same listing
        published less than half a ``ttl`` ago, with no change anywhere since, is not
        written again (a slot lost to another path meanwhile costs a question, no more)."""
        if ttl <= 0:
            return
        with self.lock:
            if self._changes != seen_changes:
                return
            now = time.monotonic_ns()
            expires = now + int(ttl * 1e9)
            last = self._published.get(directory)
            if (last is not None and last[0] == (self._changes, self._epoch)
                    and now < last[1] - int(ttl * 5e8) and _same(last[2], items)):
                return
            self._published.pop(directory, None)
            self._published[directory] = ((self._changes, self._epoch), expires, items)
            while len(self._published) > _PUBLISHED_MAX:
                del self._published[next(iter(self._published))]
            for path, attr in items:
                if len(path) <= PATH_MAX:
                    slot = self._find(path)
                    if slot is None:
                        slot = self._victim(path)
                    self._write_slot(slot, path, KIND_ATTR, attr, expires)

    def _index(self, path: bytes) -> int:
        return zlib.crc32(path) & (self.slots - 1)

    def _slot_offset(self, slot: int) -> int:
        return HEADER_SIZE + slot * SLOT_SIZE

    def _find(self, path: bytes) -> int | None:
        first = self._index(path)
        for i in range(PROBES):
            slot = (first + i) & (self.slots - 1)
            off = self._slot_offset(slot)
            length = _U16.unpack_from(self._mem, off + 4)[0]
            if (length == len(path) and self._mem[off + 6] != KIND_NONE
                    and self._mem[off + 80:off + 80 + length] == path):
                return slot
        return None

    def _victim(self, path: bytes) -> int:
        """A free, expired or void slot among the probes; else the one expiring first."""
        first = self._index(path)
        now = time.monotonic_ns()
        best, best_expiry = first, None
        for i in range(PROBES):
            slot = (first + i) & (self.slots - 1)
            off = self._slot_offset(slot)
            kind = self._mem[off + 6]
            epoch, expires = _EPOCH_EXPIRES.unpack_from(self._mem, off + 8)
            if kind == KIND_NONE or epoch != self._epoch or expires <= now:
                return slot
            if best_expiry is None or expires < best_expiry:
                best, best_expiry = slot, expires
        return best

    def _write_slot(self, slot: int, path: bytes, kind: int, attr: Attr | None,
                    expires: int) -> None:
        off = self._slot_offset(slot)
        seq = _U32.unpack_from(self._mem, off)[0]
        seq += 1 if seq % 2 == 0 else 2  # odd: readers skip the slot while it is written
        _U32.pack_into(self._mem, off, seq)
        a = attr or _NO_ATTR
        _SLOT.pack_into(self._mem, off, seq, len(path), kind, 0, self._epoch, expires,
                        a.ino, a.mode, a.nlink, a.uid, a.gid, a.size, a.atime_ns,
                        a.mtime_ns, a.ctime_ns)
        self._mem[off + 80:off + 80 + len(path)] = path
        # x86-64 keeps stores in order: the even seq becomes visible after the body.
        _U32.pack_into(self._mem, off, seq + 1)

    def mmap_size(self) -> int:
        return HEADER_SIZE + self.slots * SLOT_SIZE


def _same(old: list[tuple[bytes, Attr]], new: list[tuple[bytes, Attr]]) -> bool:
    """Attributes are immutable and replaced on every change: the same objects (``is``,
    much cheaper than comparing fields) mean the same attributes."""
    return len(old) == len(new) and all(
        a is b and p == q for (p, a), (q, b) in zip(old, new, strict=True))


def available() -> bool:
    """The seqlock relies on stores becoming visible in program order (x86-64's TSO);
    Python cannot issue memory barriers, so elsewhere shims do not read the table."""
    return os.uname().machine in ("x86_64", "amd64")
