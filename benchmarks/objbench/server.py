"""The store under test: one SeaweedFS server from objmount's embedded-server module."""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from objbench.config import S3Endpoint

MODULE = "objmount.server"


def load_server_module(wait: float, interval: float = 30.0) -> ModuleType:
    """Import objmount.server, waiting up to ``wait`` seconds for it to exist and work."""
    deadline = time.monotonic() + wait
    while True:
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(MODULE)
            if callable(getattr(module, "start_server", None)) and callable(
                    getattr(module, "stop_server", None)):
                return module
            problem = "start_server/stop_server missing"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        sys.modules.pop(MODULE, None)
        if time.monotonic() + interval > deadline:
            raise RuntimeError(f"{MODULE} is not usable: {problem}")
        print(f"waiting for {MODULE} ({problem}); retry in {interval:.0f} s", file=sys.stderr)
        time.sleep(interval)


@contextmanager
def embedded_server(data_dir: Path, buckets: list[str], wait: float,
                    access_key: str = "benchkey", secret_key: str = "benchsecret"
                    ) -> Iterator[tuple[S3Endpoint, int]]:
    """Start the server with ``buckets``; yields its endpoint and PID; stops it by PID."""
    module = load_server_module(wait)
    info = module.start_server(data_dir, buckets, access_key, secret_key, timeout=120)
    try:
        port = getattr(info, "metrics_port", None)
        metrics = f"http://127.0.0.1:{port}/metrics" if port else ""
        yield (S3Endpoint(info.endpoint, info.access_key, info.secret_key,
                          metrics_url=metrics), int(info.pid))
    finally:
        module.stop_server(info.pid)
