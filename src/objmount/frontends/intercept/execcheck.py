"""Which programs LD_PRELOAD cannot reach, decided from the binary before it runs.

* Statically linked programs have no dynamic loader (no PT_INTERP), so no preload.
* Go programs make their own system calls (many are dynamically linked, for cgo or the
  resolver, yet never call libc for files); they carry Go's build information, found
  here by its section or its magic, as ``runtime/debug`` finds it.
* setuid/setgid programs that change the caller's ids run in secure mode, where the
  loader ignores LD_PRELOAD.

A program that is not reached cannot use object paths. The shim asks before exec'ing
one with an object path among its arguments, an object directory as its working
directory, or object files open across the exec, and refuses with this one-line reason.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

_GO_BUILDINFO_MAGIC = b"\xff Go buildinf:"
_SCAN_LIMIT = 64 << 20  # Go puts build info in the data segment, well inside this


def unreachable_reason(path: Path, uid: int, gid: int, depth: int = 0) -> str | None:
    """Why LD_PRELOAD would not reach ``path`` when exec'd by uid/gid, or None."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None  # exec will report the problem itself
    if (st.st_mode & stat.S_ISUID and st.st_uid != uid) or (
            st.st_mode & stat.S_ISGID and st.st_gid != gid):
        return "is setuid or setgid, and the loader ignores LD_PRELOAD for such programs"
    if head.startswith(b"#!") and depth < 2:
        line = head[2:].split(b"\n", 1)[0].strip()
        interpreter = line.split(None, 1)[0] if line else b""
        if interpreter:
            inner = unreachable_reason(Path(os.fsdecode(interpreter)), uid, gid, depth + 1)
            if inner is not None:
                return f"runs under {os.fsdecode(interpreter)}, which {inner}"
        return None
    if not head.startswith(b"\x7fELF"):
        return None
    elf = _Elf(path, head)
    if not elf.has_interpreter():
        return "is statically linked: it has no dynamic loader, so no LD_PRELOAD"
    if elf.is_go():
        return "is a Go program: Go makes its own system calls, which LD_PRELOAD cannot see"
    return None


class _Elf:
    def __init__(self, path: Path, head: bytes) -> None:
        self.path = path
        self.is64 = head[4] == 2
        self.endian = "<" if head[5] == 1 else ">"
        self.head = head

    def _read(self, offset: int, size: int) -> bytes:
        with open(self.path, "rb") as f:
            f.seek(offset)
            return f.read(size)

    def has_interpreter(self) -> bool:
        e = self.endian
        if self.is64:
            phoff, = struct.unpack_from(e + "Q", self.head, 32)
            phentsize, phnum = struct.unpack_from(e + "HH", self.head, 54)
        else:
            phoff, = struct.unpack_from(e + "I", self.head, 28)
            phentsize, phnum = struct.unpack_from(e + "HH", self.head, 42)
        table = self._read(phoff, phentsize * phnum)
        for i in range(phnum):
            p_type, = struct.unpack_from(e + "I", table, i * phentsize)
            if p_type == 3:  # PT_INTERP
                return True
        return False

    def _section_names(self) -> list[bytes]:
        e = self.endian
        if self.is64:
            shoff, = struct.unpack_from(e + "Q", self.head, 40)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", self.head, 58)
        else:
            shoff, = struct.unpack_from(e + "I", self.head, 32)
            shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", self.head, 46)
        if not shoff or not shnum or shstrndx >= shnum:
            return []
        table = self._read(shoff, shentsize * shnum)
        def name_and_range(i: int) -> tuple[int, int, int]:
            if self.is64:
                name, = struct.unpack_from(e + "I", table, i * shentsize)
                offset, size = struct.unpack_from(e + "QQ", table, i * shentsize + 24)
            else:
                name, = struct.unpack_from(e + "I", table, i * shentsize)
                offset, size = struct.unpack_from(e + "II", table, i * shentsize + 16)
            return name, offset, size
        _, str_off, str_size = name_and_range(shstrndx)
        strings = self._read(str_off, min(str_size, 1 << 20))
        names = []
        for i in range(shnum):
            name, _, _ = name_and_range(i)
            names.append(strings[name:strings.find(b"\0", name)])
        return names

    def is_go(self) -> bool:
        names = self._section_names()
        if b".go.buildinfo" in names or b".note.go.buildid" in names:
            return True
        if names:
            return False
        # No section headers (stripped hard): look for the magic, 16-byte aligned.
        with open(self.path, "rb") as f:
            data = f.read(_SCAN_LIMIT)
        pos = data.find(_GO_BUILDINFO_MAGIC)
        while pos >= 0:
            if pos % 16 == 0:
                return True
            pos = data.find(_GO_BUILDINFO_MAGIC, pos + 1)
        return False
