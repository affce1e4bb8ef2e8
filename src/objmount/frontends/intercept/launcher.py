"""``objmount run`` and ``objmount shell``: find or start the daemon for these
credentials, then run programs with the shim preloaded.

The programs get the user's own environment plus four variables (LD_PRELOAD and
OBJMOUNT_SOCKET/SESSION/ROOT); the credentials stay in the daemon's private settings
file. When the program exits, its session waits for the uploads its closes started (a
program that exits without closing, or a redirection an exec'd child inherited, is
stored after the exit) and reports any that failed.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import objmount
from objmount.config import S3Config
from objmount.errors import ConfigError
from objmount.frontends.intercept import protocol as p
from objmount.frontends.intercept.client import DaemonClient
from objmount.frontends.intercept.execcheck import unreachable_reason
from objmount.frontends.intercept.layout import DaemonSettings, Layout, daemon_id, layout_for

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/objmount"
PROMPT_MARKER = "(objmount) "


def shim_path() -> Path:
    path = Path(objmount.__file__).resolve().parent / "libobjmount.so"
    if not path.exists():
        raise ConfigError(f"the interception library {path} is missing: reinstall objmount "
                          "(pip install .), which builds it")
    return path


def daemon_command(layout: Layout) -> list[str]:
    """How to start the daemon, also from a shim whose program changed its environment:
    the interpreter, and where it finds objmount when that is not installed with it."""
    command = [sys.executable, "-m", "objmount", "daemon", "serve", "--dir", str(layout.dir)]
    if os.environ.get("PYTHONPATH"):
        command = ["/usr/bin/env", f"PYTHONPATH={os.environ['PYTHONPATH']}", *command]
    return command


def _daemon_env() -> dict[str, str]:
    """The daemon never runs under its own shim, whoever starts it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OBJMOUNT_") and k != "LD_PRELOAD"}
    env["OBJMOUNT_DISABLE"] = "1"
    return env


def prepare_daemon(config: S3Config, settings_extra: dict[str, float | int]) -> Layout:
    layout = layout_for(daemon_id(config))
    layout.prepare()
    settings = DaemonSettings(config=config.__dict__.copy(), cache_dir=str(layout.cache),
                              log_file=str(layout.log), **settings_extra)  # type: ignore[arg-type]
    layout.write_private(layout.settings, settings.dumps())
    layout.write_private(layout.restart, b"\0".join(os.fsencode(a)
                                                      for a in daemon_command(layout)))
    return layout


