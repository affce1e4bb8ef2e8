"""The one retry policy, and engine behaviour when the store fails part way."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from objmount.core.engine import Engine, EngineOptions, MountRoot
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Defaults
from objmount.errors import (
    AccessDenied,
    FsError,
    StoreUnavailable,
    TransientStoreError,
    to_errno,
)
from objmount.store.faults import FaultyStore
from objmount.store.memory import MemoryAccount, MemoryStore
from objmount.store.retry import RetryPolicy

FAST = RetryPolicy(attempts=4, base_delay=0.0, max_delay=0.0)


def test_transient_errors_are_retried_then_succeed() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TransientStoreError("503 SlowDown")
        return "ok"

    assert FAST.call("op", flaky) == "ok"
    assert len(attempts) == 3


def test_retries_are_bounded() -> None:
    attempts: list[int] = []

    def down() -> None:
        attempts.append(1)
        raise TransientStoreError("connection refused")

    with pytest.raises(StoreUnavailable) as info:
        FAST.call("op", down)
    assert len(attempts) == 4
    assert to_errno(info.value) == errno.EIO


def test_permanent_errors_are_not_retried() -> None:
    attempts: list[int] = []

    def denied() -> None:
        attempts.append(1)
        raise AccessDenied("403")

    with pytest.raises(AccessDenied):
        FAST.call("op", denied)
    assert attempts == [1]
    assert to_errno(AccessDenied("x")) == errno.EACCES


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for attempt in range(10):
        assert 0 <= policy.delay(attempt) <= min(1.0, 0.1 * 2**attempt)


class _Account(MemoryAccount):
    def __init__(self, store: FaultyStore) -> None:
        super().__init__()
        self.faulty = store

    def bucket(self, name: str) -> FaultyStore:  # type: ignore[override]
        return self.faulty


def test_directory_rename_failing_half_way_loses_nothing(tmp_path: Path) -> None:
    inner = MemoryStore("b")
    for i in range(6):
        inner.put(f"d/f{i}", f"data{i}".encode(), {})
    copies: list[str] = []

    def fail_fourth_copy(op: str, key: str) -> Exception | None:
        if op == "copy":
            copies.append(key)
            if len(copies) == 4:
                return StoreUnavailable("server went away")
        return None

    store = FaultyStore(inner, fail_fourth_copy)
    engine = Engine(_Account(store), MountRoot("b"),
                    EngineOptions(Defaults(0, 0), tmp_path, attr_ttl=0.0, negative_ttl=0.0))
    with pytest.raises(StoreUnavailable):
        engine.rename(ROOT_INO, b"d", ROOT_INO, b"e")
    # Copies first, deletes after: every byte is still under the old name.
    for i in range(6):
        assert inner.get(f"d/f{i}") == f"data{i}".encode()


def test_upload_failure_then_success_on_next_close(tmp_path: Path) -> None:
    inner = MemoryStore("b")
    failures = [StoreUnavailable("down")]
    store = FaultyStore(inner, lambda op, key: failures.pop() if op == "upload" and failures
                        else None)
    engine = Engine(_Account(store), MountRoot("b"),
                    EngineOptions(Defaults(0, 0), tmp_path, attr_ttl=0.0, negative_ttl=0.0))
    fh, _ = engine.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, 0, 0)
    engine.write(fh, 0, b"payload")
    with pytest.raises(StoreUnavailable):
        engine.flush(fh)  # first close(): EIO, the data stays dirty
    engine.flush(fh)  # a later close() of a dup or fsync() stores it
    engine.release(fh)
    assert inner.get("f") == b"payload"
    with pytest.raises(FsError):
        engine.rmdir(ROOT_INO, b"f")
