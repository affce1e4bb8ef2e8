"""Where an interception daemon keeps its socket, settings, shadow directories and cache.

One daemon serves one (user, endpoint, credentials): its id is a hash of them, so every
process of that user with the same store shares one daemon and one cache, and a
different key pair gets a daemon of its own. Everything lives in a private directory
(0700, owned by the user) under ``$XDG_RUNTIME_DIR/objmount`` or ``/tmp/objmount-UID``;
the socket in it is 0600, and the daemon checks each peer's uid besides.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from objmount import paths
from objmount.config import S3Config
from objmount.errors import ConfigError

_MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its NUL


def daemon_id(config: S3Config, uid: int | None = None) -> str:
    uid = os.getuid() if uid is None else uid
    ident = "\0".join([str(uid), config.endpoint or "aws", config.region, config.access_key,
                       config.secret_key, config.session_token or "", str(config.path_style)])
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def check_private_dir(path: Path) -> None:
    """Refuse a directory another user could have made or could enter."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{path} is not a directory")
    if st.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to uid {st.st_uid}, not to you: refusing to use it")
    if st.st_mode & 0o077:
        raise ConfigError(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}):"
                          " refusing to use it")


@dataclass(frozen=True)
class Layout:
    dir: Path
    cache: Path
    log: Path

    @property
    def socket(self) -> Path:
        return self.dir / "sock"

    @property
    def settings(self) -> Path:
        return self.dir / "settings.json"

    @property
    def restart(self) -> Path:
        """The command that starts the daemon, NUL-separated: the shim runs it when the
        daemon is gone."""
        return self.dir / "restart"

    @property
    def lock(self) -> Path:
        return self.dir / "lock"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def shadow(self) -> Path:
        return self.dir / "shadow"

    def prepare(self) -> None:
        check_private_dir(self.dir.parent)
        self.dir.mkdir(mode=0o700, exist_ok=True)
        check_private_dir(self.dir)
        if len(os.fsencode(self.socket)) > _MAX_SOCKET_PATH:
            raise ConfigError(f"the socket path {self.socket} is longer than a Unix socket "
                              "allows: set XDG_RUNTIME_DIR to a shorter directory")
        self.shadow.mkdir(mode=0o700, exist_ok=True)
        self.cache.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_private(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)


def layout_for(ident: str) -> Layout:
    return Layout(dir=paths.runtime_dir() / f"intercept-{ident}",
                  cache=paths.cache_dir() / f"intercept-{ident}",
                  log=paths.log_dir() / f"intercept-{ident}.log")


@dataclass(frozen=True)
class DaemonSettings:
    """What the daemon is started with; written 0600 into its private directory, so
    the credentials never travel on a command line or through the environment."""

    config: dict[str, Any]
    cache_dir: str
    log_file: str
    attr_ttl: float = 1.0
    negative_ttl: float = 1.0
    idle_timeout: float = 30.0
    part_size: int = 8 << 20
    block_size: int = 1 << 20
    cache_size: int = 2 << 30
    stall_timeout: float = 2.0
    verbose: int = 0  # 2: log every request

    def s3_config(self) -> S3Config:
        return S3Config(**self.config)

    def dumps(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def loads(cls, data: bytes) -> DaemonSettings:
        return cls(**json.loads(data))
