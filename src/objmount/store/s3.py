"""S3 behind the store protocol.

botocore does the namespace work (HEAD with user metadata, LIST, CopyObject with
replaced metadata, DELETE, ListBuckets, ``dir/`` markers): it addresses every key
exactly. obstore (Rust, releases the GIL) moves the bytes of GET and PUT/multipart,
but its path type normalises keys (it drops the trailing ``/`` of ``dir/`` and refuses
``//`` and dot segments), so it only ever sees keys it represents unchanged.
Neither client retries on its own: :class:`RetryPolicy` is the one retry policy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import botocore.config
import botocore.exceptions
import botocore.session
import botocore.utils
import obstore
import obstore.exceptions
from obstore.store import S3Store as _ObStore

from objmount.config import S3Config
from objmount.errors import (
    AccessDenied,
    NoSuchBucket,
    NoSuchKey,
    NotSupported,
    PreconditionFailed,
    StoreError,
    StoreUnavailable,
    TransientStoreError,
)
from objmount.store.base import ListResult, ObjectInfo, Sink
from objmount.store.counters import RequestCounters
from objmount.store.fdio import read_chunks, read_exactly, write_at
from objmount.store.retry import RetryPolicy
from objmount.store.uploadlog import Unfinished, UploadLog, abort_left_behind

log = logging.getLogger(__name__)
T = TypeVar("T")

_MIB = 1024 * 1024
_READ_CHUNK = _MIB  # bytes handed on at a time by read_into
_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "InvalidToken", "ExpiredToken", "AllAccessDisabled", "403"}
# BadDigest, XAmzContentSHA256Mismatch, IncompleteBody: the body changed or was cut on the
# way; sent again, it arrives whole.
_TRANSIENT_CODES = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable",
                    "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody",
                    "Throttling", "ThrottlingException", "RequestTimeTooSkewed", "500", "502",
                    "503", "504"}


# The attribute names obstore gives standard headers; every other name is user metadata.
_OBSTORE_ATTRIBUTES = {"Content-Type", "Content-Disposition", "Content-Encoding",
                       "Content-Language", "Cache-Control"}


def _obstore_info(key: str, meta: Any, attributes: Mapping[str, Any]) -> ObjectInfo:
    """What a HEAD or GET through obstore says of an object, user metadata included."""
    return ObjectInfo(
        key, int(meta["size"]), str(meta["e_tag"] or ""), _mtime_ns(meta["last_modified"]),
        {str(k).lower(): str(v) for k, v in attributes.items() if k not in _OBSTORE_ATTRIBUTES},
        str(attributes.get("Content-Type", "")))


def explicit_session() -> botocore.session.Session:
    """A botocore session for clients given everything explicitly. It ignores AWS_PROFILE:
    the configuration was resolved already (config.py), and a profile named there that
    does not exist would otherwise break even a client that never uses it."""
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_parse_timestamp)
    return session


def _parse_timestamp(value: str) -> datetime:
    """LIST answers carry ISO 8601 times, which the standard library parses ~400 times
    faster than botocore's default (dateutil: 65 us each, 65 ms a page of 1000)."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        fallback: datetime = botocore.utils.parse_timestamp(value)  # HTTP dates, epochs
        return fallback
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def obstore_can_address(key: str) -> bool:
    """True when obstore's path type keeps ``key`` byte for byte."""
    if not key or key.endswith("/") or key.startswith("/"):
        return False
    return all(seg not in ("", ".", "..") and seg.isprintable() and "\\" not in seg
               for seg in key.split("/"))


