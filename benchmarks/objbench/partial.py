"""The floor for changing part of an existing object: S3 has no partial write, so the
least a client can do is a multipart upload that copies the unchanged ranges from the
object onto itself on the server (UploadPartCopy, guarded by the ETag it started from)
and uploads only the part that changed. Every part but the last must be at least 5 MiB,
so the changed bytes go up inside one whole part-sized block (read first with a ranged
GET)."""

from __future__ import annotations

from typing import Any

from objbench.config import MIB

PART = 8 * MIB  # objmount's default part_size (the part_size=8M option of `objmount mount`)
MIN_PART = 5 * MIB  # S3's minimum for every part but the last


class Upload:
    """One multipart upload of ``key`` built from copied and uploaded parts."""

    def __init__(self, client: Any, bucket: str, key: str, etag: str) -> None:
        self.client, self.bucket, self.key, self.etag = client, bucket, key, etag
        self.id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self.parts: list[dict[str, Any]] = []

    def copy(self, start: int, end: int) -> None:
        """Part: bytes [start, end) of the object as it was (server-side copy)."""
        result = self.client.upload_part_copy(
            Bucket=self.bucket, Key=self.key, UploadId=self.id,
            PartNumber=len(self.parts) + 1,
            CopySource={"Bucket": self.bucket, "Key": self.key},
            CopySourceRange=f"bytes={start}-{end - 1}", CopySourceIfMatch=self.etag)
        self.parts.append({"PartNumber": len(self.parts) + 1,
                           "ETag": result["CopyPartResult"]["ETag"]})

    def upload(self, data: bytes) -> None:
        result = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.id,
                                         PartNumber=len(self.parts) + 1, Body=data)
        self.parts.append({"PartNumber": len(self.parts) + 1, "ETag": result["ETag"]})

    def complete(self) -> str:
        result = self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self.key, UploadId=self.id,
            MultipartUpload={"Parts": self.parts})
        return str(result["ETag"])

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.id)


def head(client: Any, bucket: str, key: str) -> tuple[int, str]:
    """Size and ETag (what a file system knows from having looked the file up)."""
    result = client.head_object(Bucket=bucket, Key=key)
    return int(result["ContentLength"]), str(result["ETag"])


def run(upload: Upload, build: list[tuple[str, int, int, bytes]]) -> str:
    """Add the parts in order (("copy", start, end, b"") or ("upload", 0, 0, data)),
    complete; abort if anything fails."""
    try:
        for kind, start, end, data in build:
            if kind == "copy":
                upload.copy(start, end)
            else:
                upload.upload(data)
        return upload.complete()
    except BaseException:
        upload.abort()
        raise


def overwrite(client: Any, bucket: str, key: str, offset: int, data: bytes) -> str:
    """Replace len(data) bytes at ``offset``: copy the blocks before and after, upload
    the PART-aligned block holding the change."""
    size, etag = head(client, bucket, key)
    start = offset // PART * PART
    end = min(max(start + PART, -(-(offset + len(data)) // PART) * PART), size)
    block = bytearray(client.get_object(Bucket=bucket, Key=key, IfMatch=etag,
                                        Range=f"bytes={start}-{end - 1}")["Body"].read())
    block[offset - start:offset - start + len(data)] = data
    build: list[tuple[str, int, int, bytes]] = []
    if start > 0:
        build.append(("copy", 0, start, b""))
    build.append(("upload", 0, 0, bytes(block)))
    if end < size:
        build.append(("copy", end, size, b""))
    return run(Upload(client, bucket, key, etag), build)


def append(client: Any, bucket: str, key: str, data: bytes) -> str:
    """Copy the whole object as the first part, upload ``data`` as the last."""
    size, etag = head(client, bucket, key)
    if size < MIN_PART:
        raise ValueError(f"{key}: {size} bytes is below the {MIN_PART}-byte minimum part")
    return run(Upload(client, bucket, key, etag), [("copy", 0, size, b""),
                                                   ("upload", 0, 0, data)])


def copy_whole(client: Any, bucket: str, key: str) -> str:
    """The object copied onto itself in one UploadPartCopy: the server-side copy that a
    partial write cannot avoid."""
    size, etag = head(client, bucket, key)
    return run(Upload(client, bucket, key, etag), [("copy", 0, size, b"")])
