"""A store wrapper that fails chosen operations: for tests of retries and failure paths."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from objmount.store.base import ListResult, ObjectInfo, ObjectStore, Sink

# (operation name, key) -> an exception to raise, or None to let the call through.
FaultRule = Callable[[str, str], Exception | None]


class FaultyStore:
    def __init__(self, inner: ObjectStore, rule: FaultRule) -> None:
        self.inner = inner
        self.bucket = inner.bucket
        self.rule = rule
        self.calls: list[tuple[str, str]] = []

    def _check(self, op: str, key: str) -> None:
        self.calls.append((op, key))
        exc = self.rule(op, key)
        if exc is not None:
            raise exc

    def check(self) -> None:
        self._check("check", "")
        self.inner.check()

    def head(self, key: str) -> ObjectInfo:
        self._check("head", key)
        return self.inner.head(key)

    def get(self, key: str) -> bytes:
        self._check("get", key)
        return self.inner.get(key)

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        self._check("get_range", key)
        return self.inner.get_range(key, start, end, etag)

    def read_into(self, key: str, start: int, end: int, sink: Sink,
                  etag: str | None = None) -> None:
        self._check("read_into", key)
        self.inner.read_into(key, start, end, sink, etag)

    def download(self, key: str, dest_fd: int, etag: str | None = None) -> ObjectInfo:
        self._check("download", key)
        return self.inner.download(key, dest_fd, etag)

    def put(self, key: str, data: bytes, metadata: Mapping[str, str],
            content_type: str = "") -> str:
        self._check("put", key)
        return self.inner.put(key, data, metadata, content_type)

    def upload(self, key: str, source_fd: int, size: int, metadata: Mapping[str, str],
               content_type: str = "") -> str:
        self._check("upload", key)
        return self.inner.upload(key, source_fd, size, metadata, content_type)

    @property
    def part_size(self) -> int:
        return self.inner.part_size

    def create_upload(self, key: str, metadata: Mapping[str, str],
                      content_type: str = "") -> str:
        self._check("create_upload", key)
        return self.inner.create_upload(key, metadata, content_type)

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        self._check("upload_part", key)
        return self.inner.upload_part(key, upload_id, number, data)

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str,
                  source_etag: str, start: int, end: int) -> str:
        self._check("copy_part", key)
        return self.inner.copy_part(key, upload_id, number, source_key, source_etag,
                                    start, end)

    def complete_upload(self, key: str, upload_id: str,
                        parts: Sequence[tuple[int, str]]) -> str:
        self._check("complete_upload", key)
        return self.inner.complete_upload(key, upload_id, parts)

    def abort_upload(self, key: str, upload_id: str) -> None:
        self._check("abort_upload", key)
        self.inner.abort_upload(key, upload_id)

    def copy(self, src_key: str, dst_key: str, metadata: Mapping[str, str] | None = None,
             content_type: str = "") -> str:
        self._check("copy", src_key)
        return self.inner.copy(src_key, dst_key, metadata, content_type)

    def delete(self, key: str) -> None:
        self._check("delete", key)
        self.inner.delete(key)

    def delete_many(self, keys: list[str]) -> None:
        self._check("delete_many", keys[0] if keys else "")
        self.inner.delete_many(keys)

    def list(self, prefix: str, delimiter: str | None = "/", max_keys: int | None = None
             ) -> ListResult:
        self._check("list", prefix)
        return self.inner.list(prefix, delimiter, max_keys)

    def has_keys_under(self, prefix: str) -> bool:
        self._check("has_keys_under", prefix)
        return self.inner.has_keys_under(prefix)

    def iter_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        self._check("iter_keys", prefix)
        return self.inner.iter_keys(prefix)
