"""Which blocks of the remote object a cache file holds.

For the FUSE mount this is private state. For the interception daemon it is also shared
memory (a memfd) that every shim holding the file open maps read-only, so a read of
bytes already present needs no question to the daemon. The layout is fixed; the C side
is ``struct om_map`` in shim/objmount.h::

    0   u64 magic           'OBJMMAP1'
    8   u32 seq             odd while the daemon changes the map (a seqlock)
    12  u32 flags           COMPLETE: every byte of the file is present
    16  u64 block_size
    24  u64 remote_size     bytes [0, remote_size) come from the store; beyond: local
    32  u64 capacity        bits available
    64  bits                bit b set: block b is present

Readers check ``seq`` before and after using the file and retry when it changed, so a
reset (the object was replaced) never lets them read half-filled bytes as data.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading

MAGIC = int.from_bytes(b"OBJMMAP1", "little")
HEADER_SIZE = 64
COMPLETE = 1
# S3's largest object: the shared map has room for all its blocks (the memfd is sparse).
MAX_OBJECT = 5 << 40
_HEAD = struct.Struct("<QIIQQQ")


class BlockMap:
    def __init__(self, block_size: int, remote_size: int, *, shared: bool = False) -> None:
        self.block_size = block_size
        self.remote_size = remote_size
        self._present: set[int] = set()
        self._add_lock = threading.Lock()
        self._seq = 0
        self.memfd: int | None = None
        self._mem: mmap.mmap | None = None
        if shared:
            capacity = -(-MAX_OBJECT // block_size)
            size = HEADER_SIZE + -(-capacity // 8)
            self.memfd = os.memfd_create("objmount-map", os.MFD_CLOEXEC)
            os.ftruncate(self.memfd, size)
            self._mem = mmap.mmap(self.memfd, size)
            self._capacity = capacity
            self._publish()

    # -- queries --------------------------------------------------------------------
    def __contains__(self, block: int) -> bool:
        return block in self._present

    def blocks(self) -> int:
        return -(-self.remote_size // self.block_size)

    def missing(self, start: int, end: int) -> list[int]:
        """Blocks of [start, end) not present (bytes beyond remote_size are local)."""
        end = min(end, self.remote_size)
        if end <= start:
            return []
        first, last = start // self.block_size, (end - 1) // self.block_size
        return [b for b in range(first, last + 1) if b not in self._present]

    def empty(self) -> bool:
        return not self._present

    def complete(self) -> bool:
        return len(self._present) >= self.blocks()

    # -- changes ----------------------------------------------------------------------
    def add(self, block: int) -> None:
        # Fetch threads add blocks concurrently: one bit at a time in the shared byte.
        with self._add_lock:
            self._present.add(block)
            if self._mem is not None and block < self._capacity:
                pos = HEADER_SIZE + block // 8
                self._mem[pos] |= 1 << (block % 8)
                if self.complete():
                    self._publish()

    def fill_all(self) -> None:
        self._present = set(range(self.blocks()))
        self._publish()

    def reset(self, remote_size: int) -> None:
        """Nothing present any more: the object changed, or the file was cut to size."""
        self._begin()
        self.remote_size = remote_size
        self._present.clear()
        if self._mem is not None:
            used = HEADER_SIZE + -(-self._capacity // 8)
            self._mem[HEADER_SIZE:used] = bytes(used - HEADER_SIZE)
        self._end()

    def truncate(self, size: int) -> None:
        """The file was cut to ``size``: remote bytes beyond it are gone."""
        if size >= self.remote_size:
            return
        self._begin()
        self.remote_size = size
        keep = {b for b in self._present if b * self.block_size < size}
        dropped = self._present - keep
        self._present = keep
        if self._mem is not None:
            for block in dropped:
                if block < self._capacity:
                    self._mem[HEADER_SIZE + block // 8] &= ~(1 << (block % 8)) & 0xFF
        self._end()

    def close(self) -> None:
        if self._mem is not None:
            self._mem.close()
            self._mem = None
        if self.memfd is not None:
            os.close(self.memfd)
            self.memfd = None

    # -- the shared header, under the seqlock --------------------------------------------
    def _begin(self) -> None:
        self._seq += 1  # odd: readers retry
        if self._mem is not None:
            struct.pack_into("<I", self._mem, 8, self._seq)

    def _end(self) -> None:
        self._seq += 1
        self._publish()

    def _publish(self) -> None:
        if self._mem is None:
            return
        flags = COMPLETE if self.complete() else 0
        # Body first, seq last: x86-64 keeps stores in order, and readers load seq first.
        struct.pack_into("<IQQQ", self._mem, 12, flags, self.block_size, self.remote_size,
                         self._capacity)
        struct.pack_into("<Q", self._mem, 0, MAGIC)
        struct.pack_into("<I", self._mem, 8, self._seq)
