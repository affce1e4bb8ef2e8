"""Requests and bytes counted where they cannot be under-counted: at the server
(SeaweedFS's metrics endpoint), per bucket. SeaweedFS counts a HEAD as a GET, and the
parts of a multipart upload as PUTs (POST starts and completes one); its traffic counters
count object bodies only (PUT bodies received, GET bodies sent; not LIST or HEAD
responses, not server-side copies)."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

_METRIC = re.compile(
    r'^SeaweedFS_s3_request_total\{bucket="([^"]*)",code="\d+",type="(\w+)"\} (\d+)$',
    re.MULTILINE)
_TRAFFIC_METRIC = re.compile(
    r'^SeaweedFS_s3_bucket_traffic_(received|sent)_bytes_total\{bucket="([^"]*)"\} (\S+)$',
    re.MULTILINE)

# botocore operation -> the type SeaweedFS counts it under
_SERVER_TYPE = {"HeadObject": "GET", "GetObject": "GET", "ListObjectsV2": "LIST",
                "ListObjects": "LIST", "PutObject": "PUT", "DeleteObject": "DELETE"}
# Traffic, from the tool's side: bytes it sent to the server, bytes it received.
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class ServerCounts:
    """What the server has counted for one bucket since it started."""

    requests: Counter[str]
    traffic: Counter[str]  # UP: bytes the server received; DOWN: bytes it sent

    def __sub__(self, other: ServerCounts) -> ServerCounts:
        return ServerCounts(self.requests - other.requests, self.traffic - other.traffic)


def server_counts(metrics_url: str, bucket: str) -> ServerCounts:
    """Requests by type and body bytes each way the server has counted for ``bucket``."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    requests: Counter[str] = Counter()
    for m in _METRIC.finditer(text):
        if m.group(1) == bucket:
            requests[m.group(2)] += int(m.group(3))
    traffic: Counter[str] = Counter()
    for m in _TRAFFIC_METRIC.finditer(text):
        if m.group(2) == bucket:
            traffic[UP if m.group(1) == "received" else DOWN] += int(float(m.group(3)))
    return ServerCounts(requests, traffic)


class ClientCounter:
    """Requests and body bytes a botocore client sends and gets (the benchmark's own
    polling, to subtract)."""

    def __init__(self, client: Any) -> None:
        self.counts = ServerCounts(Counter(), Counter())
        self.on = False
        client.meta.events.register("before-send.s3", self._sent)
        client.meta.events.register("after-call.s3.GetObject", self._got)

    def _sent(self, **kwargs: Any) -> None:
        if self.on:
            operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
            self.counts.requests[_SERVER_TYPE.get(operation, "OTHER")] += 1

    def _got(self, **kwargs: Any) -> None:
        parsed = kwargs.get("parsed") or {}
        if self.on:
            self.counts.traffic[DOWN] += int(parsed.get("ContentLength", 0))


def format_counts(counts: dict[str, int]) -> str:
    """``{"GET": 1000, "LIST": 1}`` -> ``"1000 GET, 1 LIST"``, largest first."""
    items = sorted(((n, kind) for kind, n in counts.items() if n > 0), reverse=True)
    return ", ".join(f"{n} {kind}" for n, kind in items) or "0"


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n:.0f} B"


def format_traffic(traffic: dict[str, int]) -> str:
    """Bytes to the server / bytes from it."""
    return f"{format_bytes(traffic.get(UP, 0))} / {format_bytes(traffic.get(DOWN, 0))}"
