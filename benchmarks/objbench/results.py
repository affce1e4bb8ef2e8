"""Every measured sample of a run, and the medians the report shows.

A figure is the median of the repetitions; a row whose repetition failed shows the
failure instead (a median of the ones that worked would hide it)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from objbench.resources import Usage

DIRECT, LATENCY, LS = "direct", "latency", "ls"


@dataclass(frozen=True)
class Failure:
    reason: str


Cell = float | Failure | None  # seconds; a failure; None: no equivalent for this tool
NOT_RUN = Failure("not run (interrupted)")
Key = tuple[str, str, str]  # (series, row or workload key, tool)


def median_counts(samples: list[dict[str, int]]) -> dict[str, int]:
    """Per kind, the median over the repetitions (each kind on its own)."""
    kinds = set().union(*samples)
    return {k: round(statistics.median(s.get(k, 0) for s in samples)) for k in kinds}


@dataclass
class Results:
    tools: list[str]
    times: dict[Key, list[float]] = field(default_factory=dict)
    failures: dict[Key, Failure] = field(default_factory=dict)
    absent: set[Key] = field(default_factory=set)  # no equivalent for this tool
    requests: dict[Key, list[dict[str, int]]] = field(default_factory=dict)
    traffic: dict[Key, list[dict[str, int]]] = field(default_factory=dict)
    usage: dict[Key, list[Usage]] = field(default_factory=dict)

    def cell(self, series: str, row: str, tool: str) -> Cell:
        key = (series, row, tool)
        if key in self.failures:
            return self.failures[key]
        if key in self.absent:
            return None
        if key in self.times:
            return statistics.median(self.times[key])
        return NOT_RUN

    def add_time(self, series: str, row: str, tool: str, seconds: float) -> None:
        self.times.setdefault((series, row, tool), []).append(seconds)

    def fail(self, series: str, row: str, tool: str, reason: str) -> None:
        self.failures.setdefault((series, row, tool), Failure(reason))

    def add_counts(self, series: str, workload: str, tool: str, requests: Counter[str] |
                   dict[str, int], traffic: dict[str, int]) -> None:
        key = (series, workload, tool)
        self.requests.setdefault(key, []).append(dict(requests))
        self.traffic.setdefault(key, []).append(dict(traffic))

    def add_usage(self, series: str, workload: str, tool: str, usage: Usage) -> None:
        self.usage.setdefault((series, workload, tool), []).append(usage)

    def median_requests(self, series: str, workload: str, tool: str) -> dict[str, int] | None:
        samples = self.requests.get((series, workload, tool))
        return median_counts(samples) if samples else None

    def median_traffic(self, series: str, workload: str, tool: str) -> dict[str, int] | None:
        samples = self.traffic.get((series, workload, tool))
        return median_counts(samples) if samples else None

    def median_usage(self, series: str, workload: str, tool: str) -> Usage | None:
        samples = self.usage.get((series, workload, tool))
        if not samples:
            return None
        return Usage(round(statistics.median(u.peak_rss_kib for u in samples)),
                     statistics.median(u.cpu_seconds for u in samples))
