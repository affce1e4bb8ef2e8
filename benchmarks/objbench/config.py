"""What one benchmark run does (sizes, local source data) and where the store is."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class Plan:
    """Sizes of the workloads and the local files they copy from."""

    big_mib: int = 256
    n_small: int = 300
    small_kib: int = 4
    tree_files: int = 100
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


@dataclass(frozen=True)
class Job:
    """One workload for one tool, as handed to the child process that times it."""

    workload: str
    bucket: str
    s3: S3Endpoint
    plan: Plan
    root: str | None  # the mountpoint; None for the raw client

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "bucket": self.bucket, "s3": asdict(self.s3),
                "plan": self.plan.to_json(), "root": self.root}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        return cls(workload=data["workload"], bucket=data["bucket"],
                   s3=S3Endpoint(**data["s3"]), plan=Plan(**data["plan"]), root=data["root"])
