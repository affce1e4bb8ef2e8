"""Where objmount keeps things, following the XDG base directory conventions."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, default: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / default


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "objmount"


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "objmount"


def log_dir() -> Path:
    path = state_dir() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runtime_dir() -> Path:
    """Per-user, private: pid files of mount daemons."""
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/objmount-{os.getuid()}"
    path = Path(base) / "objmount" if os.environ.get("XDG_RUNTIME_DIR") else Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path
