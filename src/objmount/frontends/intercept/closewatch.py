"""inotify on the engine's directory of open cache files.

Programs under interception hold kernel descriptors of cache files. They write them
directly, pass them to children, and may exit without ever calling a wrapped close():
only the kernel sees every last close. inotify reports, for each open file description,
its last close (IN_CLOSE_WRITE or IN_CLOSE_NOWRITE), and every write (IN_MODIFY).
objmount's own I/O on cache files goes through the one descriptor each OpenFile keeps,
which is closed only after the file leaves the registry, so every event seen here
belongs to a description handed to a program.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE_NOWRITE = 0x00000010
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class Event:
    mask: int
    name: str


class CloseWatch:
    def __init__(self, directory: Path) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        wd = _libc.inotify_add_watch(fd, os.fsencode(directory),
                                     IN_MODIFY | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE)
        if wd < 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise OSError(err, f"inotify_add_watch {directory}: {os.strerror(err)}")

    def read(self) -> list[Event]:
        """Every event queued now (none: an empty list; never blocks)."""
        events: list[Event] = []
        while True:
            try:
                buf = os.read(self.fd, 64 * 1024)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            pos = 0
            while pos + _EVENT.size <= len(buf):
                _wd, mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                raw = buf[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
                pos += _EVENT.size + length
                events.append(Event(mask, os.fsdecode(raw)))

    def close(self) -> None:
        os.close(self.fd)
