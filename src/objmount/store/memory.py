"""An in-memory bucket with S3's listing and metadata semantics, for fast engine tests."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from objmount.errors import NoSuchBucket, NoSuchKey, NotSupported, PreconditionFailed, StoreError
from objmount.store.base import ListResult, ObjectInfo, Sink
from objmount.store.fdio import read_exactly, write_at


@dataclass
class _Object:
    data: bytes
    metadata: dict[str, str]
    content_type: str
    mtime_ns: int
    etag: str


@dataclass
class _Upload:
    key: str
    metadata: dict[str, str]
    content_type: str
    parts: dict[int, tuple[bytes, str]]  # number -> (data, ETag)


class MemoryStore:
    def __init__(self, bucket: str = "mem") -> None:
        self.bucket = bucket
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}  # operation name -> count, for tests
        self.exists = True
        self.uploads: dict[str, _Upload] = {}  # multipart uploads not completed nor aborted
        self._next_upload = 0

    def _count(self, op: str) -> None:
        self.requests[op] = self.requests.get(op, 0) + 1
        if not self.exists:
            raise NoSuchBucket(self.bucket)

    def _info(self, key: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(key, len(obj.data), obj.etag, obj.mtime_ns, dict(obj.metadata),
                          obj.content_type)

    def _get(self, key: str) -> _Object:
        try:
            return self._objects[key]
        except KeyError:
            raise NoSuchKey(key) from None

    def check(self) -> None:
        self._count("check")

    def head(self, key: str) -> ObjectInfo:
        with self._lock:
            self._count("head")
            return self._info(key, self._get(key))

    def get(self, key: str) -> bytes:
        with self._lock:
            self._count("get")
            return self._get(key).data

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        with self._lock:
            self._count("get_range")
            obj = self._get(key)
            if etag is not None and obj.etag != etag:
                raise PreconditionFailed(key)
            return obj.data[start:end]

    def read_into(self, key: str, start: int, end: int, sink: Sink,
                  etag: str | None = None) -> None:
        with self._lock:
            self._count("read_into")
            obj = self._get(key)
            if etag is not None and obj.etag != etag:
                raise PreconditionFailed(key)
            data = memoryview(obj.data)[start:min(end, len(obj.data))]
        if len(data) != max(0, end - start):
            raise StoreError(f"{key}: bytes [{start}, {end}) are beyond its end")
        for offset in range(0, len(data), self.chunk_size):
            sink(start + offset, data[offset:offset + self.chunk_size])

    def download(self, key: str, dest_fd: int, etag: str | None = None) -> ObjectInfo:
        with self._lock:
            self._count("download")
            obj = self._get(key)
            if etag is not None and obj.etag != etag:
                raise PreconditionFailed(key)
            info = self._info(key, obj)
            data = obj.data
        write_at(dest_fd, data, 0)
        return info

    def put(self, key: str, data: bytes, metadata: Mapping[str, str],
            content_type: str = "") -> str:
        etag = '"' + hashlib.md5(data).hexdigest() + '"'
        with self._lock:
            self._count("put")
            self._objects[key] = _Object(bytes(data), dict(metadata), content_type,
                                         time.time_ns(), etag)
        return etag

    def upload(self, key: str, source_fd: int, size: int, metadata: Mapping[str, str],
               content_type: str = "") -> str:
        return self.put(key, read_exactly(source_fd, 0, size), metadata, content_type)

    part_size = 8 << 20
    chunk_size = 1 << 20  # of read_into
    min_part = 5 << 20  # S3's least size of a part that is not the last
    copy_parts = True  # False: behave as a store without UploadPartCopy

    def create_upload(self, key: str, metadata: Mapping[str, str],
                      content_type: str = "") -> str:
        with self._lock:
            self._count("create_upload")
            self._next_upload += 1
            upload_id = f"upload-{self._next_upload}"
            self.uploads[upload_id] = _Upload(key, dict(metadata), content_type, {})
            return upload_id

    def _upload(self, key: str, upload_id: str) -> _Upload:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise NoSuchKey(f"{key} (upload {upload_id})")
        return upload

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        with self._lock:
            self._count("upload_part")
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            self._upload(key, upload_id).parts[number] = (bytes(data), etag)
            return etag

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str,
                  source_etag: str, start: int, end: int) -> str:
        with self._lock:
            self._count("copy_part")
            if not self.copy_parts:
                raise NotSupported(f"UploadPartCopy {source_key}")
            src = self._get(source_key)
            if src.etag != source_etag:
                raise PreconditionFailed(source_key)
            data = src.data[start:end]
            etag = '"' + hashlib.md5(data).hexdigest() + '"'
            self._upload(key, upload_id).parts[number] = (data, etag)
            return etag

    def complete_upload(self, key: str, upload_id: str,
                        parts: Sequence[tuple[int, str]]) -> str:
        with self._lock:
            self._count("complete_upload")
            upload = self._upload(key, upload_id)
            chunks = []
            for i, (number, etag) in enumerate(parts):
                data, sent_etag = upload.parts.get(number, (b"", ""))
                least = min(self.min_part, self.part_size)  # tests shrink part_size
                if sent_etag != etag or (i < len(parts) - 1 and len(data) < least):
                    raise StoreError(f"{key}: part {number} is missing or too small")
                chunks.append(data)
            data = b"".join(chunks)
            etag = '"' + hashlib.md5(data).hexdigest() + f'-{len(parts)}"'
            self._objects[key] = _Object(data, upload.metadata, upload.content_type,
                                         time.time_ns(), etag)
            del self.uploads[upload_id]
            return etag

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._count("abort_upload")
            self.uploads.pop(upload_id, None)

    def copy(self, src_key: str, dst_key: str, metadata: Mapping[str, str] | None = None,
             content_type: str = "") -> str:
        with self._lock:
            self._count("copy")
            src = self._get(src_key)
            self._objects[dst_key] = _Object(
                src.data,
                dict(src.metadata) if metadata is None else dict(metadata),
                src.content_type if metadata is None else content_type,
                time.time_ns(),
                src.etag,
            )
            return src.etag

    def delete(self, key: str) -> None:
        with self._lock:
            self._count("delete")
            self._objects.pop(key, None)

    def delete_many(self, keys: list[str]) -> None:
        for key in keys:
            self.delete(key)

    def list(self, prefix: str, delimiter: str | None = "/", max_keys: int | None = None
             ) -> ListResult:
        with self._lock:
            self._count("list")
            objects: list[ObjectInfo] = []
            prefixes: list[str] = []
            for key in sorted(self._objects):
                if not key.startswith(prefix):
                    continue
                rest = key[len(prefix):]
                common = (prefix + rest[: rest.index(delimiter) + len(delimiter)]
                          if delimiter and delimiter in rest else None)
                if common is not None and prefixes and prefixes[-1] == common:
                    continue  # one more key under a prefix already listed
                if max_keys is not None and len(objects) + len(prefixes) >= max_keys:
                    return ListResult(objects, prefixes, truncated=True)
                if common is not None:
                    prefixes.append(common)
                else:
                    info = self._info(key, self._objects[key])
                    objects.append(ObjectInfo(info.key, info.size, info.etag, info.mtime_ns,
                                              has_metadata=False))
            return ListResult(objects, prefixes)

    def has_keys_under(self, prefix: str) -> bool:
        with self._lock:
            self._count("list")
            return any(key.startswith(prefix) for key in self._objects)

    def iter_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        yield from self.list(prefix, delimiter=None).objects


class MemoryAccount:
    def __init__(self, *buckets: str) -> None:
        self.stores = {name: MemoryStore(name) for name in buckets}

    def keep_upload_log(self, directory: Path) -> int:
        return 0  # uploads held in memory end with the process

    def list_buckets(self) -> list[str]:
        return sorted(self.stores)

    def bucket(self, name: str) -> MemoryStore:
        try:
            return self.stores[name]
        except KeyError:
            raise NoSuchBucket(name) from None
