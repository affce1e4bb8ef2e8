"""Every claim in doc/SEMANTICS.md names a test; this keeps the names true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_named_test_exists() -> None:
    doc = (ROOT / "doc" / "SEMANTICS.md").read_text()
    refs = set(re.findall(r"`(test_\w+\.py)(?:::(test_\w+))?`", doc))
    assert len(refs) > 20
    for module, func in refs:
        path = ROOT / "tests" / module
        assert path.exists(), f"SEMANTICS.md names {module}, which does not exist"
        if func:
            assert re.search(rf"^\s*def {func}\(", path.read_text(), re.M), (
                f"SEMANTICS.md names {module}::{func}, which does not exist")
