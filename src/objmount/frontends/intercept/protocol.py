"""The shim <-> daemon wire format: a sans-IO codec (bytes in, messages out).

Every message is one frame::

    u32 body_length | u16 op | u16 fd_count | u16 arg_count | args...
    arg := 'i' i64                 (0x69, then 8 bytes little endian)
         | 'b' u32 length, bytes   (0x62)

Requests carry an operation number (:class:`Op`); replies carry ``Op.REPLY`` and their
first argument is the status: 0, an errno value, or ``EXTERNAL`` (the path left the
object namespace: the second argument is the local path to use instead). ``fd_count``
says how many file descriptors travel beside the frame (SCM_RIGHTS); the codec only
counts them, the transport moves them. The C side (shim/objmount.h, shim/codec.c)
mirrors the numbers below; tests/test_intercept_protocol.py checks that the two agree.

The codec knows nothing of sockets, so it is tested with Hypothesis on its own:
round trips, arbitrary splits of the byte stream, and arbitrary garbage.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass

PROTOCOL_VERSION = 4
# Prefix of the shared-table keys of "this local program is reachable" verdicts (C:
# OM_EXEC_KEY): the shim reuses one while the program's inode is unchanged.
EXEC_VERDICT_KEY = b"/\x01exec"

# A frame is at most this long: the socket is SOCK_SEQPACKET, whose messages must fit
# the send buffer, so large answers (listings) are paged.
MAX_FRAME = 256 * 1024
MAX_ARGS = 64
MAX_FDS = 4

EXTERNAL = -1  # reply status: the path resolves outside the object namespace

_HEADER = struct.Struct("<IHHH")
_I64 = struct.Struct("<q")
_U32 = struct.Struct("<I")
_TAG_INT = 0x69
_TAG_BYTES = 0x62


class Op(enum.IntEnum):
    REPLY = 0
    HELLO = 1
    STAT = 2  # vpath, flags (FOLLOW)
    OPEN = 3  # vpath, flags, mode, umask
    FSTAT = 4  # handle
    FILL = 5  # handle, offset, length (-1: the whole file)
    FLUSH = 6  # handle
    DIRTY = 7  # handle[, errno]: written through a shared mapping, or a write failed
    LIST = 8  # handle, cookie
    MKDIR = 9  # vpath, mode, umask
    RMDIR = 10  # vpath
    UNLINK = 11  # vpath
    RENAME = 12  # old vpath, new vpath, flags
    SYMLINK = 13  # target, vpath
    READLINK = 14  # vpath
    SETATTR = 15  # vpath, handle, flags, mode, uid, gid, size, atime s/ns, mtime s/ns
    ACCESS = 16  # vpath, mode, flags
    REALPATH = 17  # vpath
    CHDIR = 18  # vpath
    STATFS = 19  # vpath
    EXEC = 20  # path, is_vpath, reason flags
    ADOPT = 21  # handle (an fd inherited across exec)
    LINK = 22  # old vpath, new vpath, flags (LINK_FOLLOW)
    MKNOD = 23  # vpath, mode, dev, umask
    SESSION_WAIT = 24  # session: wait for its uploads, return failures
    XATTR = 25  # vpath, handle, follow, action (XATTR_*), name, value, flags


# Flags inside requests.
STAT_FOLLOW = 1
LINK_FOLLOW = 0x400  # AT_SYMLINK_FOLLOW, as linkat(2) gives it
SETATTR_MODE = 1
SETATTR_UID = 2
SETATTR_GID = 4
SETATTR_SIZE = 8
SETATTR_ATIME = 16
SETATTR_MTIME = 32
SETATTR_FOLLOW = 64
EXEC_ARGS = 1  # an argument names an object path
EXEC_CWD = 2  # the working directory is an object directory
EXEC_FDS = 4  # object files stay open across the exec

XATTR_GET = 0
XATTR_SET = 1
XATTR_LIST = 2
XATTR_REMOVE = 3

# Kinds in OPEN replies and listings (the d_type values of <dirent.h>).
DT_DIR = 4
DT_REG = 8
DT_LNK = 10

Arg = int | bytes


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame."""


@dataclass(frozen=True)
class Message:
    op: int
    args: tuple[Arg, ...] = ()
    fd_count: int = 0

    @property
    def status(self) -> int:
        """A reply's status (0, an errno, or EXTERNAL)."""
        first = self.args[0] if self.args else None
        if self.op != Op.REPLY or not isinstance(first, int):
            raise ProtocolError("not a reply")
        return first


