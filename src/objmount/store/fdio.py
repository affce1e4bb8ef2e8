"""Reading and writing an open file by offset, whole: pread/pwrite may be short."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator


def read_exactly(fd: int, offset: int, size: int) -> bytes:
    """Bytes [offset, offset + size) of the file; EIO if it is shorter than that now."""
    parts: list[bytes] = []
    done = 0
    while done < size:
        chunk = os.pread(fd, size - done, offset + done)
        if not chunk:
            raise OSError(errno.EIO, f"the file ended at {offset + done}, "
                          f"{size - done} bytes short of {offset + size}")
        parts.append(chunk)
        done += len(chunk)
    return b"".join(parts)


def read_chunks(fd: int, size: int, chunk_size: int) -> Iterator[bytes]:
    for offset in range(0, size, chunk_size):
        yield read_exactly(fd, offset, min(chunk_size, size - offset))


def write_at(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
