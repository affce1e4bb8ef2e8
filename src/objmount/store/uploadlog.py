"""Multipart uploads this process started and has not finished, on disk, so that after a
crash the next daemon aborts them (an upload never completed holds the store's space
until a lifecycle rule removes it; no reader ever sees it).

One file per process in the cache directory, ``uploads-<pid>-<random>``, one JSON line per event,
held under an exclusive ``flock`` for the life of the process: a file whose lock can be
taken belongs to a process that is gone. Only uploads recorded here are ever aborted,
so another client's uploads in the same bucket are never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "uploads-"


@dataclass(frozen=True)
class Unfinished:
    endpoint: str
    bucket: str
    key: str
    upload_id: str


class UploadLog:
    def __init__(self, directory: Path, endpoint: str) -> None:
        """``endpoint`` names the store, so that a later daemon only aborts uploads at
        the store it talks to."""
        self.endpoint = endpoint
        # Unique even for two engines of one process on one cache directory.
        self.path = directory / f"{PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self._lock = threading.Lock()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                           0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _write(self, record: dict[str, str]) -> None:
        line = (json.dumps(record) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)  # O_APPEND: one write, one whole line

    def started(self, bucket: str, key: str, upload_id: str) -> None:
        self._write({"started": upload_id, "endpoint": self.endpoint, "bucket": bucket,
                     "key": key})

    def ended(self, upload_id: str) -> None:
        self._write({"ended": upload_id})

    def close(self) -> None:
        """At a clean exit: nothing is left to abort."""
        with self._lock:
            os.close(self._fd)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _unfinished(text: str) -> list[Unfinished]:
    started: dict[str, Unfinished] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by the crash: its upload never got a part
        if "started" in record:
            started[record["started"]] = Unfinished(record["endpoint"], record["bucket"],
                                                    record["key"], record["started"])
        elif "ended" in record:
            started.pop(record["ended"], None)
    return list(started.values())


@contextlib.contextmanager
def _if_dead(path: Path) -> Iterator[bool]:
    """True (holding its lock) if no live process holds ``path``."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def abort_left_behind(directory: Path, endpoint: str,
                      abort: Callable[[Unfinished], None]) -> int:
    """Abort the unfinished uploads at ``endpoint`` of processes that are gone, with
    ``abort`` (which raises if the store cannot be asked now: the log is kept for the next
    start). Returns how many were aborted."""
    aborted = 0
    for path in sorted(directory.glob(f"{PREFIX}*")):
        with _if_dead(path) as dead:
            if not dead:
                continue
            pending = _unfinished(path.read_text(errors="replace"))
            mine = [u for u in pending if u.endpoint == endpoint]
            try:
                for upload in mine:
                    abort(upload)
                    aborted += 1
                    log.warning("aborted multipart upload %s of s3://%s/%s, left unfinished "
                                "by objmount process %s that is gone", upload.upload_id,
                                upload.bucket, upload.key,
                                path.name[len(PREFIX):].split("-")[0])
            except Exception as exc:
                log.warning("could not abort the uploads left in %s yet: %s", path, exc)
                continue
            if len(mine) == len(pending):
                path.unlink()
            else:  # uploads at another store: left for a daemon that talks to it
                path.write_text("".join(
                    json.dumps({"started": u.upload_id, "endpoint": u.endpoint,
                                "bucket": u.bucket, "key": u.key}) + "\n"
                    for u in pending if u.endpoint != endpoint))
    return aborted