def reply(status: int = 0, *args: Arg, fd_count: int = 0) -> Message:
    return Message(Op.REPLY, (status, *args), fd_count)


def encode(msg: Message) -> bytes:
    if not 0 <= msg.op <= 0xFFFF:
        raise ProtocolError(f"op {msg.op} out of range")
    if len(msg.args) > MAX_ARGS or not 0 <= msg.fd_count <= MAX_FDS:
        raise ProtocolError("too many arguments or descriptors")
    parts = [b""]
    for arg in msg.args:
        if isinstance(arg, bool) or not isinstance(arg, int | bytes):
            raise ProtocolError(f"cannot encode {type(arg).__name__}")
        if isinstance(arg, int):
            if not -(1 << 63) <= arg < (1 << 63):
                raise ProtocolError("integer out of range")
            parts.append(bytes([_TAG_INT]) + _I64.pack(arg))
        else:
            parts.append(bytes([_TAG_BYTES]) + _U32.pack(len(arg)) + arg)
    body = b"".join(parts)
    length = _HEADER.size - 4 + len(body)
    if length + 4 > MAX_FRAME:
        raise ProtocolError(f"frame of {length + 4} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(length, msg.op, msg.fd_count, len(msg.args)) + body


def _decode_body(body: memoryview) -> Message:
    op, fd_count, argc = struct.unpack_from("<HHH", body, 0)
    if argc > MAX_ARGS or fd_count > MAX_FDS:
        raise ProtocolError("too many arguments or descriptors")
    pos = 6
    args: list[Arg] = []
    for _ in range(argc):
        if pos >= len(body):
            raise ProtocolError("frame ends inside an argument")
        tag = body[pos]
        pos += 1
        if tag == _TAG_INT:
            if pos + 8 > len(body):
                raise ProtocolError("frame ends inside an integer")
            args.append(_I64.unpack_from(body, pos)[0])
            pos += 8
        elif tag == _TAG_BYTES:
            if pos + 4 > len(body):
                raise ProtocolError("frame ends inside a length")
            (length,) = _U32.unpack_from(body, pos)
            pos += 4
            if pos + length > len(body):
                raise ProtocolError("frame ends inside a byte string")
            args.append(bytes(body[pos:pos + length]))
            pos += length
        else:
            raise ProtocolError(f"unknown argument tag {tag:#x}")
    if pos != len(body):
        raise ProtocolError("trailing bytes after the last argument")
    return Message(op, tuple(args), fd_count)


class Decoder:
    """Feed it bytes as they arrive; it returns each complete message once."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        self._buf += data
        out: list[Message] = []
        while len(self._buf) >= 4:
            (length,) = _U32.unpack_from(self._buf, 0)
            if length < 6 or length + 4 > MAX_FRAME:
                raise ProtocolError(f"bad frame length {length}")
            if len(self._buf) < 4 + length:
                break
            body = memoryview(bytes(self._buf[4:4 + length]))
            del self._buf[:4 + length]
            out.append(_decode_body(body))
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)


def decode_frame(data: bytes) -> Message:
    """Exactly one frame (a SOCK_SEQPACKET message)."""
    decoder = Decoder()
    messages = decoder.feed(data)
    if len(messages) != 1 or decoder.pending:
        raise ProtocolError("expected exactly one frame")
    return messages[0]


# -- attributes and listings: fixed layouts both sides share -----------------------------

# ino, mode, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns
ATTR_FIELDS = 9


def attr_args(ino: int, mode: int, nlink: int, uid: int, gid: int, size: int,
              atime_ns: int, mtime_ns: int, ctime_ns: int) -> tuple[int, ...]:
    return (ino, mode, nlink, uid, gid, size, atime_ns, mtime_ns, ctime_ns)


_ENTRY = struct.Struct("<QBH")  # ino, d_type, name length; then the name


def pack_entries(entries: Iterable[tuple[int, int, bytes]]) -> bytes:
    """Directory entries (ino, d_type, name) as one byte string."""
    return b"".join(_ENTRY.pack(ino, dtype, len(name)) + name for ino, dtype, name in entries)


def unpack_entries(blob: bytes) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(blob):
        if pos + _ENTRY.size > len(blob):
            raise ProtocolError("listing ends inside an entry header")
        ino, dtype, length = _ENTRY.unpack_from(blob, pos)
        pos += _ENTRY.size
        if pos + length > len(blob):
            raise ProtocolError("listing ends inside a name")
        out.append((ino, dtype, blob[pos:pos + length]))
        pos += length
    return out


ENTRY_HEADER_SIZE = _ENTRY.size