def connect(layout: Layout, session: bytes, root: str, *, timeout: float = 60.0
            ) -> DaemonClient:
    """A connection to the daemon, started first if it is not running."""
    client = DaemonClient(layout.socket, session, os.fsencode(root))
    try:
        client.connect()
        return client
    except (FileNotFoundError, ConnectionRefusedError):
        pass
    result = subprocess.run(daemon_command(layout), env=_daemon_env(), capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    said = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode != 0 or said not in ("ok", "running"):
        detail = said or result.stderr.strip()[-500:] or f"exit status {result.returncode}"
        raise ConfigError(f"the objmount daemon did not start: {detail}")
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.connect()
            return client
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            if time.monotonic() > deadline:
                raise ConfigError(f"the objmount daemon does not answer at {layout.socket}"
                                  ) from exc
            time.sleep(0.05)


def program_env(layout: Layout, session: bytes, root: str) -> dict[str, str]:
    env = dict(os.environ)
    preload = [str(shim_path())]
    preload += [e for e in env.get("LD_PRELOAD", "").replace(" ", ":").split(":")
                if e and e != preload[0]]
    env["LD_PRELOAD"] = ":".join(preload)
    env["OBJMOUNT_SOCKET"] = str(layout.socket)
    env["OBJMOUNT_SESSION"] = session.decode()
    env["OBJMOUNT_ROOT"] = root
    env.pop("OBJMOUNT_DISABLE", None)
    env.pop("OBJMOUNT_FDS", None)
    return env


def is_object_path(arg: str, root: str) -> bool:
    return (arg == root or arg.startswith(root + "/") or arg.startswith("s3:/")
            or f"={root}/" in arg or "=s3:/" in arg)


def unreachable(argv: list[str], root: str, env: dict[str, str]) -> str | None:
    """The first program is exec'd from here, not through the shim: the same check."""
    if not any(is_object_path(a, root) for a in argv[1:]):
        return None
    program = shutil.which(argv[0], path=env.get("PATH")) or argv[0]
    why = unreachable_reason(Path(program), os.getuid(), os.getgid())
    if why is None:
        return None
    return (f"objmount: {program} {why}, so it cannot use object paths: use a FUSE mount "
            "(objmount mount), or OBJMOUNT_DISABLE=1 to run it anyway")


def shell_command(tmp: Path, env: dict[str, str]) -> list[str]:
    """The user's own shell, interactive, with a prompt that says where it is."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    name = Path(shell).name
    env["OBJMOUNT_SHELL"] = "1"
    if name == "bash":
        rc = tmp / "bashrc"
        rc.write_text('[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"\n'
                      f'PS1="{PROMPT_MARKER}${{PS1-\\$ }}"\n')
        return [shell, "--rcfile", str(rc), "-i"]
    if name == "zsh":
        (tmp / ".zshrc").write_text(
            'ZDOTDIR="${OBJMOUNT_ZDOTDIR:-$HOME}"\n'
            '[ -f "$ZDOTDIR/.zshrc" ] && . "$ZDOTDIR/.zshrc"\n'
            f'PROMPT="{PROMPT_MARKER}${{PROMPT-%# }}"\n')
        if "ZDOTDIR" in env:
            env["OBJMOUNT_ZDOTDIR"] = env["ZDOTDIR"]
        env["ZDOTDIR"] = str(tmp)
        return [shell, "-i"]
    env["PS1"] = PROMPT_MARKER + env.get("PS1", "$ ")
    return [shell, "-i"]


def run(argv: list[str], config: S3Config, *, root: str = DEFAULT_ROOT,
        settings_extra: dict[str, float | int] | None = None, shell: bool = False) -> int:
    root = "/" + root.strip("/")
    if root == "/":
        raise ConfigError("the object root cannot be / itself")
    layout = prepare_daemon(config, settings_extra or {})
    session = secrets.token_hex(8).encode()
    client = connect(layout, session, root)
    env = program_env(layout, session, root)
    tmp: Path | None = None
    try:
        if shell:
            tmp = layout.dir / f"shell-{session.decode()}"
            tmp.mkdir(mode=0o700)
            argv = shell_command(tmp, env)
        else:
            refusal = unreachable(argv, root, env)
            if refusal is not None:
                print(refusal, file=sys.stderr)
                return 126  # as a shell says "cannot execute"
        # The terminal's ^C belongs to the program; we wait for it, then for uploads.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            try:
                child = subprocess.Popen(argv, env=env, preexec_fn=_default_sigint)
            except FileNotFoundError:
                print(f"objmount run: {argv[0]}: command not found", file=sys.stderr)
                return 127
            except PermissionError:
                print(f"objmount run: {argv[0]}: permission denied", file=sys.stderr)
                return 126
            code = child.wait()
        finally:
            signal.signal(signal.SIGINT, old)
        try:
            reply = client.call(p.Op.SESSION_WAIT, session)
        except OSError:
            print("objmount run: the objmount daemon died during the run: files open for "
                  "writing then were not stored (their programs got EIO)", file=sys.stderr)
            return code if code != 0 else 1
        failures = reply.args[1] if reply.status == 0 and len(reply.args) > 1 else b""
        if isinstance(failures, bytes) and failures:
            for line in failures.decode(errors="replace").splitlines():
                print(f"objmount: {line}; its bytes are kept under "
                      f"{layout.cache / 'unsaved'}", file=sys.stderr)
            return code if code != 0 else 1
        return code if code >= 0 else 128 - code
    finally:
        client.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
