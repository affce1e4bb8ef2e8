"""What each running mount and interception daemon reports about itself.

Every daemon rewrites a small JSON file, ``<runtime dir>/status/<pid>.json``, once a
second (atomically: write, then rename) and removes it when it stops; `objmount status`
reads them all. Files of dead processes (a SIGKILLed daemon) are recognised by their pid
and removed by the reader. Nothing here talks to the daemons: a stuck daemon still shows
its last report, with its age.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from objmount import paths
from objmount.config import S3Config
from objmount.core.cache import dir_disk_use
from objmount.core.engine import Engine
from objmount.core.namespace import MountRoot
from objmount.store.counters import RequestCounters

PUBLISH_INTERVAL = 1.0


def status_dir() -> Path:
    path = paths.runtime_dir() / "status"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def describe_root(root: MountRoot) -> str:
    if root.bucket is None:
        return "all buckets"
    return f"s3://{root.bucket}/{root.prefix}".rstrip("/")


def describe_endpoint(engine: Engine) -> str:
    config = getattr(engine.ns.account, "config", None)
    return config.describe() if isinstance(config, S3Config) else "in-memory store"


def report(kind: str, where: str, root: str, endpoint: str, engine: Engine,
           started: float) -> dict[str, Any]:
    """One daemon's status now."""
    counters = getattr(engine.ns.account, "counters", None)
    store = counters.snapshot() if isinstance(counters, RequestCounters) else None
    used, files = dir_disk_use(engine.open_dir)
    return {
        "pid": os.getpid(), "kind": kind, "where": where, "root": root,
        "endpoint": endpoint, "started": started, "updated": time.time(),
        "cache": {"dir": str(engine.open_dir), "bytes": used, "files": files,
                  **engine.cache.snapshot()},
        "reads": engine.read_counters.snapshot(),
        "store": store,
    }


class Publisher:
    """Rewrites this process's status file every ``interval`` seconds until stopped."""

    def __init__(self, kind: str, where: str, root: str, engine: Engine,
                 interval: float = PUBLISH_INTERVAL) -> None:
        self._args = (kind, where, root, describe_endpoint(engine), engine)
        self._started = time.time()
        self._interval = interval
        self._stop = threading.Event()
        self.path = status_dir() / f"{os.getpid()}.json"
        self._thread = threading.Thread(target=self._run, name="objmount-status",
                                        daemon=True)

    def start(self) -> Publisher:
        self.publish()
        self._thread.start()
        return self

    def publish(self) -> None:
        text = json.dumps(report(*self._args, started=self._started))
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.publish()
            except OSError:
                continue  # a full or vanished runtime dir must not stop the daemon

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.path.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """A process with this pid exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running() -> Iterator[dict[str, Any]]:
    """The reports of the daemons still running, oldest first; dead ones' are removed."""
    found = []
    for path in status_dir().glob("*.json"):
        try:
            status = json.loads(path.read_text())
            pid = int(status["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced right now, or not ours
        if pid_alive(pid):
            found.append(status)
        else:
            path.unlink(missing_ok=True)
    yield from sorted(found, key=lambda s: float(s.get("started", 0)))


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def render(status: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now
    lines = [f"{status['kind']} pid {status['pid']}: {status['where']}",
             f"  objects:   {status['root']} at {status['endpoint']}",
             f"  up:        {now - float(status['started']):.0f} s "
             f"(report {now - float(status['updated']):.1f} s old)"]
    cache = status["cache"]
    lines.append(f"  cache:     {_size(cache['bytes'] + cache['parked_bytes'])} of "
                 f"{_size(cache['capacity'])}: {_size(cache['bytes'])} in "
                 f"{cache['files']} open files, {_size(cache['parked_bytes'])} in "
                 f"{cache['parked_files']} kept after close ({cache['dir']})")
    opens = cache["hits"] + cache["misses"]
    if opens:
        lines.append(f"  reopens:   {cache['hits']} of {opens} opens found their bytes "
                     f"cached ({100 * cache['hits'] / opens:.1f}%), "
                     f"{cache['evictions']} files evicted")
    reads = status["reads"]
    total = reads["hits"] + reads["ahead"] + reads["misses"]
    if total:
        lines.append(f"  reads:     {total} seen, {100 * reads['hits'] / total:.1f}% cached, "
                     f"{100 * reads['ahead'] / total:.1f}% fetched ahead, "
                     f"{100 * reads['misses'] / total:.1f}% waited for the store")
    else:
        lines.append("  reads:     none seen yet")
    store = status.get("store")
    if store:
        requests = ", ".join(f"{kind} {n}" for kind, n in sorted(store["requests"].items()))
        failed = sum(store["failed"].values())
        lines.append(f"  requests:  {requests or 'none'}"
                     + (f" ({failed} failed and retried or given up)" if failed else ""))
        lines.append(f"  bytes:     {_size(store['bytes_received'])} received, "
                     f"{_size(store['bytes_sent'])} sent")
    return "\n".join(lines)