def _botocore_error(exc: Exception, what: str) -> StoreError:
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        msg = f"{what}: {code or status} {err.get('Message', '')}".strip()
        if code == "NoSuchBucket":
            return NoSuchBucket(msg)
        if code in ("NoSuchKey", "NotFound") or status == "404":
            return NoSuchKey(msg)
        if code in _ACCESS_CODES or status == "403":
            return AccessDenied(msg)
        if code == "PreconditionFailed" or status == "412":
            return PreconditionFailed(msg)
        if code == "NotImplemented" or status == "501":
            return NotSupported(msg)
        if code in _TRANSIENT_CODES or status in _TRANSIENT_CODES:
            return TransientStoreError(msg)
        return StoreError(msg)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AccessDenied(f"{what}: no credentials")
    if isinstance(exc, botocore.exceptions.HTTPClientError | botocore.exceptions.BotoCoreError):
        # Connection refused, reset, timeouts: the network or the server is having trouble.
        return TransientStoreError(f"{what}: {exc}")
    return StoreError(f"{what}: {exc}")


# obstore 0.12 gives no status field; its message has this fixed phrase, then the body.
_STATUS_PHRASE = re.compile(r"non-2xx status code: (\d{3})\b")
_ERROR_CODE = re.compile(r"<Code>(\w+)</Code>")
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")


def _obstore_error(exc: Exception, what: str) -> StoreError:
    """By exception type, then by the status and the S3 error code of the response: never
    by words in the message (a URL or a time there can hold anything: "40367", "1.403ms")."""
    text = str(exc).split("\n", 1)[0]
    msg = f"{what}: {text}"
    if isinstance(exc, FileNotFoundError | obstore.exceptions.NotFoundError):
        return NoSuchKey(msg)
    if isinstance(exc, obstore.exceptions.PreconditionError):
        return PreconditionFailed(msg)
    if isinstance(exc, obstore.exceptions.PermissionDeniedError
                  | obstore.exceptions.UnauthenticatedError):
        return AccessDenied(msg)
    full = str(exc)
    status_match = _STATUS_PHRASE.search(full)
    if status_match is None:
        return TransientStoreError(msg)  # no response: the connection or the transport
    status = status_match.group(1)
    code_match = _ERROR_CODE.search(full, status_match.end())  # in the response's body
    code = code_match.group(1) if code_match else ""
    if code == "NoSuchBucket":
        return NoSuchBucket(msg)
    if code in _ACCESS_CODES or status in ("401", "403"):
        return AccessDenied(msg)
    if status == "412":
        return PreconditionFailed(msg)
    if code == "NotImplemented" or status == "501":
        return NotSupported(msg)
    if code in _TRANSIENT_CODES or status in _TRANSIENT_CODES or status in ("408", "429"):
        return TransientStoreError(msg)
    if status.startswith("4"):
        return StoreError(msg)  # the request itself is wrong: asking again changes nothing
    return TransientStoreError(msg)


class _SinkFailed(Exception):
    """What a read_into sink raised, carried through the retry loop untouched: a full
    local disk is no reason to ask the store again."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _error_code(exc: botocore.exceptions.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _multipart_etag(part_etags: Sequence[str]) -> str | None:
    """The ETag S3 gives an object completed from these parts: the MD5 of their MD5s,
    then the number of parts. None if a part's ETag is not a plain MD5 (stores differ)."""
    digests = [e.strip('"') for e in part_etags]
    if not all(_MD5_HEX.fullmatch(d) for d in digests):
        return None
    joined = b"".join(bytes.fromhex(d) for d in digests)
    return f"{hashlib.md5(joined).hexdigest()}-{len(digests)}"


def _content_md5(data: bytes) -> str:
    """The Content-MD5 header: the store refuses a body that changed on the way. (obstore
    sends x-amz-checksum-sha256 for the same purpose: see make_obstore.)"""
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _mtime_ns(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp()) * 1_000_000_000 + value.microsecond * 1000
    return 0


