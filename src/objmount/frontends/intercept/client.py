"""A Python client of the daemon's protocol: what ``objmount run`` and ``shell`` use to
hold a session open and wait for its uploads, and what tests use to talk to a daemon."""

from __future__ import annotations

import array
import os
import socket
from pathlib import Path

from objmount import __version__
from objmount.errors import ConfigError
from objmount.frontends.intercept import protocol as p


class DaemonClient:
    def __init__(self, socket_path: Path, session: bytes, root: bytes = b"/objmount") -> None:
        self.socket_path = socket_path
        self.session = session
        self.root = root
        self.sock: socket.socket | None = None

    def connect(self, timeout: float = 30.0) -> p.Message:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        sock.settimeout(timeout)
        sock.connect(os.fsencode(self.socket_path))
        self.sock = sock
        hello, fds = self.call_with_fds(p.Op.HELLO, p.PROTOCOL_VERSION, __version__.encode(),
                                        self.session, self.root)
        for fd in fds:
            os.close(fd)
        if hello.status != 0:
            text = hello.args[1] if len(hello.args) > 1 else b""
            self.close()
            raise ConfigError(text.decode(errors="replace") if isinstance(text, bytes)
                              else f"the daemon refused the connection ({hello.status})")
        return hello

    def call_with_fds(self, op: int, *args: p.Arg) -> tuple[p.Message, list[int]]:
        assert self.sock is not None, "connected"
        self.sock.sendall(p.encode(p.Message(op, args)))
        data, ancdata, _flags, _addr = self.sock.recvmsg(
            p.MAX_FRAME, socket.CMSG_SPACE(4 * p.MAX_FDS))
        if not data:
            raise ConnectionResetError("the daemon closed the connection")
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
        return p.decode_frame(data), fds

    def call(self, op: int, *args: p.Arg) -> p.Message:
        msg, fds = self.call_with_fds(op, *args)
        for fd in fds:
            os.close(fd)
        return msg

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
