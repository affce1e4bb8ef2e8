"""What one benchmark run does (sizes, local source data) and where the store is."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

MIB = 1 << 20
KIB = 1 << 10


@dataclass(frozen=True)
class S3Endpoint:
    """One S3 endpoint and its credentials, as every tool and client is given them."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    metrics_url: str = ""  # the server's request counters; "" if it has none

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
        }

    def via(self, endpoint: str) -> S3Endpoint:
        """The same store reached through another address (the latency proxy)."""
        return replace(self, endpoint=endpoint)


@dataclass(frozen=True)
class Plan:
    """Sizes of the workloads and the local files they copy from."""

    big_mib: int = 1024
    n_small: int = 1000
    small_kib: int = 4
    tree_files: int = 100
    reps: int = 3
    random_reads: int = 2000
    fan_dirs: int = 10  # the find/du tree: fan_dirs directories of fan_files files
    fan_files: int = 100
    ls_sizes: tuple[int, ...] = (1000, 10_000, 100_000)
    local_big: str = ""
    local_tree: str = ""
    visible_timeout: float = 300.0

    @property
    def big_bytes(self) -> int:
        return self.big_mib * MIB

    @property
    def small_bytes(self) -> int:
        return self.small_kib * KIB

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        return cls(**{**data, "ls_sizes": tuple(data["ls_sizes"])})


@dataclass(frozen=True)
class Job:
    """One repetition of one workload for one tool, as handed to the child process that
    times it. ``check`` is the server itself: the benchmark's own polling and counting
    never go through the latency proxy."""

    workload: str
    bucket: str
    s3: S3Endpoint
    plan: Plan
    root: str | None  # the mountpoint; None for the raw client
    rep: int = 0
    check: S3Endpoint | None = field(default=None)

    @property
    def server(self) -> S3Endpoint:
        return self.check or self.s3

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "bucket": self.bucket, "s3": asdict(self.s3),
                "plan": self.plan.to_json(), "root": self.root, "rep": self.rep,
                "check": None if self.check is None else asdict(self.check)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        check = data.get("check")
        return cls(workload=data["workload"], bucket=data["bucket"],
                   s3=S3Endpoint(**data["s3"]), plan=Plan.from_json(data["plan"]),
                   root=data["root"], rep=int(data.get("rep", 0)),
                   check=None if check is None else S3Endpoint(**check))
