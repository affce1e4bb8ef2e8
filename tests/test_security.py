"""What objmount exposes: cache files only to the daemon's user, credentials nowhere
(not in logs, command lines or the environment of the programs it runs)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from intercept import Intercept, dirs_env, private_dirs, stop_daemons

pytestmark = pytest.mark.s3


def test_cache_files_and_directories_are_private(mount_factory: Callable[..., Mount],
                                                 bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="data", Body=os.urandom(3 << 20))
    m = mount_factory(f"s3://{bucket}", options="cache_size=64M")
    m.mount()
    with open(m.path / "data", "rb") as reading, open(m.path / "new", "wb") as writing:
        reading.read()
        writing.write(b"secret bytes")
        writing.flush()
        seen = list((m.workdir / "cache").rglob("*"))
        assert any(p.is_file() for p in seen), "no cache file while files are open"
        for path in [m.workdir / "cache", *seen]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o077 == 0, f"{path} is mode {oct(mode)}"


def test_credentials_are_in_no_log_and_no_command_line(
        mount_factory: Callable[..., Mount], bucket: str, s3_env: dict[str, str]) -> None:
    m = mount_factory(f"s3://{bucket}", args=("-v",))  # with the fixture's -v: -vv
    m.mount()
    (m.path / "f").write_bytes(b"x")
    assert (m.path / "f").read_bytes() == b"x"
    secret, key_id = s3_env["AWS_SECRET_ACCESS_KEY"], s3_env["AWS_ACCESS_KEY_ID"]
    assert m.pid is not None
    cmdline = Path(f"/proc/{m.pid}/cmdline").read_bytes().decode(errors="replace")
    log = m.read_log()
    assert "PUT f" in log, "at -vv the log has every request"
    for text in (cmdline, log):
        assert secret not in text
        assert key_id not in text


def test_programs_run_under_interception_get_the_user_s_environment_unchanged(
        s3_env: dict[str, str], bucket: str, tmp_path: Path) -> None:
    """Credentials given in a credentials file stay there: the programs objmount runs get
    no AWS_* variable the user did not set."""
    secret = s3_env["AWS_SECRET_ACCESS_KEY"]
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = {s3_env['AWS_ACCESS_KEY_ID']}\n"
                     f"aws_secret_access_key = {secret}\n")
    env = {k: v for k, v in s3_env.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    base = private_dirs()
    env.update(dirs_env(base))
    try:
        om = Intercept(env, bucket)
        before = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        out = om.run("sh", "-c", f"echo hi > {om.path}/f && cat {om.path}/f && env",
                     extra_env=before).stdout
        assert out.startswith("hi\n")
        seen = dict(line.split("=", 1) for line in out.splitlines()[1:] if "=" in line)
        assert secret not in out
        added = {k for k in seen if k.startswith("AWS_")} - set(env)
        assert added == set(), f"objmount added {added} to the program's environment"
        assert seen["AWS_SHARED_CREDENTIALS_FILE"] == str(creds)
        for log in (base / "state").rglob("*.log"):
            assert secret not in log.read_text(errors="replace"), log
    finally:
        stop_daemons(env)
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    """A command run as another local user (uid/gid 65534)."""
    def drop() -> None:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    return subprocess.run(list(cmd), preexec_fn=drop, capture_output=True, text=True,
                          timeout=60, check=False)


def test_allow_other_enforces_posix_permissions_for_another_user(
        mount_factory: Callable[..., Mount], bucket: str) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to run a command as another user")
    where = Path(tempfile.mkdtemp(prefix="om-other-", dir="/tmp"))
    where.chmod(0o755)  # the other user must be able to reach the mount point
    m = mount_factory(f"s3://{bucket}", path=where / "mnt", options="allow_other")
    try:
        m.mount()
        (m.path / "private").write_text("root only\n")
        (m.path / "private").chmod(0o600)
        (m.path / "public").write_text("everyone\n")
        (m.path / "public").chmod(0o644)
        (m.path / "closed").mkdir(mode=0o700)
        assert as_nobody("cat", str(m.path / "public")).stdout == "everyone\n"
        denied = as_nobody("cat", str(m.path / "private"))
        assert denied.returncode != 0 and "Permission denied" in denied.stderr
        for cmd in (["touch", str(m.path / "new")], ["ls", str(m.path / "closed")],
                    ["rm", "-f", str(m.path / "public")],
                    ["sh", "-c", f"echo x >> {m.path / 'public'}"]):
            result = as_nobody(*cmd)
            assert result.returncode != 0 and "Permission denied" in result.stderr, cmd
        assert (m.path / "public").read_text() == "everyone\n"
        assert not (m.path / "new").exists()
    finally:
        m.cleanup()  # unmounted before the directory goes: never rmtree through a mount
        shutil.rmtree(where, ignore_errors=True)
