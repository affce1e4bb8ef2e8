"""The command line: help everywhere, and mount-time errors as one clear line."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, is_mounted, run_objmount

NO_AWS_FILES = {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@pytest.mark.parametrize("args", [["--help"], ["mount", "--help"], ["umount", "--help"],
                                  ["server", "--help"]])
def test_help(args: list[str]) -> None:
    result = run_objmount(*args, env={})
    assert result.returncode == 0
    assert "usage: objmount" in result.stdout


def test_version() -> None:
    result = run_objmount("--version", env={})
    assert result.returncode == 0 and result.stdout.startswith("objmount ")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


def test_bad_url_and_option(tmp_path: Path) -> None:
    assert_one_line_error(run_objmount("mount", "http://x", str(tmp_path), env=NO_AWS_FILES),
                          "s3://")
    assert_one_line_error(run_objmount("mount", "-o", "nosuchopt", "s3://b", str(tmp_path),
                                       env=NO_AWS_FILES), "nosuchopt")


@pytest.mark.fuse
def test_wrong_credentials(s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    env = {**s3_env, "AWS_SECRET_ACCESS_KEY": "wrong"}
    result = run_objmount("mount", f"s3://{bucket}", str(tmp_path), env=env)
    assert_one_line_error(result, "denied")
    assert not is_mounted(tmp_path)


@pytest.mark.fuse
def test_missing_bucket(s3_env: dict[str, str], tmp_path: Path) -> None:
    result = run_objmount("mount", "s3://no-such-bucket-here", str(tmp_path), env=s3_env)
    assert_one_line_error(result, "no-such-bucket-here")
    assert not is_mounted(tmp_path)


@pytest.mark.fuse
def test_server_down(s3_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**s3_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    result = run_objmount("mount", "s3://b", str(tmp_path), env=env, timeout=120)
    assert_one_line_error(result, f"127.0.0.1:{port}")
    assert not is_mounted(tmp_path)


def test_missing_mountpoint(s3_env: dict[str, str], tmp_path: Path) -> None:
    result = run_objmount("mount", "s3://b", str(tmp_path / "nope"), env=s3_env)
    assert_one_line_error(result, "does not exist")


@pytest.mark.fuse
def test_busy_mountpoint(mounted: Mount, bucket: str, s3_env: dict[str, str]) -> None:
    result = run_objmount("mount", f"s3://{bucket}", str(mounted.path), env=s3_env)
    assert_one_line_error(result, "busy")


def test_umount_not_mounted(tmp_path: Path) -> None:
    assert_one_line_error(run_objmount("umount", str(tmp_path), env={}), "not mounted")


def test_no_credentials(tmp_path: Path, monkeypatch: Any) -> None:
    env = {**NO_AWS_FILES, "AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "",
           "AWS_SECRET_ACCESS_KEY": ""}
    assert_one_line_error(run_objmount("mount", "s3://b", str(tmp_path), env=env),
                          "credentials")


@pytest.mark.fuse
@pytest.mark.parametrize("before", [True, False])
def test_logging_options_before_or_after_the_subcommand(
        before: bool, s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    """`objmount -v --log-file F mount ...` logs as `objmount mount -v --log-file F ...`."""
    log, mnt = tmp_path / "log.txt", tmp_path / "mnt"
    mnt.mkdir()
    options = ["-v", "--log-file", str(log)]
    args = [*options, "mount", f"s3://{bucket}", str(mnt)] if before else [
        "mount", *options, f"s3://{bucket}", str(mnt)]
    result = run_objmount(*args, env=s3_env)
    assert result.returncode == 0, result.stderr
    try:
        assert is_mounted(mnt)
        assert "object store:" in log.read_text()  # an INFO line: -v took effect
    finally:
        assert run_objmount("umount", str(mnt), env=s3_env).returncode == 0
    refused = run_objmount("--no-such-option", "mount", f"s3://{bucket}", str(mnt),
                           env=NO_AWS_FILES)
    assert refused.returncode == 2 and "unrecognized arguments: --no-such-option" in (
        refused.stderr)
