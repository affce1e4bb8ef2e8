"""The one retry policy: exponential backoff with full jitter, on transient failures only."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from objmount.errors import StoreUnavailable, TransientStoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        # Full jitter (AWS architecture blog): spreads retries of many clients apart.
        return random.uniform(0, min(self.max_delay, self.base_delay * (2**attempt)))

    def call(self, what: str, fn: Callable[[], T]) -> T:
        return self.call_counting(what, lambda _attempt: fn())

    def call_counting(self, what: str, fn: Callable[[int], T]) -> T:
        """:meth:`call`, telling ``fn`` which attempt it is (0 first)."""
        for attempt in range(self.attempts):
            try:
                return fn(attempt)
            except TransientStoreError as exc:
                if attempt + 1 == self.attempts:
                    raise StoreUnavailable(f"{what}: {exc}") from exc
                pause = self.delay(attempt)
                # Quiet at first; louder once it looks like more than a blip.
                level = logging.DEBUG if attempt < 2 else logging.WARNING
                log.log(level, "%s failed (%s), retry %d in %.2fs", what, exc, attempt + 1, pause)
                time.sleep(pause)
        raise AssertionError("unreachable")
