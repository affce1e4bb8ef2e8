"""Requests and bytes a store client sent, by request type: what `objmount status` and the
benchmarks report, and what a request per file that need not be there shows up in."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TypedDict

# The first word of a request's description, as the store clients name them.
_KINDS = {"HEAD": "HEAD", "HeadBucket": "HEAD", "GET": "GET", "PUT": "PUT", "COPY": "COPY",
          "DELETE": "DELETE", "LIST": "LIST", "ListBuckets": "LIST"}


def request_kind(what: str) -> str:
    """``"GET key [0:10)"`` -> ``"GET"``; anything unknown is ``"OTHER"``."""
    return _KINDS.get(what.split(" ", 1)[0], "OTHER")


class CounterSnapshot(TypedDict):
    requests: dict[str, int]
    failed: dict[str, int]
    bytes_received: int
    bytes_sent: int


class RequestCounters:
    """Thread-safe totals since start. A request retried counts once per attempt; a
    multipart upload counts as one PUT (its parts go out inside the client library).
    ``failed``: requests that got no answer to act on (5xx, throttling, timeouts, broken
    connections: the retried kind); a 404 or 412 is an answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._received = 0
        self._sent = 0

    def request(self, what: str, *, failed: bool = False) -> None:
        kind = request_kind(what)
        with self._lock:
            self._requests[kind] += 1
            if failed:
                self._failed[kind] += 1

    def received(self, nbytes: int) -> None:
        with self._lock:
            self._received += nbytes

    def sent(self, nbytes: int) -> None:
        with self._lock:
            self._sent += nbytes

    def snapshot(self) -> CounterSnapshot:
        with self._lock:
            return CounterSnapshot(requests=dict(self._requests), failed=dict(self._failed),
                                   bytes_received=self._received, bytes_sent=self._sent)
