"""The interception daemon and the commands around it: who may talk to it, what happens
when it dies, when it leaves, which programs it refuses to run on object paths, and what
``objmount run`` reports."""

from __future__ import annotations

import errno
import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from intercept import OBJMOUNT, ROOT, Intercept, dirs_env, private_dirs, stop_daemons

from objmount.frontends.intercept import protocol as p
from objmount.frontends.intercept.client import DaemonClient
from objmount.server import start_server, stop_server

pytestmark = [pytest.mark.s3]

NOBODY = 65534
SHIM = Path(__file__).resolve().parent.parent / "src" / "objmount" / "libobjmount.so"


def daemon_dirs(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["XDG_RUNTIME_DIR"]) / "objmount").glob("intercept-*"))


def daemon_pid(env: dict[str, str]) -> int:
    return int((daemon_dirs(env)[0] / "pid").read_text())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and \
        Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


@pytest.fixture
def nobody_env(s3_env: dict[str, str]) -> Any:
    """Private runtime, cache and state directories owned by uid 65534."""
    base = private_dirs("omn-")
    for path in [base, *base.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    env = {**s3_env, **dirs_env(base), "HOME": str(base)}
    yield env
    run_as_nobody(env, *OBJMOUNT, "daemon", "stop")
    shutil.rmtree(base, ignore_errors=True)


def nobody_python() -> tuple[list[str], dict[str, str]]:
    """An interpreter uid 65534 may run (a venv may link into root's home), with this
    checkout's packages: the system python3 of the same version."""
    system = Path("/usr/bin/python3")
    version = subprocess.run([str(system), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip() \
        if system.exists() else ""
    if version != str(sys.version_info[:2]):
        pytest.skip(f"no system python3 {sys.version_info[:2]} for a second user to run")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    src = str(Path(__file__).resolve().parent.parent / "src")
    return [str(system)], {"PYTHONPATH": f"{src}:{site}"}


def run_as_nobody(env: dict[str, str], *cmd: str, timeout: float = 120
                  ) -> subprocess.CompletedProcess[str]:
    python, extra = nobody_python()
    argv = [*python, *cmd[1:]] if cmd and cmd[0] == sys.executable else list(cmd)
    return subprocess.run(argv, env={**os.environ, **env, **extra}, user=NOBODY,
                          group=NOBODY, extra_groups=[], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


# -- who can reach the daemon -----------------------------------------------------------------
def test_socket_and_settings_are_private(om: Intercept) -> None:
    om.run("true")
    (directory,) = daemon_dirs(om.env)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "sock").stat().st_mode) == 0o600
    assert stat.S_IMODE((directory / "settings.json").stat().st_mode) == 0o600
    # A second user cannot even reach the socket.
    probe = ("import socket, sys\ns = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n    print('denied')\n")
    out = run_as_nobody({}, sys.executable, "-c", probe, str(directory / "sock")).stdout
    assert out.strip() == "denied"


def test_daemon_refuses_a_peer_with_another_uid(nobody_env: dict[str, str],
                                                s3_client: Any, bucket: str) -> None:
    """Root passes the file permissions; the daemon checks SO_PEERCRED and hangs up."""
    res = run_as_nobody(nobody_env, *OBJMOUNT, "run", "--",
                        "sh", "-c", f"echo hello > {ROOT}/s3/{bucket}/by-nobody")
    assert res.returncode == 0, res.stderr
    head = s3_client.head_object(Bucket=bucket, Key="by-nobody")
    assert head["Metadata"]["uid"] == str(NOBODY)
    (directory,) = daemon_dirs(nobody_env)
    assert directory.stat().st_uid == NOBODY
    client = DaemonClient(directory / "sock", b"intruder")
    with pytest.raises((ConnectionResetError, ConnectionRefusedError, BrokenPipeError,
                        OSError)):
        client.connect(timeout=10)


def test_a_hard_link_to_another_users_file_follows_protected_hardlinks(
        nobody_env: dict[str, str], s3_client: Any, bucket: str) -> None:
    """As fs.protected_hardlinks on a disk: a file owned by someone else is linked only
    if it is a regular file the caller may read and write."""
    for key, mode in (("theirs-ro", 0o100644), ("theirs-rw", 0o100666)):
        s3_client.put_object(Bucket=bucket, Key=key, Body=b"x",
                             Metadata={"uid": "0", "gid": "0", "mode": str(mode)})
    d = f"{ROOT}/s3/{bucket}"
    res = run_as_nobody(nobody_env, *OBJMOUNT, "run", "--", "sh", "-c",
                        f"ln {d}/theirs-ro {d}/l1 2>&1; ln {d}/theirs-rw {d}/l2 && "
                        f"stat -c '%h %u' {d}/l2")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "Operation not permitted" in lines[0]
    assert lines[1:] == ["2 0"]


def test_non_root_user_without_fuse(nobody_env: dict[str, str], bucket: str,
                                    tmp_path: Path) -> None:
    """Interception needs neither root nor /dev/fuse: here /dev/fuse is replaced by an
    unusable file in a private mount namespace, and the user is uid 65534."""
    blocker = tmp_path / "no-fuse"
    blocker.write_text("")
    os.chmod(blocker, 0)
    python, extra = nobody_python()
    env_args = [f"{k}={v}" for k, v in
                {**nobody_env, **extra, "PATH": os.environ["PATH"]}.items()]
    script = (f"mount --bind {blocker} /dev/fuse && exec setpriv --reuid {NOBODY} "
              f"--regid {NOBODY} --clear-groups env {' '.join(env_args)} "
              f"{' '.join(python)} -m objmount run -- sh -c '"
              "test -r /dev/fuse || echo no-fuse; "
              f"mkdir {ROOT}/s3/{bucket}/d && echo data > {ROOT}/s3/{bucket}/d/f && "
              f"cat {ROOT}/s3/{bucket}/d/f && ls -l {ROOT}/s3/{bucket}/d | tail -1'")
    res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[:2] == ["no-fuse", "data"]
    assert lines[2].split()[2:4] == ["nobody", "nogroup"]


# -- versions -----------------------------------------------------------------------------------
def test_a_different_version_is_refused_clearly(om: Intercept, tmp_path: Path) -> None:
    om.run("true")
    (directory,) = daemon_dirs(om.env)
    client = DaemonClient(directory / "sock", b"s")
    client.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    client.sock.connect(str(directory / "sock"))
    reply = client.call(p.Op.HELLO, p.PROTOCOL_VERSION, b"0.0.0-old", b"s", b"/objmount")
    client.close()
    assert reply.status == errno.EPROTO
    assert b"0.0.0-old" in reply.args[1] and b"objmount daemon stop" in reply.args[1]
    # A shim of another version says so on stderr and the call fails.
    old = tmp_path / "libold.so"
    sources = sorted(str(s) for s in (SHIM.parent.parent.parent / "shim").glob("*.c"))
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-D_GNU_SOURCE",
                    '-DOBJMOUNT_VERSION="0.0.0-old"', "-o", str(old), *sources, "-ldl",
                    "-pthread"], check=True)
    res = subprocess.run(["cat", f"{om.path}/x"], capture_output=True, text=True,
                         env={**os.environ, "LD_PRELOAD": str(old),
                              "OBJMOUNT_SOCKET": str(directory / "sock")})
    assert res.returncode != 0
    assert "objmount 0.0.0-old" in res.stderr and "differ" in res.stderr
    assert "Protocol error" in res.stderr


