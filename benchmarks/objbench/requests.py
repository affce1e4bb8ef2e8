"""Requests counted where they cannot be under-counted: at the server (SeaweedFS's
metrics endpoint), per bucket and request type. SeaweedFS counts a HEAD as a GET, and
the parts of a multipart upload as PUTs (POST starts and completes one)."""

from __future__ import annotations

import re
import urllib.request
from collections import Counter
from typing import Any

_METRIC = re.compile(
    r'^SeaweedFS_s3_request_total\{bucket="([^"]*)",code="\d+",type="(\w+)"\} (\d+)$',
    re.MULTILINE)

# botocore operation -> the type SeaweedFS counts it under
_SERVER_TYPE = {"HeadObject": "GET", "GetObject": "GET", "ListObjectsV2": "LIST",
                "ListObjects": "LIST", "PutObject": "PUT", "DeleteObject": "DELETE"}


def server_counts(metrics_url: str, bucket: str) -> Counter[str]:
    """Requests the server has answered for ``bucket`` since it started, by type."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    counts: Counter[str] = Counter()
    for m in _METRIC.finditer(text):
        if m.group(1) == bucket:
            counts[m.group(2)] += int(m.group(3))
    return counts


class ClientCounter:
    """Requests a botocore client sends (the benchmark's own polling, to subtract)."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False
        client.meta.events.register("before-send.s3", self._sent)

    def _sent(self, **kwargs: Any) -> None:
        if self.on:
            operation = str(kwargs.get("event_name", "")).rsplit(".", 1)[-1]
            self.counts[_SERVER_TYPE.get(operation, "OTHER")] += 1


def format_counts(counts: dict[str, int]) -> str:
    """``{"GET": 1000, "LIST": 1}`` -> ``"1000 GET, 1 LIST"``, largest first."""
    items = sorted(((n, kind) for kind, n in counts.items() if n > 0), reverse=True)
    return ", ".join(f"{n} {kind}" for n, kind in items) or "0"
