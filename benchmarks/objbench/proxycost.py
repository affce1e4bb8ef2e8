"""What the latency proxy itself costs, measured once per run: the same GETs straight to
the server, through the proxy with no delay, and (small ones) through the proxy with the
delay, in alternating order; medians."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import obstore

from objbench.config import KIB, MIB, Plan, S3Endpoint
from objbench.s3client import obstore_store

SMALL_GETS = 100
DIRECT, PROXIED, DELAYED = "direct", "through the proxy with 0 ms added", "with the delay"


@dataclass(frozen=True)
class ProxyCost:
    what: str
    direct: float  # median seconds
    proxied: float
    via: str  # which proxy
    requests: int  # requests per sample, for the cost of one

    def line(self) -> str:
        extra = self.proxied - self.direct
        each = f", {extra / self.requests * 1000:+.2f} ms per request" \
            if self.requests > 1 else ""
        return (f"{self.what}: {self.direct:.3f} s direct, {self.proxied:.3f} s {self.via} "
                f"({extra / self.direct:+.0%}{each})")


def get_big(store: Any, size: int) -> None:
    got = sum(len(c) for c in obstore.get(store, "big").stream(min_chunk_size=MIB))
    if got != size:
        raise RuntimeError(f"read {got} of {size} bytes")


def get_small(store: Any) -> None:
    for _ in range(SMALL_GETS):
        obstore.get(store, "small").bytes()


def measure(direct: S3Endpoint, proxied: S3Endpoint, delayed: S3Endpoint, bucket: str,
            plan: Plan, reps: int) -> list[ProxyCost]:
    """Put the objects (untimed), then ``reps`` rounds, each in another order."""
    stores = {name: obstore_store(s3, bucket)
              for name, s3 in ((DIRECT, direct), (PROXIED, proxied), (DELAYED, delayed))}
    obstore.put(stores[DIRECT], "big", Path(plan.local_big))
    obstore.put(stores[DIRECT], "small", b"s" * 4 * KIB)
    for store in stores.values():  # connections open before anything is timed
        obstore.get(store, "small").bytes()
    samples: dict[tuple[str, str], list[float]] = {}

    def sample(what: str, name: str) -> None:
        start = perf_counter()
        if what == "big":
            get_big(stores[name], plan.big_bytes)
        else:
            get_small(stores[name])
        samples.setdefault((what, name), []).append(perf_counter() - start)

    for rep in range(reps):
        names = (DIRECT, PROXIED, DELAYED)[::1 if rep % 2 == 0 else -1]
        for name in names:
            if name != DELAYED:
                sample("big", name)
            sample("small", name)

    def med(what: str, name: str) -> float:
        return statistics.median(samples[(what, name)])
    return [ProxyCost(f"GET of {plan.big_mib} MiB", med("big", DIRECT), med("big", PROXIED),
                      PROXIED, 1),
            ProxyCost(f"{SMALL_GETS} GETs of 4 KiB one at a time", med("small", DIRECT),
                      med("small", PROXIED), PROXIED, SMALL_GETS),
            ProxyCost(f"the same {SMALL_GETS} GETs", med("small", DIRECT),
                      med("small", DELAYED), DELAYED, SMALL_GETS)]
