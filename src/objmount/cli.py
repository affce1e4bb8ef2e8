"""The ``objmount`` command line. Errors are one line (and a traceback only with -v)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from objmount import __version__, paths
from objmount.errors import ConfigError, ObjmountError

if TYPE_CHECKING:
    from objmount.frontends.intercept.layout import DaemonSettings
    from objmount.store.base import Account

log = logging.getLogger("objmount")

MOUNT_OPTIONS = """mount options (-o, comma separated):
  ro                 read-only mount
  allow_other        let other users use the mount (needs user_allow_other for non-root)
  uid=N, gid=N       owner shown for objects that carry no owner (default: yours)
  file_mode=0644     mode for objects that carry no mode
  dir_mode=0755      mode for directories that carry no mode
  attr_timeout=1     seconds attributes and names are cached (kernel and objmount)
  negative_timeout=1 seconds a missing name is remembered
  cache_dir=PATH     where objects' bytes are cached (default ~/.cache/objmount)
  cache_size=2G      disk for cached bytes: open files, and files kept after their last
                     close for the next open of the same version (0: keep none)
  block_size=1M      unit of on-demand reads from the store
  read_ahead=64M     most bytes fetched ahead of a sequential reader (0: none)
  part_size=8M       multipart upload part size; smaller files are one PUT
  xattr              keep user.* extended attributes (s3fs's form); off: ls -l is faster
  acl                POSIX ACLs (setfacl), checked by the kernel, stored as s3fs stores
                     them; implies xattr
  dir_form=auto      how directories are written: auto (dir/ markers where the store
                     keeps their metadata, else objects of their own name), marker, object
  no_default_permissions  do not let the kernel check permissions against modes
"""


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def parse_mount_options(items: list[str]) -> dict[str, str]:
    known = {"ro", "rw", "allow_other", "uid", "gid", "file_mode", "dir_mode", "attr_timeout",
             "negative_timeout", "cache_dir", "cache_size", "block_size", "read_ahead",
             "part_size", "dir_form", "xattr", "acl",
             "no_default_permissions", "default_permissions"}
    result: dict[str, str] = {}
    for item in items:
        for opt in item.split(","):
            if not opt:
                continue
            name, _, value = opt.partition("=")
            if name not in known:
                raise ConfigError(f"unknown mount option {name!r} (see objmount mount --help)")
            result[name] = value
    return result


def parse_url(url: str) -> tuple[str, str]:
    for scheme in ("s3://", "s3:/"):
        if url.startswith(scheme):
            rest = url[len(scheme):].lstrip("/")
            bucket, _, prefix = rest.partition("/")
            if not bucket:
                raise ConfigError(f"{url}: no bucket name")
            return bucket, prefix.strip("/")
    raise ConfigError(f"{url}: expected s3://bucket[/prefix]")


def _store_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("object store (defaults follow the AWS environment variables)")
    g.add_argument("--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, "
                   "AWS_ENDPOINT_URL, the profile's endpoint_url)")
    g.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")
    g.add_argument("--region", help="region (default: AWS_REGION, the profile's, us-east-1)")
    style = g.add_mutually_exclusive_group()
    style.add_argument("--path-style", dest="path_style", action="store_true", default=None,
                       help="path-style addressing (default for IP and localhost endpoints)")
    style.add_argument("--virtual-host", dest="path_style", action="store_false",
                       help="virtual-hosted-style addressing (default otherwise)")
    g.add_argument("--allow-http", dest="allow_http", action="store_true", default=None,
                   help="use http for an endpoint given without a scheme")
    g.add_argument("--stall-timeout", type=float, default=2.0, metavar="SECONDS",
                   help="a request that receives nothing for this long is asked again; "
                   "each second retry waits 4 times longer (default 2)")


def _intercept_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("interception")
    g.add_argument("--root", default=os.environ.get("OBJMOUNT_ROOT") or "/objmount",
                   help="where object paths begin (default: OBJMOUNT_ROOT, /objmount)")
    g.add_argument("--attr-timeout", type=float, default=1.0, metavar="SECONDS",
                   help="how long attributes and names are cached (default 1)")
    g.add_argument("--idle-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="the daemon exits after this long with no program connected and no "
                   "object open (default 30)")
    g.add_argument("--cache-size", type=_size, default=2 << 30, metavar="SIZE",
                   help="disk for cached object bytes, open or kept for the next open "
                   "(default 2G; 0 keeps nothing after the last close)")


def build_parser() -> argparse.ArgumentParser:
    def logging_args(defaults: bool) -> argparse.ArgumentParser:
        # The subcommands' copies have no defaults: theirs would overwrite what was given
        # before the subcommand (`objmount -v mount ...`).
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("-v", "--verbose", action="count",
                            default=0 if defaults else argparse.SUPPRESS,
                            help="more logging (-vv for debug); tracebacks on errors")
        common.add_argument("--log-file", type=Path,
                            default=None if defaults else argparse.SUPPRESS,
                            help="write the log to this file")
        return common

    common = logging_args(defaults=False)
    parser = argparse.ArgumentParser(
        prog="objmount", parents=[logging_args(defaults=True)],
        description="Use S3 object storage as first-class POSIX file storage.")
    parser.add_argument("--version", action="version", version=f"objmount {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    m = sub.add_parser("mount", parents=[common], help="mount a bucket, a prefix, or all buckets",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="objmount mount s3://bucket[/prefix] MOUNTPOINT\n"
                                   "objmount mount MOUNTPOINT   (all buckets as MOUNTPOINT/s3/"
                                   "<bucket>)", epilog=MOUNT_OPTIONS)
    m.add_argument("source", help="s3://bucket[/prefix], or the mountpoint to show all buckets")
    m.add_argument("mountpoint", nargs="?", help="directory to mount on")
    m.add_argument("-o", dest="options", action="append", default=[], metavar="OPT[,OPT...]",
                   help="mount options, see below")
    m.add_argument("-f", "--foreground", action="store_true", help="do not daemonize")
    _store_args(m)

    u = sub.add_parser("umount", parents=[common], help="store what is pending and unmount")
    u.add_argument("mountpoint", type=Path)

    intercept_help = ("object paths: /objmount/s3/BUCKET/KEY (the root is --root), "
                      "s3://BUCKET/KEY and s3:/BUCKET/KEY")
    r = sub.add_parser("run", parents=[common], help="run one command that can use object paths",
                       description="objmount run [options] -- COMMAND [ARGS...]: run COMMAND "
                       "with the interception library, so that it can use " + intercept_help +
                       ". Exits with COMMAND's status (non-zero if an upload failed).")
    r.add_argument("program", nargs=argparse.REMAINDER, help="the command and its arguments")
    _intercept_args(r)
    _store_args(r)

    sh = sub.add_parser("shell", parents=[common], help="your shell, where object paths work",
                        description="Start $SHELL (bash, zsh, sh) with the interception "
                        "library: every program it runs can use " + intercept_help + ".")
    _intercept_args(sh)
    _store_args(sh)

    d = sub.add_parser("daemon", parents=[common],
                       help="the interception daemons: status, stop (serve is internal)")
    d.add_argument("action", choices=["status", "stop", "serve"])
    d.add_argument("--dir", type=Path, help=argparse.SUPPRESS)

    st = sub.add_parser("status", parents=[common],
                        help="running mounts and interception daemons: cache, reads, requests",
                        description="Each running mount and interception daemon of this user: "
                        "what it serves, its cache, how reads found their data, and the "
                        "requests and bytes it sent to the store since it started. Exits 3 "
                        "when none is running.")
    st.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("server", parents=[common], help="the embedded S3 server (SeaweedFS)")
    s.add_argument("action", choices=["start", "stop", "status"])
    s.add_argument("--data-dir", type=Path, help="default: $XDG_DATA_HOME/objmount/server")
    return parser


def setup_logging(verbose: int, log_file: Path | None) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        handlers = [logging.FileHandler(log_file)]
        level = min(level, logging.INFO)
    logging.basicConfig(level=level, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def cmd_mount(args: argparse.Namespace) -> int:
    from objmount.config import resolve_s3_config
    from objmount.core.dirattrs import FORMS
    from objmount.core.engine import EngineOptions, MountRoot
    from objmount.core.metadata import Defaults
    from objmount.frontends.mount import MountRequest, mount
    from objmount.store.s3 import S3Account

    if args.mountpoint is None:
        mountpoint, root = Path(args.source), MountRoot()
    else:
        bucket, prefix = parse_url(args.source)
        mountpoint, root = Path(args.mountpoint), MountRoot(bucket, prefix)
    opts = parse_mount_options(args.options)
    config = resolve_s3_config(endpoint=args.endpoint, profile=args.profile, region=args.region,
                               path_style=args.path_style, allow_http=args.allow_http)
    log.info("object store: %s", config.describe())
    try:
        defaults = Defaults(
            uid=int(opts.get("uid", os.getuid())),
            gid=int(opts.get("gid", os.getgid())),
            file_mode=int(opts.get("file_mode", "0644"), 8),
            dir_mode=int(opts.get("dir_mode", "0755"), 8),
        )
        engine_options = EngineOptions(
            defaults=defaults,
            cache_dir=Path(opts.get("cache_dir") or paths.cache_dir()),
            read_only="ro" in opts,
            attr_ttl=float(opts.get("attr_timeout", "1")),
            negative_ttl=float(opts.get("negative_timeout", "1")),
            block_size=_size(opts.get("block_size", "1M")),
            read_ahead=_size(opts.get("read_ahead", "64M")),
            cache_size=_size(opts.get("cache_size", "2G")),
            dir_form=opts.get("dir_form", "auto"),
            posix_acls="acl" in opts,
        )
        part_size = _size(opts.get("part_size", "8M"))
    except ValueError as exc:
        raise ConfigError(f"bad mount option value: {exc}") from exc
    if part_size < 5 << 20:
        raise ConfigError("part_size must be at least 5M (an S3 limit)")
    if engine_options.dir_form not in FORMS:
        raise ConfigError(f"dir_form must be one of {', '.join(FORMS)}")
    request = MountRequest(
        mountpoint=Path(os.path.abspath(mountpoint)),
        root=root,
        engine=engine_options,
        allow_other="allow_other" in opts,
        default_permissions="no_default_permissions" not in opts,
        xattrs="xattr" in opts or "acl" in opts,
        foreground=args.foreground,
    )
    if args.stall_timeout <= 0:
        raise ConfigError("--stall-timeout must be more than 0 seconds")
    return mount(request, lambda: S3Account(config, part_size=part_size,
                                            stall_timeout=args.stall_timeout), args.log_file)


def _run_or_shell(args: argparse.Namespace, *, shell: bool) -> int:
    from objmount.config import resolve_s3_config
    from objmount.frontends.intercept.launcher import run

    command: list[str] = []
    if not shell:
        command = list(args.program)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise ConfigError("no command given: objmount run -- COMMAND [ARGS...]")
    config = resolve_s3_config(endpoint=args.endpoint, profile=args.profile, region=args.region,
                               path_style=args.path_style, allow_http=args.allow_http)
    log.info("object store: %s", config.describe())
    extra: dict[str, float | int] = {"attr_ttl": args.attr_timeout,
                                     "negative_ttl": args.attr_timeout,
                                     "idle_timeout": args.idle_timeout,
                                     "cache_size": args.cache_size,
                                     "stall_timeout": args.stall_timeout,
                                     "verbose": args.verbose}
    return run(command, config, root=args.root, settings_extra=extra, shell=shell)


def cmd_run(args: argparse.Namespace) -> int:
    return _run_or_shell(args, shell=False)


def cmd_shell(args: argparse.Namespace) -> int:
    return _run_or_shell(args, shell=True)


def cmd_daemon(args: argparse.Namespace) -> int:
    from objmount.frontends.intercept import daemon

    if args.action == "serve":
        if args.dir is None:
            raise ConfigError("objmount daemon serve needs --dir")
        return daemon.serve(args.dir, _account_for_settings)
    found = daemon.running()
    if args.action == "status":
        if not found:
            print("no interception daemon is running")
            return 3
        for directory, pid in found:
            print(f"pid {pid}: {directory / 'sock'}")
        return 0
    for directory, pid in found:
        ok = daemon.stop(directory, pid)
        print(f"pid {pid}: {'stopped' if ok else 'still running'}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from objmount.frontends import status

    reports = list(status.running())
    if args.json:
        print(json.dumps(reports, indent=2))
    elif not reports:
        print("no objmount mount or interception daemon is running")
    else:
        print("\n\n".join(status.render(r) for r in reports))
    return 0 if reports else 3


def _account_for_settings(settings: DaemonSettings) -> Account:
    from objmount.store.s3 import S3Account

    return S3Account(settings.s3_config(), part_size=settings.part_size,
                     stall_timeout=settings.stall_timeout)


def cmd_umount(args: argparse.Namespace) -> int:
    from objmount.frontends.mount import umount

    umount(args.mountpoint)
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from objmount import server

    if args.action == "start":
        info = server.embedded_start(args.data_dir)
        print(f"objmount embedded S3 server running (pid {info.pid}), data in {info.data_dir}")
        print("Use it with:")
        for name, value in info.env().items():
            print(f"  export {name}={value}")
        return 0
    if args.action == "stop":
        if server.embedded_stop(args.data_dir):
            print("stopped")
        else:
            print("not running")
        return 0
    status = server.embedded_status(args.data_dir)
    if status is None:
        print("not running")
        return 3
    print(f"running (pid {status.pid}) at {status.endpoint}, data in {status.data_dir}")
    for name, value in status.env().items():
        print(f"  export {name}={value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose, args.log_file)
    handlers = {"mount": cmd_mount, "umount": cmd_umount, "server": cmd_server,
                "run": cmd_run, "shell": cmd_shell, "daemon": cmd_daemon,
                "status": cmd_status}
    try:
        return handlers[args.command](args)
    except (ObjmountError, OSError) as exc:
        if args.verbose:
            log.exception("failed")
        print(f"objmount {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
