"""Run a test module against both S3 implementations: import these fixtures into it
(``from both_stores import bucket, s3_client, s3_server``) and every test that uses them
runs twice, on SeaweedFS (the embedded default) and on moto's S3 server. They override
the session's SeaweedFS-only fixtures of the same names within that module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from s3fixtures import _delete_bucket

from objmount.server import ServerInfo, botocore_client

__all__ = ["bucket", "implementation", "s3_client", "s3_server"]


@pytest.fixture(params=["seaweedfs", "moto"])
def implementation(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def s3_server(implementation: str, request: pytest.FixtureRequest) -> ServerInfo:
    # By name, so that only the implementation asked for is started.
    info: ServerInfo = request.getfixturevalue(f"{implementation}_server")
    return info


@pytest.fixture
def s3_client(s3_server: ServerInfo) -> Any:
    return botocore_client(s3_server.endpoint, s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    name = f"t-{secrets.token_hex(6)}"
    s3_client.create_bucket(Bucket=name)
    yield name
    _delete_bucket(s3_client, name)
