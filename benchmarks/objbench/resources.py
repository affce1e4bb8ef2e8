"""What a tool's daemon costs during one workload: its peak resident memory and the CPU
time it used, read from /proc. The peak is reset first (``5`` into clear_refs sets
VmHWM back to the current RSS; needs root or the process's owner)."""

from __future__ import annotations

import os
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of stat(5)


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmHWM for pid {pid}")


def reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


@dataclass(frozen=True)
class Usage:
    peak_rss_kib: int  # the largest of the daemons' peaks
    cpu_seconds: float  # summed over the daemons


class UsageMeter:
    """Started just before the timed job, stopped after it. Gives None when there is no
    daemon or one of them went away meanwhile (a figure for part of the time is not one)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.cpu: dict[int, float] = {}
        try:
            for pid in pids:
                reset_peak(pid)
                self.cpu[pid] = cpu_seconds(pid)
        except OSError:
            self.pids = []

    def stop(self) -> Usage | None:
        if not self.pids:
            return None
        try:
            return Usage(max(peak_rss_kib(pid) for pid in self.pids),
                         sum(cpu_seconds(pid) - self.cpu[pid] for pid in self.pids))
        except OSError:
            return None