class S3ObjectStore:
    def __init__(self, account: S3Account, bucket: str) -> None:
        self.bucket = bucket
        self._account = account
        self._retry = account.retry
        self._obs: dict[float, _ObStore] = {}
        self._ob_lock = threading.Lock()
        # The attempt each thread's request is on: later attempts wait longer for a
        # stalled store (S3Account.stall_timeout_for). Set by _call around each attempt.
        self._attempt = threading.local()

    @property
    def _client(self) -> Any:
        return self._account.client_for(self._account.stall_timeout_for(self._level()))

    def _level(self) -> int:
        return int(getattr(self._attempt, "number", 0))

    # -- plumbing ---------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T],
              classify: Callable[[Exception, str], StoreError] = _botocore_error) -> T:
        """One request under the retry policy, its errors turned into StoreErrors."""
        counters = self._account.counters

        def attempt(number: int) -> T:
            self._attempt.number = number
            started = time.monotonic()
            try:
                result = fn()
            except _SinkFailed:
                counters.request(what)
                raise
            except StoreError as exc:
                counters.request(what, failed=isinstance(exc, TransientStoreError))
                raise
            except Exception as exc:
                error = classify(exc, what)
                counters.request(what, failed=isinstance(error, TransientStoreError))
                raise error from exc
            counters.request(what)
            if log.isEnabledFor(logging.DEBUG):  # -vv: every request, and its time
                log.debug("%s: %.1f ms", what, (time.monotonic() - started) * 1000)
            return result
        try:
            return self._retry.call_counting(what, attempt)
        finally:
            self._attempt.number = 0

    def _obcall(self, what: str, fn: Callable[[], T]) -> T:
        return self._call(what, fn, _obstore_error)

    def _obstore(self) -> _ObStore:
        stall = self._account.stall_timeout_for(self._level())
        with self._ob_lock:
            if stall not in self._obs:
                self._obs[stall] = self._account.make_obstore(self.bucket, stall)
            return self._obs[stall]

    # -- protocol ---------------------------------------------------------------------
    def check(self) -> None:
        where = self._account.config.describe()
        try:
            self._call(f"HeadBucket {self.bucket}",
                       lambda: self._client.head_bucket(Bucket=self.bucket))
        except (NoSuchKey, NoSuchBucket) as exc:  # HeadBucket's 404 carries no error code
            raise NoSuchBucket(f"bucket {self.bucket!r} does not exist at {where}") from exc
        except AccessDenied as exc:
            raise AccessDenied(f"access to bucket {self.bucket!r} at {where} denied: check "
                               "the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                               "AWS_PROFILE)") from exc
        except TransientStoreError as exc:
            raise StoreUnavailable(f"cannot reach {where}: {exc}") from exc

    def head(self, key: str) -> ObjectInfo:
        if obstore_can_address(key):
            # ~10x less CPU than botocore's HEAD: lookups and listings are made of these.
            result = self._obcall(f"HEAD {key}", lambda: obstore.get(
                self._obstore(), key, options={"head": True}))
            return _obstore_info(key, result.meta, result.attributes)
        resp = self._call(f"HEAD {key}",
                          lambda: self._client.head_object(Bucket=self.bucket, Key=key))
        return ObjectInfo(key, int(resp.get("ContentLength", 0)), str(resp.get("ETag", "")),
                          _mtime_ns(resp.get("LastModified")),
                          {k.lower(): v for k, v in resp.get("Metadata", {}).items()},
                          str(resp.get("ContentType", "")))

    def get(self, key: str) -> bytes:
        if obstore_can_address(key):
            data = bytes(self._obcall(f"GET {key}",
                                      lambda: obstore.get(self._obstore(), key).bytes()))
        else:
            # The body is read inside the attempt: a connection lost while it flows is
            # retried like any other failure.
            data = self._call(f"GET {key}", lambda: bytes(
                self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()))
        self._account.counters.received(len(data))
        return data

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        if end <= start:
            return b""
        if obstore_can_address(key):
            options: dict[str, Any] = {"range": (start, end)}
            if etag:
                options["if_match"] = etag
            data = bytes(self._obcall(
                f"GET {key} [{start}:{end})",
                lambda: obstore.get(self._obstore(), key, options=options).bytes()))  # type: ignore[arg-type]
        else:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                      "Range": f"bytes={start}-{end - 1}"}
            if etag:
                kwargs["IfMatch"] = etag
            data = self._call(f"GET {key} [{start}:{end})", lambda: bytes(
                self._client.get_object(**kwargs)["Body"].read()))
        self._account.counters.received(len(data))
        return data

    def read_into(self, key: str, start: int, end: int, sink: Sink,
                  etag: str | None = None) -> None:
        if end <= start:
            return
        position = start
        counters = self._account.counters

        def give(chunk: Any) -> None:
            nonlocal position
            view = memoryview(chunk)
            try:
                sink(position, view)
            except BaseException as exc:
                raise _SinkFailed(exc) from exc
            position += len(view)
            counters.received(len(view))

        def check_complete() -> None:
            if position != end:  # a body cut short: the rest is asked for again
                raise TransientStoreError(f"GET {key}: the body ended at {position}, "
                                          f"short of {end}")

        def with_obstore() -> None:
            options: dict[str, Any] = {"range": (position, end)}
            if etag:
                options["if_match"] = etag
            result = obstore.get(self._obstore(), key, options=options)  # type: ignore[arg-type]
            for chunk in result.stream(min_chunk_size=_READ_CHUNK):
                give(chunk)
            check_complete()

        def with_botocore() -> None:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                      "Range": f"bytes={position}-{end - 1}"}
            if etag:
                kwargs["IfMatch"] = etag
            for chunk in self._client.get_object(**kwargs)["Body"].iter_chunks(_READ_CHUNK):
                give(chunk)
            check_complete()

        what = f"GET {key} [{start}:{end})"
        try:
            if obstore_can_address(key):
                self._obcall(what, with_obstore)
            else:
                self._call(what, with_botocore)
        except _SinkFailed as exc:
            raise exc.error from None

    def download(self, key: str, dest_fd: int, etag: str | None = None) -> ObjectInfo:
        def fetch() -> ObjectInfo:
            options: dict[str, Any] = {"if_match": etag} if etag else {}
            result = obstore.get(self._obstore(), key, options=options)  # type: ignore[arg-type]
            offset = 0
            for chunk in result.stream(min_chunk_size=8 * _MIB):
                write_at(dest_fd, memoryview(chunk), offset)
                offset += len(chunk)
                self._account.counters.received(len(chunk))
            info = _obstore_info(key, result.meta, result.attributes)
            if offset != info.size:  # a body cut short must not pass for the object
                raise TransientStoreError(f"GET {key}: {offset} of {info.size} bytes")
            return info

        if obstore_can_address(key):
            return self._obcall(f"GET {key}", fetch)
        data = self.get(key)
        write_at(dest_fd, data, 0)
        return self.head(key)

    def put(self, key: str, data: bytes, metadata: Mapping[str, str],
            content_type: str = "") -> str:
        if obstore_can_address(key):
            etag = self._obput(key, lambda: data, metadata, content_type, multipart=False)
            self._account.counters.sent(len(data))
            return etag
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": data,
                                  "Metadata": dict(metadata), "ContentMD5": _content_md5(data)}
        if content_type:
            kwargs["ContentType"] = content_type
        resp = self._call(f"PUT {key}", lambda: self._client.put_object(**kwargs))
        self._account.counters.sent(len(data))
        return str(resp.get("ETag", ""))

    def upload(self, key: str, source_fd: int, size: int, metadata: Mapping[str, str],
               content_type: str = "") -> str:
        if size <= self._account.part_size or not obstore_can_address(key):
            return self.put(key, read_exactly(source_fd, 0, size), metadata, content_type)
        # Read by offset from the descriptor already open: the file is not opened again.
        etag = self._obput(key, lambda: read_chunks(source_fd, size, self._account.part_size),
                           metadata, content_type, multipart=True)
        self._account.counters.sent(size)
        return etag

    def _obput(self, key: str, body: Callable[[], bytes | Iterator[bytes]],
               metadata: Mapping[str, str], content_type: str, *, multipart: bool) -> str:
        """``body`` makes the bytes anew for every attempt: a retry must not get an
        iterator that the failed attempt consumed."""
        attributes: dict[str, str] = dict(metadata)
        if content_type:
            attributes["Content-Type"] = content_type
        # A multipart upload becomes the object only when it completes: until then (and
        # for ever, if this process dies first) readers get the old object whole.
        resp = self._obcall(f"PUT {key}", lambda: obstore.put(
            self._obstore(), key, body(), attributes=attributes, use_multipart=multipart,
            chunk_size=self._account.part_size,
            max_concurrency=self._account.upload_concurrency))
        return str(resp["e_tag"] or "")

    @property
    def part_size(self) -> int:
        return self._account.part_size

    def create_upload(self, key: str, metadata: Mapping[str, str],
                      content_type: str = "") -> str:
        create: dict[str, Any] = {"Bucket": self.bucket, "Key": key,
                                  "Metadata": dict(metadata)}
        if content_type:
            create["ContentType"] = content_type
        upload_id = str(self._call(f"PUT {key} (create multipart)",
                                   lambda: self._client.create_multipart_upload(**create)
                                   )["UploadId"])
        if self._account.upload_log is not None:
            self._account.upload_log.started(self.bucket, key, upload_id)
        return upload_id

    def upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        resp = self._call(f"PUT {key} part {number}", lambda: self._client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data,
            ContentMD5=_content_md5(data)))
        self._account.counters.sent(len(data))
        return str(resp["ETag"])

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str,
                  source_etag: str, start: int, end: int) -> str:
        resp = self._call(f"COPY {source_key} [{start}:{end}) -> {key}",
                          lambda: self._account.patient_client.upload_part_copy(
                              Bucket=self.bucket, Key=key, UploadId=upload_id,
                              PartNumber=number,
                              CopySource={"Bucket": self.bucket, "Key": source_key},
                              CopySourceRange=f"bytes={start}-{end - 1}",
                              CopySourceIfMatch=source_etag))
        return str(resp["CopyPartResult"]["ETag"])

    def complete_upload(self, key: str, upload_id: str,
                        parts: Sequence[tuple[int, str]]) -> str:
        done = [{"PartNumber": number, "ETag": etag} for number, etag in parts]
        expected = _multipart_etag([etag for _, etag in parts])

        def complete() -> Any:
            try:
                return self._account.patient_client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": done})
            except botocore.exceptions.ClientError as exc:
                if (self._level() == 0 or _error_code(exc) != "NoSuchUpload"
                        or expected is None):
                    raise
                # An earlier attempt completed it and its answer was lost on the way:
                # done, if the object is the one those parts make.
                head = self._client.head_object(Bucket=self.bucket, Key=key)
                if str(head.get("ETag", "")).strip('"') != expected:
                    raise
                return head

        resp = self._call(f"PUT {key} (complete multipart)", complete)
        self._ended(upload_id)
        return str(resp.get("ETag", ""))

    def _ended(self, upload_id: str) -> None:
        if self._account.upload_log is not None:
            self._account.upload_log.ended(upload_id)

    def abort_upload(self, key: str, upload_id: str) -> None:
        def abort() -> None:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                    UploadId=upload_id)
            except botocore.exceptions.ClientError as exc:
                # Gone already: an earlier attempt whose answer was lost aborted it.
                if self._level() == 0 or _error_code(exc) != "NoSuchUpload":
                    raise

        self._call(f"DELETE {key} (abort multipart)", abort)
        self._ended(upload_id)

    def copy(self, src_key: str, dst_key: str, metadata: Mapping[str, str] | None = None,
             content_type: str = "") -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": dst_key,
                                  "CopySource": {"Bucket": self.bucket, "Key": src_key}}
        if metadata is not None:
            kwargs["Metadata"] = dict(metadata)
            kwargs["MetadataDirective"] = "REPLACE"
            if content_type:
                kwargs["ContentType"] = content_type
        # Single CopyObject works to 5 GiB; beyond that S3 needs UploadPartCopy.
        resp = self._call(f"COPY {src_key} -> {dst_key}",
                          lambda: self._account.patient_client.copy_object(**kwargs))
        return str(resp.get("CopyObjectResult", {}).get("ETag", ""))

    def delete(self, key: str) -> None:
        if obstore_can_address(key):
            self._obcall(f"DELETE {key}", lambda: obstore.delete(self._obstore(), key))
            return
        self._call(f"DELETE {key}",
                   lambda: self._client.delete_object(Bucket=self.bucket, Key=key))

    def delete_many(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = keys[i:i + 1000]
            request: dict[str, Any] = {"Objects": [{"Key": k} for k in batch], "Quiet": True}

            def delete_batch(r: dict[str, Any] = request) -> Any:
                return self._account.patient_client.delete_objects(Bucket=self.bucket,
                                                                   Delete=r)

            resp = self._call(f"DELETE {len(batch)} keys", delete_batch)
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(f"DELETE {first.get('Key')}: {first.get('Code')} "
                                 f"{first.get('Message', '')}")

    def _pages(self, prefix: str, delimiter: str | None,
               max_keys: int | None) -> Iterator[dict[str, Any]]:
        """Pages of the listing, up to ``max_keys`` entries in all (S3 sends at most 1000
        a page)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        remaining = max_keys
        while True:
            if remaining is not None:
                kwargs["MaxKeys"] = min(remaining, 1000)
            page = self._call(f"LIST {prefix!r}",
                              lambda: self._client.list_objects_v2(**kwargs))
            yield page
            if remaining is not None:
                remaining -= len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
            token = page.get("NextContinuationToken")
            if (not page.get("IsTruncated") or not token
                    or (remaining is not None and remaining <= 0)):
                return
            kwargs["ContinuationToken"] = token

    @staticmethod
    def _summary(obj: dict[str, Any]) -> ObjectInfo:
        # To the second, as a HEAD says it (an HTTP date): the same object must show the
        # same time however it was found, or the kernel takes it for changed (and drops
        # its page cache) and versions never match.
        seconds = _mtime_ns(obj.get("LastModified")) // 1_000_000_000
        return ObjectInfo(str(obj["Key"]), int(obj.get("Size", 0)), str(obj.get("ETag", "")),
                          seconds * 1_000_000_000, has_metadata=False)

    def has_keys_under(self, prefix: str) -> bool:
        if prefix.endswith("/") and obstore_can_address(prefix[:-1]):
            # obstore lists by path segments and mangles the keys it returns (a marker
            # 'p/' comes back as 'p'), which does not matter for a yes/no answer.
            def first_page() -> bool:
                for chunk in obstore.list(self._obstore(), prefix=prefix[:-1], chunk_size=1):
                    return len(chunk) > 0
                return False
            return self._obcall(f"LIST {prefix!r}", first_page)
        return bool(self.list(prefix, None, max_keys=1).objects)

    def list(self, prefix: str, delimiter: str | None = "/", max_keys: int | None = None
             ) -> ListResult:
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        for page in self._pages(prefix, delimiter, max_keys):
            objects.extend(self._summary(o) for o in page.get("Contents", []))
            prefixes.extend(str(p["Prefix"]) for p in page.get("CommonPrefixes", []))
            truncated = bool(page.get("IsTruncated"))
        return ListResult(objects, prefixes, truncated)

    def iter_keys(self, prefix: str) -> Iterator[ObjectInfo]:
        for page in self._pages(prefix, None, None):
            for obj in page.get("Contents", []):
                yield self._summary(obj)


# Server-side work (copies, completing an upload, deleting 1000 keys) may keep a
# response waiting with no byte flowing for as long as it takes: not a stall.
PATIENT_TIMEOUT = 300.0
MAX_STALL_TIMEOUT = 120.0


class S3Account:
    def __init__(self, config: S3Config, *, part_size: int = 8 * _MIB,
                 upload_concurrency: int = 8, retry: RetryPolicy | None = None,
                 max_connections: int = 64, stall_timeout: float = 2.0) -> None:
        """``stall_timeout``: seconds a request may go without a byte arriving (before
        the answer begins, or between its pieces) before it is taken for stalled and
        asked again."""
        self.config = config
        self.part_size = part_size
        self.upload_concurrency = upload_concurrency
        self.retry = retry or RetryPolicy()
        self.stall_timeout = stall_timeout
        self._max_connections = max_connections
        self._clients: dict[float, Any] = {}
        self._stores: dict[str, S3ObjectStore] = {}
        self._lock = threading.Lock()
        self.counters = RequestCounters()
        self.upload_log: UploadLog | None = None
        self.client = self.client_for(self.stall_timeout_for(0))
        self.patient_client = self.client_for(PATIENT_TIMEOUT)

    def keep_upload_log(self, directory: Path) -> int:
        if self.upload_log is not None:
            return 0  # one log per account, whichever engine asked first
        endpoint = self.config.endpoint or f"aws:{self.config.region}"

        def abort(upload: Unfinished) -> None:
            # NoSuch...: completed, aborted or aged out already; or its bucket is gone.
            with contextlib.suppress(NoSuchKey, NoSuchBucket):
                self.bucket(upload.bucket).abort_upload(upload.key, upload.upload_id)

        aborted = abort_left_behind(directory, endpoint, abort)
        self.upload_log = UploadLog(directory, endpoint)
        return aborted

    def stall_timeout_for(self, attempt: int) -> float:
        """Every second retry waits four times longer: a store that is slow, not stalled,
        still gets through (2, 2, 8, 8, 32, 32 s by default)."""
        return min(self.stall_timeout * float(4 ** (attempt // 2)),
                   max(self.stall_timeout, MAX_STALL_TIMEOUT))

    def client_for(self, read_timeout: float) -> Any:
        """The botocore client whose socket reads give up after ``read_timeout``."""
        with self._lock:
            if read_timeout not in self._clients:
                self._clients[read_timeout] = self._make_client(read_timeout)
            return self._clients[read_timeout]

    def _make_client(self, read_timeout: float) -> Any:
        config = self.config
        return explicit_session().create_client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            aws_session_token=config.session_token,
            config=botocore.config.Config(
                s3={"addressing_style": "path" if config.path_style else "virtual"},
                retries={"total_max_attempts": 1},
                max_pool_connections=self._max_connections,
                connect_timeout=5,
                read_timeout=read_timeout,
                # Newer botocore adds CRC checksums some S3-compatible stores reject.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def make_obstore(self, bucket: str, read_timeout: float | None = None) -> _ObStore:
        c = self.config
        stall = read_timeout or self.stall_timeout
        kwargs: dict[str, Any] = {
            "region": c.region,
            "access_key_id": c.access_key,
            "secret_access_key": c.secret_key,
            "virtual_hosted_style_request": not c.path_style,
            # read_timeout: between bytes, so a large transfer that flows is never cut;
            # timeout: the whole request, a last resort.
            "client_options": {"allow_http": c.allow_http, "connect_timeout": "5s",
                               "read_timeout": f"{stall}s", "timeout": "3600s"},
            "retry_config": {"max_retries": 0},
            # The store refuses a body that does not match (a signed payload hash alone
            # is not checked by every store: SeaweedFS stored a corrupted body).
            "checksum_algorithm": "sha256",
        }
        if c.session_token:
            kwargs["token"] = c.session_token
        if c.endpoint:
            kwargs["endpoint"] = c.endpoint
        return _ObStore(bucket, **kwargs)

    def list_buckets(self) -> list[str]:
        def call() -> Any:
            try:
                resp = self.client.list_buckets()
            except Exception as exc:
                error = _botocore_error(exc, "ListBuckets")
                self.counters.request("ListBuckets",
                                      failed=isinstance(error, TransientStoreError))
                raise error from exc
            self.counters.request("ListBuckets")
            return resp
        resp = self.retry.call("ListBuckets", call)
        return sorted(str(b["Name"]) for b in resp.get("Buckets", []))

    def bucket(self, name: str) -> S3ObjectStore:
        with self._lock:
            if name not in self._stores:
                self._stores[name] = S3ObjectStore(self, name)
            return self._stores[name]