# -- a daemon that dies or leaves ---------------------------------------------------------------
def test_killed_daemon_gives_eio_and_stores_nothing(om: Intercept, s3_client: Any) -> None:
    """Bytes written into the dead daemon's cache are never silently dropped or half
    stored: close() says EIO; the next call starts a new daemon."""
    script = f"""
import os, signal, sys
fd = os.open("{om.path}/doomed", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"x" * 100000)
old = int(open(sys.argv[1]).read())
os.kill(old, signal.SIGKILL)
def state():
    return open(f"/proc/{{old}}/stat").read().split(") ")[1][0]
while os.path.exists(f"/proc/{{old}}") and state() != "Z":
    pass
try:
    os.close(fd)
    print("closed")
except OSError as exc:
    print("close:", exc.errno)
open("{om.path}/after", "w").write("new daemon")
print(open("{om.path}/after").read())
"""
    om.run("true")
    pid_file = daemon_dirs(om.env)[0] / "pid"
    res = om.run(sys.executable, "-c", script, pid_file, check=False)
    assert res.stdout.splitlines() == [f"close: {errno.EIO}", "new daemon"], (
        res.stderr + om.log_tail(40))
    assert res.returncode == 1
    assert "daemon died during the run" in res.stderr
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=om.bucket).get("Contents", [])]
    assert keys == ["after"]
    assert alive(daemon_pid(om.env))


FILL_THE_DISK = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
try:
    while True:
        os.write(fd, b"x" * 65536)
except OSError as exc:
    print("write:", exc.errno, flush=True)
