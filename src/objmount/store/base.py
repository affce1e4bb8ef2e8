"""The object store protocol the engine is written against.

Keys are exact S3 keys (str). User metadata names are lower case and carry no
``x-amz-meta-`` prefix: ``{"mode": "33188"}`` travels as ``x-amz-meta-mode: 33188``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    mtime_ns: int  # Last-Modified
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str = ""
    # False when the info came from a LIST, which carries no user metadata.
    has_metadata: bool = True


@dataclass(frozen=True)
class ListResult:
    objects: list[ObjectInfo]
    prefixes: list[str]  # common prefixes, each ending in the delimiter
    truncated: bool = False  # max_keys stopped it short of the end


Sink = Callable[[int, memoryview], None]  # (offset in the object, bytes from there)


class ObjectStore(Protocol):
    """One bucket."""

    bucket: str

    def check(self) -> None:
        """Raise NoSuchBucket / AccessDenied / StoreUnavailable unless the bucket is usable."""

    def head(self, key: str) -> ObjectInfo: ...

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        """Bytes [start, end). With ``etag``, raise PreconditionFailed if it changed."""
        ...

    def get(self, key: str) -> bytes: ...

    def read_into(self, key: str, start: int, end: int, sink: Sink,
                  etag: str | None = None) -> None:
        """Bytes [start, end) of the object, handed to ``sink(offset, chunk)`` in order as
        they arrive (one request, however large the range: no buffer holds it whole). A
        transfer that fails part way is retried from where it stopped; a body that ends
        short is an error, never data. With ``etag``, PreconditionFailed if it changed.
        What ``sink`` raises ends the transfer and is raised as it is."""
        ...

    def download(self, key: str, dest_fd: int, etag: str | None = None) -> ObjectInfo:
        """Write the whole object at offset 0 of the open file ``dest_fd`` (with pwrite:
        no new open of the file, whose opens and closes others may be watching); return
        what a HEAD would have said of the object written, user metadata included."""
        ...

    def put(
        self, key: str, data: bytes, metadata: Mapping[str, str], content_type: str = ""
    ) -> str:
        """Store ``data`` whole; return the new ETag."""
        ...

    def upload(
        self, key: str, source_fd: int, size: int, metadata: Mapping[str, str],
        content_type: str = ""
    ) -> str:
        """Store bytes [0, size) of the open file ``source_fd`` whole (read with pread):
        one PUT when small, a multipart upload when large. The object only changes when
        the upload completes; a file that shrinks while it is read fails the upload."""
        ...

    @property
    def part_size(self) -> int:
        """Bytes per part of a multipart upload."""
        ...

    # A multipart upload, one request per call, each retried on its own. The object
    # changes only when complete_upload succeeds; until then readers get the old one.
    def create_upload(self, key: str, metadata: Mapping[str, str],
                      content_type: str = "") -> str:
        """Start a multipart upload of ``key`` with this metadata; its upload id."""
        ...

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        """Part ``number`` (1-based) from ``data``; its ETag. Sending a number again
        replaces that part. Every part but the last must be at least 5 MiB (S3's rule)."""
        ...

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str,
                  source_etag: str, start: int, end: int) -> str:
        """Part ``number`` copied server-side from bytes [start, end) of ``source_key``,
        as long as it still has ``source_etag`` (PreconditionFailed if not: another
        client's version is never spliced in); NotSupported if the store cannot."""
        ...

    def complete_upload(self, key: str, upload_id: str,
                        parts: Sequence[tuple[int, str]]) -> str:
        """Make the object from (number, ETag) of the parts, in order; its ETag."""
        ...

    def abort_upload(self, key: str, upload_id: str) -> None: ...

    def copy(
        self,
        src_key: str,
        dst_key: str,
        metadata: Mapping[str, str] | None = None,
        content_type: str = "",
    ) -> str:
        """Server-side copy. ``metadata=None`` keeps the source's metadata."""
        ...

    def delete(self, key: str) -> None:
        """Delete; a missing key is not an error (S3 semantics)."""
        ...

    def delete_many(self, keys: list[str]) -> None: ...

    def list(self, prefix: str, delimiter: str | None = "/", max_keys: int | None = None
             ) -> ListResult:
        """Every object and common prefix under ``prefix`` (all pages, or at most max_keys)."""
        ...

    def has_keys_under(self, prefix: str) -> bool:
        """True when at least one key starts with ``prefix`` (which ends in '/')."""
        ...

    def iter_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, recursively, page by page."""
        ...


class Account(Protocol):
    """The credentials' view: which buckets exist, and a store for each."""

    def keep_upload_log(self, directory: Path) -> int:
        """Record the multipart uploads started from now on in ``directory``, and abort
        those that processes now gone left unfinished there; how many were aborted."""
        ...

    def list_buckets(self) -> list[str]: ...

    def bucket(self, name: str) -> ObjectStore: ...
