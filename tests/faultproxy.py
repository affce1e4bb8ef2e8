"""An HTTP proxy between objmount and the real S3 server that injects the faults real
networks and stores produce: 500 InternalError and 503 SlowDown answers, connection
resets (before the request reaches the server, and after the server acted on it), stalls
(before the answer, and half way through a body), truncated bodies, and upload bodies
corrupted in flight. Built on aiohttp; it runs on its own event loop in a thread of the
test process, on 127.0.0.1.

Requests are forwarded with their headers unchanged (Host included), so SigV4 signatures
made for the proxy's address stay valid at the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

ALL_FAULTS = ("500", "503", "reset", "reset_after", "stall", "stall_body", "truncate",
              "corrupt")
# Headers that belong to one hop, or that aiohttp sets itself from the body it sends.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "expect",
                "proxy-connection", "te", "trailer", "upgrade"}
_ERROR_BODY = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
               "<Message>injected by the test proxy</Message></Error>")


@dataclass
class FaultPlan:
    rate: float = 0.0  # share of requests that get a fault
    faults: tuple[str, ...] = ALL_FAULTS
    methods: frozenset[str] | None = None  # only these HTTP methods (None: all)
    stall_seconds: float = 20.0
    first_only: int = 0  # if > 0: a fault on each of the first N eligible requests only
    seed: int = 1


@dataclass
class FaultStats:
    requests: int = 0
    injected: Counter[str] = field(default_factory=Counter)  # "KIND METHOD" -> count


class FaultProxy:
    def __init__(self, upstream: str, plan: FaultPlan | None = None, port: int = 0) -> None:
        """``port``: 0 for any free one; a given one to stand in for a proxy stopped
        before (the server "comes back" at the same address)."""
        self.upstream = upstream.rstrip("/")
        self.plan = plan or FaultPlan()
        self.stats = FaultStats()
        self._rng = random.Random(self.plan.seed)
        self._eligible = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_plan(self, plan: FaultPlan) -> None:
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)
            self._eligible = 0

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None),
            connector=aiohttp.TCPConnector(limit=256))
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Stalled handlers are not waited for when the proxy stops.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server  # the listening socket's port: asked for as 0
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()
            # Handlers still stalling: cancelled here, not left to a closed loop.
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults -------------------------------------------------------------------------
    def _choose(self, method: str, has_body: bool) -> str | None:
        with self._lock:
            self.stats.requests += 1
            plan = self.plan
            if plan.methods is not None and method not in plan.methods:
                return None
            if plan.first_only:
                self._eligible += 1
                if self._eligible > plan.first_only:
                    return None
            elif self._rng.random() >= plan.rate:
                return None
            # Corruption is of uploads: the bytes of PUTs (objects and parts).
            kinds = [f for f in plan.faults
                     if (f != "corrupt" or (has_body and method == "PUT"))
                     and (method != "HEAD" or f not in ("truncate", "stall_body"))]
            if not kinds:
                return None
            fault = self._rng.choice(kinds)
            self.stats.injected[f"{fault} {method}"] += 1
            return fault

    @staticmethod
    def _reset(request: web.Request) -> None:
        """Close the client's connection with a TCP reset, not a clean end."""
        transport = request.transport
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        fault = self._choose(request.method, bool(body))
        if fault in ("500", "503"):
            code = "SlowDown" if fault == "503" else "InternalError"
            return web.Response(status=int(fault), text=_ERROR_BODY.format(code=code),
                                content_type="application/xml")
        if fault == "reset":
            self._reset(request)
            return web.Response(status=500)  # never sent: the connection is gone
        if fault == "stall":
            await asyncio.sleep(self.plan.stall_seconds)
        if fault == "corrupt":
            flipped = bytearray(body)
            flipped[len(flipped) // 2] ^= 0x55
            body = bytes(flipped)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        assert self._session is not None
        async with self._session.request(
                request.method, self.upstream + request.path_qs, headers=headers, data=body,
                allow_redirects=False, skip_auto_headers=("Accept-Encoding", "User-Agent",
                                                          "Content-Type")) as up:
            if fault == "reset_after":
                await up.read()  # the server did the work; the client never hears of it
                self._reset(request)
                return web.Response(status=500)
            out = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in _HOP_HEADERS:
                    out.headers.add(k, v)
            length = up.headers.get("Content-Length")
            if length is not None:
                out.content_length = int(length)
            await out.prepare(request)
            if request.method == "HEAD":
                await out.write_eof()
                return out
            sent = 0
            cut = int(length) // 2 if length and fault in ("truncate", "stall_body") else -1
            async for chunk in up.content.iter_chunked(256 * 1024):
                if 0 <= cut < sent + len(chunk):
                    await out.write(chunk[:cut - sent])
                    if fault == "stall_body":
                        await asyncio.sleep(self.plan.stall_seconds)
                    self._reset(request)
                    return out
                await out.write(chunk)
                sent += len(chunk)
            await out.write_eof()
            return out