if sys.argv[2] == "exit":
    os._exit(0)
try:
    os.close(fd)
    print("closed")
except OSError as exc:
    print("close:", exc.errno)
"""


@pytest.mark.parametrize("ending", ["close", "exit"])
def test_full_cache_disk_is_enospc_and_keeps_the_object(s3_env: dict[str, str], bucket: str,
                                                        s3_client: Any, ending: str) -> None:
    """A write that could not reach the cache file means the file is not what the program
    meant: close() says ENOSPC (or, after an exit, objmount run does) and the object stays
    as it was."""
    base = private_dirs()
    env = {**s3_env, **dirs_env(base)}
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                    str(base / "cache")], check=True)
    try:
        s3_client.put_object(Bucket=bucket, Key="f", Body=b"old content")
        res = subprocess.run([*OBJMOUNT, "run", "--", sys.executable, "-c", FILL_THE_DISK,
                              f"{ROOT}/s3/{bucket}/f", ending], env={**os.environ, **env},
                             capture_output=True, text=True, timeout=120)
        if ending == "close":
            assert res.stdout.splitlines() == [f"write: {errno.ENOSPC}",
                                               f"close: {errno.ENOSPC}"], res.stderr
        else:
            assert res.stdout.splitlines() == [f"write: {errno.ENOSPC}"], res.stderr
            assert res.returncode == 1
            assert "f: upload failed (No space left on device)" in res.stderr
        body = s3_client.get_object(Bucket=bucket, Key="f")["Body"].read()
        assert body == b"old content"
    finally:
        stop_daemons(env)
        subprocess.run(["umount", str(base / "cache")], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_idle_daemon_exits(s3_env: dict[str, str], bucket: str) -> None:
    base = private_dirs()
    env = {**s3_env, **dirs_env(base)}
    try:
        res = subprocess.run([*OBJMOUNT, "run", "--idle-timeout", "1", "--", "ls",
                              f"{ROOT}/s3/{bucket}"], env={**os.environ, **env},
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        pid = daemon_pid(env)
        deadline = time.monotonic() + 20
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(pid)
        assert not (daemon_dirs(env)[0] / "sock").exists()
    finally:
        stop_daemons(env)
        shutil.rmtree(base, ignore_errors=True)


# -- programs the shim cannot reach ---------------------------------------------------------------
@pytest.fixture(scope="module")
def unreachable(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("unreachable")
    src = d / "prog.c"
    src.write_text("#include <stdio.h>\nint main(int c, char **v) "
                   "{ FILE *f = c > 1 ? fopen(v[1], \"r\") : 0; printf(\"%d\\n\", !!f); "
                   "return 0; }\n")
    progs = {"static": d / "static", "go": d / "go", "setuid": d / "setuid",
             "dynamic": d / "dynamic"}
    subprocess.run(["gcc", "-static", "-o", str(progs["static"]), str(src)], check=True)
    subprocess.run(["gcc", "-o", str(progs["dynamic"]), str(src)], check=True)
    # A dynamically linked program carrying Go's build information, as cgo programs do.
    info = d / "buildinfo"
    info.write_bytes(b"\xff Go buildinf:" + b"\0" * 18)
    subprocess.run(["objcopy", "--add-section", f".go.buildinfo={info}",
                    str(progs["dynamic"]), str(progs["go"])], check=True)
    shutil.copy(progs["dynamic"], progs["setuid"])
    os.chown(progs["setuid"], NOBODY, NOBODY)
    os.chmod(progs["setuid"], 0o4755)
    return progs


@pytest.mark.parametrize("kind,why", [("static", "statically linked"), ("go", "Go program"),
                                      ("setuid", "setuid")])
def test_unreachable_programs_are_refused_in_one_line(om: Intercept, kind: str, why: str,
                                                      unreachable: dict[str, Path]) -> None:
    prog = unreachable[kind]
    direct = om.run(prog, f"{om.path}/x", check=False)
    assert direct.returncode == 126
    assert why in direct.stderr and len(direct.stderr.strip().splitlines()) == 1
    # From a shell (the shim's exec): refused too, and the shell says it could not run it.
    shell = om.sh(f"{prog} {om.path}/x", check=False)
    assert shell.returncode == 126, shell.stderr
    assert why in shell.stderr
    # Local paths, outside any object directory: such programs run as usual.
    assert om.run(prog, "/etc/hostname").stdout == "1\n"
    # OBJMOUNT_DISABLE=1 runs it anyway, without the shim.
    forced = om.sh(f"OBJMOUNT_DISABLE=1 {prog} {om.path}/x")
    assert forced.stdout == "0\n"
    assert om.run(unreachable["dynamic"], f"{om.path}").stdout == "1\n"


def test_a_program_replaced_after_its_check_is_checked_again(
        om: Intercept, unreachable: dict[str, Path], tmp_path: Path) -> None:
    """The shim reuses the daemon's "reachable" verdict for a local program only while
    the program is unchanged: one replaced by a static binary is refused."""
    prog = tmp_path / "prog"
    shutil.copy(unreachable["dynamic"], prog)
    script = f"{prog} {om.path}/x && {prog} {om.path}/x && cp {unreachable['static']} {prog} " \
             f"&& {prog} {om.path}/x"
    res = om.sh(script, check=False)
    assert res.stdout.splitlines() == ["0", "0"]
    assert res.returncode == 126 and "statically linked" in res.stderr


def test_disable_runs_one_command_without_the_shim(om: Intercept) -> None:
    out = om.sh(f"mkdir {om.path}/d && OBJMOUNT_DISABLE=1 sh -c "
                f"'ls {om.path} 2>/dev/null || echo unreachable; echo \"$LD_PRELOAD\"'; "
                f"ls {om.path}").stdout.splitlines()
    assert out[0] == "unreachable"
    assert "libobjmount" not in out[1]
    assert out[2] == "d"


# -- what objmount run reports -------------------------------------------------------------------
def test_run_returns_the_exit_status(om: Intercept) -> None:
    assert om.run("sh", "-c", "exit 7", check=False).returncode == 7
    missing = om.run("no-such-command-xyz", check=False)
    assert missing.returncode == 127 and "command not found" in missing.stderr


def test_upload_failing_after_exit_is_reported(tmp_path: Path) -> None:
    """A program exits without closing (the upload happens after it), and the store is
    gone by then: objmount run says which file was not stored and exits non-zero; the
    bytes are kept locally."""
    info = start_server(tmp_path / "server", ["doomed"], access_key="k-" + os.urandom(4).hex(),
                        secret_key=os.urandom(16).hex())
    base = private_dirs()
    env = {**dirs_env(base), **info.env(), "AWS_CONFIG_FILE": "/nonexistent",
           "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    try:
        # (bash's own `echo >&3` would restore its stdout with dup2: a close, which stores)
        script = (f"exec 3>{ROOT}/s3/doomed/lost.txt; "
                  f"{sys.executable} -c 'import os; os.write(3, b\"precious\\n\")'; "
                  f"kill -9 {info.pid}")
        res = subprocess.run([*OBJMOUNT, "run", "--", "bash", "-c", script],
                             env={**os.environ, **env}, capture_output=True, text=True,
                             timeout=180)
        assert res.returncode == 1, res.stderr
        assert "/s3/doomed/lost.txt: upload failed" in res.stderr
        kept = list((base / "cache").glob("objmount/intercept-*/unsaved/*lost.txt"))
        assert [k.read_bytes() for k in kept] == [b"precious\n"]
    finally:
        stop_daemons(env)
        stop_server(info.pid)
        shutil.rmtree(base, ignore_errors=True)


def test_stat_never_shows_what_another_process_replaced(om: Intercept) -> None:
    """The shared attribute table answers stat without asking the daemon; it never shows
    a process anything older than what another process has already closed."""
    out = om.sh(f"cd {om.path} && for i in $(seq 1 40); do head -c $i /dev/zero > f; "
                "stat -c %s f; done; rm f; { stat f 2>&1 || true; } | grep -c 'No such'").stdout
    assert out.split() == [str(i) for i in range(1, 41)] + ["1"]


def test_shell_shows_a_prompt_marker_and_works(om: Intercept, tmp_path: Path) -> None:
    rc = tmp_path / "home"
    rc.mkdir()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({**om.env, "SHELL": "/bin/bash", "HOME": str(rc)})
        os.execv(sys.executable, [sys.executable, "-m", "objmount", "shell"])
    out = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while marker not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    try:
        read_until(b"(objmount) ")
        os.write(fd, f"cd {om.path} && echo in-shell > f && cat f && pwd\n".encode())
        read_until(b"\r\n" + om.path.encode() + b"\r\n")
        os.write(fd, b"exit 3\n")
        _, status = os.waitpid(pid, 0)
    finally:
        with __import__("contextlib").suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.close(fd)
    text = out.decode(errors="replace")
    assert "(objmount) " in text
    assert "in-shell" in text and om.path in text
    assert os.waitstatus_to_exitcode(status) == 3
