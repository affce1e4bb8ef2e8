"""Where a directory's own attributes (mode, owner, times) are stored.

S3 has no directories: an empty ``dir/`` marker of Content-Type application/x-directory
stands for one, and its user metadata carries the attributes, as s3fs writes them. Some
stores keep no user metadata on such a marker (SeaweedFS, whose markers are directories of
its own). There a directory is written in older s3fs's form instead: an empty object named
as the directory without the slash, of the same Content-Type and with the metadata, which
s3fs also reads as a directory and SeaweedFS keeps (as the attributes of its directory).
Which form a bucket needs is found once, the first time a directory is written to it: a
marker is written, read back and deleted.
"""

from __future__ import annotations

import logging
import secrets
import threading

from objmount.core import metadata
from objmount.core.metadata import DIR_CONTENT_TYPE, Attr
from objmount.core.names import dir_prefix
from objmount.store.base import ObjectStore

log = logging.getLogger(__name__)

FORMS = ("auto", "marker", "object")
_PROBE_NAME = ".objmount-probe-"


class DirectoryWriter:
    def __init__(self, form: str = "auto") -> None:
        if form not in FORMS:
            raise ValueError(f"directory form {form!r}: one of {', '.join(FORMS)}")
        self.form = form
        self._lock = threading.Lock()
        self._markers_keep_metadata: dict[str, bool] = {}

    def as_objects(self, store: ObjectStore, near: str) -> bool:
        """Whether directories in this bucket are written as objects of their own name;
        ``near``: a directory key where a probe may be written (the mount may be
        confined to a prefix)."""
        if self.form != "auto":
            return self.form == "object"
        with self._lock:
            kept = self._markers_keep_metadata.get(store.bucket)
            if kept is None:
                kept = self._probe(store, near)
                self._markers_keep_metadata[store.bucket] = kept
            return not kept

    @staticmethod
    def _probe(store: ObjectStore, near: str) -> bool:
        key = dir_prefix(near) + _PROBE_NAME + secrets.token_hex(6) + "/"
        store.put(key, b"", {"probe": "1"}, DIR_CONTENT_TYPE)
        try:
            kept = store.head(key).metadata.get("probe") == "1"
        finally:
            store.delete(key)
        log.info("bucket %s %s user metadata on directory markers: directories are "
                 "written as %s", store.bucket, "keeps" if kept else "drops",
                 "dir/ markers" if kept else "objects of their own name (older s3fs form)")
        return kept

    def write(self, store: ObjectStore, key: str, attr: Attr, *,
              as_object: bool | None = None) -> bool:
        """Store directory ``key`` with ``attr``, in the form the bucket needs (or the one
        asked for); True: as an object of its own name."""
        if as_object is None:
            as_object = self.as_objects(store, key.rpartition("/")[0])
        store.put(key if as_object else dir_prefix(key), b"", metadata.encode(attr),
                  DIR_CONTENT_TYPE)
        return as_object
