"""The engine's settings, each default explained."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from objmount.core.metadata import Defaults

_MIB = 1024 * 1024


@dataclass(frozen=True)
class EngineOptions:
    defaults: Defaults
    cache_dir: Path
    read_only: bool = False
    # Like NFS's actimeo and mountpoint-s3's default: short enough that other clients'
    # changes show quickly, long enough that `ls -l` does not HEAD every file twice.
    attr_ttl: float = 1.0
    negative_ttl: float = 1.0
    # Unit of the cache's map and of on-demand reads: a random read fetches one block,
    # so small enough not to over-fetch, large enough to amortise a request.
    block_size: int = 1 * _MIB
    # How far ahead of a sequential reader blocks are fetched, at most (the window
    # starts at one block and doubles), in GETs of up to fetch_size each (consecutive
    # missing blocks together), read_concurrency of them at once for all open files
    # together. Bytes stream to the cache file as they arrive: memory in flight is a
    # chunk (1 MiB) per GET.
    read_ahead: int = 64 * _MIB
    fetch_size: int = 16 * _MIB
    # Objects no larger than this (as last seen) are fetched whole when opened, by the
    # GET that also revalidates them: one request instead of a HEAD and a GET.
    whole_file_size: int = 1 * _MIB
    # Disk for objects' bytes: open files' and those kept after the last close for the
    # next open of the same version (least recently used go first; 0: keep nothing).
    cache_size: int = 2048 * _MIB
    read_concurrency: int = 8
    # Parts of uploads sent at once, for all open files together (streamed, spliced).
    # Memory in flight is at most upload_concurrency x the store's part size.
    upload_concurrency: int = 8
    # Parallel HEADs while listing a directory (LIST carries no user metadata).
    metadata_concurrency: int = 32
    # Publish each open file's block map in shared memory (the interception daemon's
    # shims read it to serve cached bytes without asking).
    shared_block_maps: bool = False
    # How directories are written: "auto" (dir/ markers where they keep metadata, else
    # objects of their own name: see dirattrs.py), "marker" or "object".
    dir_form: str = "auto"
    # POSIX ACLs stored, kept in step with modes and inherited (acls.py): the FUSE mount
    # with -o acl, where the kernel enforces them.
    posix_acls: bool = False
