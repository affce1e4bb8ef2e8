"""The engine on the in-memory store: no kernel, no server, fast."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from objmount.core.engine import RENAME_NOREPLACE, Engine, EngineOptions, MountRoot
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Attr, Defaults
from objmount.errors import FsError, StoreUnavailable
from objmount.store.memory import MemoryAccount, MemoryStore

UID, GID = 1000, 1000


@pytest.fixture
def account() -> MemoryAccount:
    return MemoryAccount("b", "other")


@pytest.fixture
def store(account: MemoryAccount) -> MemoryStore:
    return account.stores["b"]


def make_engine(account: MemoryAccount, tmp_path: Path, root: MountRoot | None = None,
                **kw: object) -> Engine:
    options = EngineOptions(Defaults(UID, GID), tmp_path / "cache", **kw)  # type: ignore[arg-type]
    return Engine(account, root or MountRoot("b"), options)


@pytest.fixture
def engine(account: MemoryAccount, tmp_path: Path) -> Engine:
    # TTL 0: every lookup asks the store, so tests see what the store holds.
    return make_engine(account, tmp_path, attr_ttl=0.0, negative_ttl=0.0)


def slow_down(monkeypatch: pytest.MonkeyPatch, store: MemoryStore, method: str,
              seconds: float) -> None:
    """Make every call of ``store.<method>`` take ``seconds`` longer."""
    real = getattr(store, method)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, method, slow)


def write_file(engine: Engine, parent: int, name: str, data: bytes, mode: int = 0o644) -> Attr:
    fh, attr = engine.create(parent, name.encode(), mode, os.O_WRONLY | os.O_CREAT, UID, GID)
    engine.write(fh, 0, data)
    engine.flush(fh)
    engine.release(fh)
    return engine.getattr(attr.ino)


def read_file(engine: Engine, ino: int) -> bytes:
    fh = engine.open(ino, os.O_RDONLY)
    try:
        return engine.read(fh, 0, 1 << 30)
    finally:
        engine.release(fh)


def errno_of(fn: object, *args: object, **kwargs: object) -> int:
    with pytest.raises(FsError) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return info.value.errno


def names(engine: Engine, ino: int) -> list[str]:
    fh = engine.opendir(ino)
    try:
        return [e.name for e in engine.readdir(fh, 0)]
    finally:
        engine.releasedir(fh)


# -- one file is one object -------------------------------------------------------------
def test_create_stores_one_object_with_s3fs_metadata(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "hello.txt", b"hello", 0o640)
    assert store.get("hello.txt") == b"hello"
    meta = store.head("hello.txt").metadata
    assert meta["mode"] == str(stat.S_IFREG | 0o640)
    assert (meta["uid"], meta["gid"]) == (str(UID), str(GID))
    assert int(meta["mtime"].split(".")[0]) == attr.mtime_ns // 10**9
    assert list(store._objects) == ["hello.txt"]


def test_nothing_is_stored_before_close(engine: Engine, store: MemoryStore) -> None:
    fh, _ = engine.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, UID, GID)
    engine.write(fh, 0, b"abc")
    assert "f" not in store._objects
    engine.flush(fh)
    assert store.get("f") == b"abc"
    engine.release(fh)


def test_empty_file_is_created_on_close(engine: Engine, store: MemoryStore) -> None:
    fh, _ = engine.create(ROOT_INO, b"empty", 0o644, os.O_WRONLY, UID, GID)
    engine.release(fh)
    assert store.get("empty") == b""


def test_read_back_and_ranges(engine: Engine, store: MemoryStore, account: MemoryAccount,
                              tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    store.put("big", data, {})
    small_blocks = make_engine(account, tmp_path, block_size=1024 * 1024)
    ino = small_blocks.lookup(ROOT_INO, b"big").ino
    fh = small_blocks.open(ino, os.O_RDONLY)
    before = dict(store.requests)
    assert small_blocks.read(fh, 2 * 1024 * 1024 + 5, 10) == data[2 * 1024 * 1024 + 5:][:10]
    # A small random read: only its bytes, with one request.
    assert store.requests["get_range"] == before.get("get_range", 0) + 1
    assert store.requests.get("read_into", 0) == before.get("read_into", 0)
    assert small_blocks.read(fh, 2 * 1024 * 1024 + 5, 1024 * 1024) == \
        data[2 * 1024 * 1024 + 5:][:1024 * 1024]
    assert store.requests["read_into"] == before.get("read_into", 0) + 1  # its block only
    assert small_blocks.read(fh, 0, len(data) + 100) == data
    assert small_blocks.read(fh, len(data), 10) == b""
    small_blocks.release(fh)


def test_overwrite_append_truncate(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"0123456789")
    fh = engine.open(attr.ino, os.O_WRONLY)
    engine.write(fh, 2, b"ab")
    engine.release(fh)
    assert store.get("f") == b"01ab456789"
    fh = engine.open(attr.ino, os.O_WRONLY | os.O_APPEND)
    engine.write(fh, 0, b"XY")  # O_APPEND: the offset is ignored
    engine.release(fh)
    assert store.get("f") == b"01ab456789XY"
    fh = engine.open(attr.ino, os.O_WRONLY | os.O_TRUNC)
    engine.write(fh, 0, b"new")
    engine.release(fh)
    assert store.get("f") == b"new"
    engine.setattr(attr.ino, size=1)
    assert store.get("f") == b"n"
    engine.setattr(attr.ino, size=4)
    assert store.get("f") == b"n\0\0\0"
    assert engine.getattr(attr.ino).size == 4


def test_ftruncate_on_open_handle_waits_for_close(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"0123456789")
    fh = engine.open(attr.ino, os.O_RDWR)
    engine.setattr(attr.ino, size=3, fh=fh)
    assert store.get("f") == b"0123456789"
    assert engine.getattr(attr.ino).size == 3
    engine.release(fh)
    assert store.get("f") == b"012"


# -- close-to-open consistency ----------------------------------------------------------
def test_open_revalidates(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"old")
    fh = engine.open(attr.ino, os.O_RDONLY)
    assert engine.read(fh, 0, 10) == b"old"
    store.put("f", b"changed by someone else", {})
    fh2 = engine.open(attr.ino, os.O_RDONLY)  # a new open sees the new object
    assert engine.read(fh2, 0, 100) == b"changed by someone else"
    engine.release(fh)
    engine.release(fh2)


def test_object_replaced_while_reading_is_estale(engine: Engine, store: MemoryStore,
                                                 account: MemoryAccount, tmp_path: Path) -> None:
    store.put("f", os.urandom(3 * 1024 * 1024), {})
    eng = make_engine(account, tmp_path, block_size=1024 * 1024)
    ino = eng.lookup(ROOT_INO, b"f").ino
    fh = eng.open(ino, os.O_RDONLY)
    eng.read(fh, 0, 10)
    store.put("f", os.urandom(3 * 1024 * 1024), {})
    # Mixing blocks of two versions would be silent corruption: refuse instead.
    with pytest.raises(Exception) as info:
        eng.read(fh, 2 * 1024 * 1024, 10)
    from objmount.errors import to_errno
    assert to_errno(info.value) == errno.ESTALE
    eng.release(fh)


def test_a_descriptor_opened_before_a_newer_version_gets_estale(
        store: MemoryStore, account: MemoryAccount, tmp_path: Path) -> None:
    """Another open on this mount found the object replaced and started the cache file
    over with the new version: the descriptor opened before must not read the new bytes
    as if they were its own version's."""
    old, new = b"A" * 3000, b"B" * 3000
    store.put("f", old, {})
    eng = make_engine(account, tmp_path, block_size=1024, whole_file_size=0)
    ino = eng.lookup(ROOT_INO, b"f").ino
    first = eng.open(ino, os.O_RDONLY)
    assert eng.read(first, 0, 1000) == old[:1000]
    store.put("f", new, {})
    second = eng.open(ino, os.O_RDONLY)
    assert eng.read(second, 0, 3000) == new
    from objmount.errors import to_errno
    for call in (lambda: eng.read(first, 1000, 1000), lambda: eng.fill(first, 0, 3000)):
        with pytest.raises(FsError) as info:
            call()
        assert to_errno(info.value) == errno.ESTALE
    assert eng.read_nowait(first, 0, 100) is None  # the worker path says ESTALE
    eng.release(first)
    eng.release(second)


def test_closing_a_reader_stores_nothing_of_a_writer_s_unfinished_file(
        engine: Engine, store: MemoryStore) -> None:
    write_file(engine, ROOT_INO, "f", b"old")
    ino = engine.lookup(ROOT_INO, b"f").ino
    writer = engine.open(ino, os.O_WRONLY | os.O_TRUNC)
    reader = engine.open(ino, os.O_RDONLY)
    engine.write(writer, 0, b"half")
    engine.flush(reader)  # close() of the reader
    engine.release(reader)
    assert store.get("f") == b"old"
    engine.write(writer, 4, b" done")
    engine.flush(writer)
    engine.release(writer)
    assert store.get("f") == b"half done"
    # fsync through a read-only descriptor stores what is there.
    writer = engine.open(ino, os.O_WRONLY)
    reader = engine.open(ino, os.O_RDONLY)
    engine.write(writer, 0, b"HALF")
    engine.fsync(reader)
    assert store.get("f") == b"HALF done"
    engine.release(reader)
    engine.release(writer)


def test_failed_upload_is_eio_and_kept(engine: Engine, store: MemoryStore,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> str:
        raise StoreUnavailable("server down")

    fh, _ = engine.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, UID, GID)
    engine.write(fh, 0, b"precious")
    monkeypatch.setattr(store, "upload", refuse)
    from objmount.errors import to_errno
    with pytest.raises(StoreUnavailable) as info:
        engine.flush(fh)
    assert to_errno(info.value) == errno.EIO
    engine.release(fh)  # fails again: the bytes go to the unsaved directory
    kept = list(engine.unsaved_dir.iterdir())
    assert len(kept) == 1 and kept[0].read_bytes() == b"precious"
    assert "f" not in store._objects


# -- directories ------------------------------------------------------------------------
def test_mkdir_writes_marker_and_empty_dir_persists(engine: Engine, store: MemoryStore) -> None:
    attr = engine.mkdir(ROOT_INO, b"d", 0o750, UID, GID)
    assert stat.S_ISDIR(attr.mode)
    marker = store.head("d/")
    assert marker.content_type == "application/x-directory"
    assert marker.metadata["mode"] == str(stat.S_IFDIR | 0o750)
    assert names(engine, ROOT_INO) == ["d"]
    assert errno_of(engine.mkdir, ROOT_INO, b"d", 0o755, UID, GID) == errno.EEXIST


def test_directory_metadata_round_trips_through_marker(account: MemoryAccount, tmp_path: Path
                                                       ) -> None:
    eng = make_engine(account, tmp_path)
    d = eng.mkdir(ROOT_INO, b"d", 0o700, 42, 43)
    eng.setattr(d.ino, mtime_ns=1_600_000_000 * 10**9)
    fresh = make_engine(account, tmp_path / "2")
    again = fresh.lookup(ROOT_INO, b"d")
    assert stat.S_IMODE(again.mode) == 0o700
    assert (again.uid, again.gid) == (42, 43)
    assert again.mtime_ns == 1_600_000_000 * 10**9


def test_rmdir(engine: Engine, store: MemoryStore) -> None:
    d = engine.mkdir(ROOT_INO, b"d", 0o755, UID, GID)
    write_file(engine, d.ino, "f", b"x")
    assert errno_of(engine.rmdir, ROOT_INO, b"d") == errno.ENOTEMPTY
    engine.unlink(d.ino, b"f")
    engine.rmdir(ROOT_INO, b"d")
    assert store._objects == {}
    assert errno_of(engine.lookup, ROOT_INO, b"d") == errno.ENOENT


def test_unlink_last_file_keeps_implicit_directory(engine: Engine, store: MemoryStore) -> None:
    store.put("implicit/only", b"x", {})
    d = engine.lookup(ROOT_INO, b"implicit")
    engine.unlink(d.ino, b"only")
    assert "implicit/" in store._objects  # a marker now holds the directory
    assert names(engine, ROOT_INO) == ["implicit"]


def test_unlink_errors(engine: Engine) -> None:
    engine.mkdir(ROOT_INO, b"d", 0o755, UID, GID)
    assert errno_of(engine.unlink, ROOT_INO, b"d") == errno.EISDIR
    assert errno_of(engine.unlink, ROOT_INO, b"missing") == errno.ENOENT
    write_file(engine, ROOT_INO, "f", b"")
    assert errno_of(engine.rmdir, ROOT_INO, b"f") == errno.ENOTDIR


def test_readdir_is_stable_and_complete(engine: Engine, store: MemoryStore) -> None:
    for i in range(50):
        store.put(f"dir/f{i:03d}", b"x", {})
    store.put("dir/sub/deep", b"x", {})
    d = engine.lookup(ROOT_INO, b"dir")
    fh = engine.opendir(d.ino)
    first = engine.readdir(fh, 0)
    assert len(first) == 51
    # Removing entries mid-listing must not shift cookies.
    for e in first[:10]:
        if e.name.startswith("f"):
            engine.unlink(d.ino, e.name.encode())
    rest = engine.readdir(fh, first[9].offset)
    assert [e.name for e in rest] == [e.name for e in first[10:]]
    engine.releasedir(fh)


# -- odd keys ---------------------------------------------------------------------------
def test_odd_keys_are_hidden_not_mangled(engine: Engine, store: MemoryStore) -> None:
    for key in ["ok", "a//b", "./x", "../escape", "d/./y", "n" * 300, "both", "both/child",
                "m/", "dm/", "dm/inside"]:
        store.put(key, b"data", {})
    store.put("withdata/", b"marker with bytes", {})
    shown = names(engine, ROOT_INO)
    assert shown == sorted(["ok", "a", "both", "d", "m", "dm", "withdata"])
    assert names(engine, engine.lookup(ROOT_INO, b"a").ino) == []  # 'a//b' has no name
    both = engine.lookup(ROOT_INO, b"both")
    assert stat.S_ISDIR(both.mode)  # a prefix wins over an object of the same name
    assert names(engine, both.ino) == ["child"]
    assert names(engine, engine.lookup(ROOT_INO, b"d").ino) == []
    wd = engine.lookup(ROOT_INO, b"withdata")
    assert stat.S_ISDIR(wd.mode) and names(engine, wd.ino) == []
    for bad in (b".", b"..", b"a/b"):
        assert errno_of(engine.create, ROOT_INO, bad, 0o644, 0, UID, GID) == errno.EINVAL


def test_prefix_mount_cannot_escape(account: MemoryAccount, store: MemoryStore,
                                    tmp_path: Path) -> None:
    store.put("outside", b"secret", {})
    store.put("p/q/inside", b"x", {})
    eng = make_engine(account, tmp_path, MountRoot("b", "p/q"))
    assert names(eng, ROOT_INO) == ["inside"]
    assert errno_of(eng.lookup, ROOT_INO, b"outside") == errno.ENOENT
    assert errno_of(eng.create, ROOT_INO, b"..", 0o644, 0, UID, GID) == errno.EINVAL
    write_file(eng, ROOT_INO, "new", b"y")
    assert store.get("p/q/new") == b"y"


# -- rename -----------------------------------------------------------------------------
def test_rename_file_keeps_metadata(engine: Engine, store: MemoryStore) -> None:
    write_file(engine, ROOT_INO, "a", b"data", 0o600)
    engine.rename(ROOT_INO, b"a", ROOT_INO, b"b")
    assert "a" not in store._objects
    assert store.get("b") == b"data"
    assert store.head("b").metadata["mode"] == str(stat.S_IFREG | 0o600)
    write_file(engine, ROOT_INO, "c", b"c")
    assert errno_of(engine.rename, ROOT_INO, b"b", ROOT_INO, b"c", RENAME_NOREPLACE) == \
        errno.EEXIST
    engine.rename(ROOT_INO, b"b", ROOT_INO, b"c")  # replaces
    assert store.get("c") == b"data"


def test_rename_open_unstored_file(engine: Engine, store: MemoryStore) -> None:
    fh, _ = engine.create(ROOT_INO, b"tmp", 0o644, os.O_WRONLY, UID, GID)
    engine.write(fh, 0, b"payload")
    engine.rename(ROOT_INO, b"tmp", ROOT_INO, b"final")
    engine.release(fh)
    assert store.get("final") == b"payload"
    assert "tmp" not in store._objects


def test_rename_open_file_with_changed_mode(engine: Engine, store: MemoryStore) -> None:
    """rsync reopens its finished temporary read-only, fchmods it, and renames it: the
    new name gets the bytes (never fetched through this handle) and the new mode."""
    write_file(engine, ROOT_INO, "tmp", b"payload" * 1000)
    ino = engine.lookup(ROOT_INO, b"tmp").ino
    fh = engine.open(ino, os.O_RDONLY)
    engine.setattr(ino, mode=0o600, fh=fh)
    engine.rename(ROOT_INO, b"tmp", ROOT_INO, b"final")
    engine.release(fh)
    assert store.get("final") == b"payload" * 1000
    assert store.head("final").metadata["mode"] == str(stat.S_IFREG | 0o600)
    assert "tmp" not in store._objects


def test_rename_directory_moves_every_key(engine: Engine, store: MemoryStore) -> None:
    d = engine.mkdir(ROOT_INO, b"d", 0o755, UID, GID)
    sub = engine.mkdir(d.ino, b"sub", 0o755, UID, GID)
    write_file(engine, sub.ino, "f", b"deep")
    write_file(engine, d.ino, "g", b"top")
    engine.rename(ROOT_INO, b"d", ROOT_INO, b"e")
    assert sorted(store._objects) == ["e/", "e/g", "e/sub/", "e/sub/f"]
    e = engine.lookup(ROOT_INO, b"e")
    assert names(engine, e.ino) == ["g", "sub"]
    # The inode of the moved file still reads through its new key.
    f = engine.lookup(engine.lookup(e.ino, b"sub").ino, b"f")
    assert read_file(engine, f.ino) == b"deep"
    assert errno_of(engine.rename, ROOT_INO, b"e", e.ino, b"inside") == errno.EINVAL


def test_rename_dir_over_nonempty_dir_refused(engine: Engine) -> None:
    engine.mkdir(ROOT_INO, b"a", 0o755, UID, GID)
    b = engine.mkdir(ROOT_INO, b"b", 0o755, UID, GID)
    write_file(engine, b.ino, "f", b"x")
    assert errno_of(engine.rename, ROOT_INO, b"a", ROOT_INO, b"b") == errno.ENOTEMPTY
    write_file(engine, ROOT_INO, "file", b"x")
    assert errno_of(engine.rename, ROOT_INO, b"a", ROOT_INO, b"file") == errno.ENOTDIR
    assert errno_of(engine.rename, ROOT_INO, b"file", ROOT_INO, b"a") == errno.EISDIR


# -- metadata changes -------------------------------------------------------------------
def test_chmod_chown_utimens_persist(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"x")
    engine.setattr(attr.ino, mode=0o4711, uid=7, gid=8, mtime_ns=10**18, atime_ns=10**18)
    meta = store.head("f").metadata
    assert meta["mode"] == str(stat.S_IFREG | 0o4711)
    assert (meta["uid"], meta["gid"], meta["mtime"]) == ("7", "8", "1000000000")
    assert store.get("f") == b"x"  # bytes untouched


def test_metadata_set_on_open_file_goes_with_the_upload(engine: Engine,
                                                        store: MemoryStore) -> None:
    fh, attr = engine.create(ROOT_INO, b"f", 0o644, os.O_WRONLY, UID, GID)
    engine.write(fh, 0, b"x")
    engine.setattr(attr.ino, uid=5, mtime_ns=123 * 10**9, fh=fh)  # cp -a does this
    assert "f" not in store._objects
    engine.release(fh)
    meta = store.head("f").metadata
    assert (meta["uid"], meta["mtime"]) == ("5", "123")
    assert store.requests.get("copy", 0) == 0


def test_symlink(engine: Engine, store: MemoryStore) -> None:
    attr = engine.symlink(ROOT_INO, b"ln", b"../target/x", UID, GID)
    assert stat.S_ISLNK(attr.mode)
    assert store.get("ln") == b"../target/x"
    assert int(store.head("ln").metadata["mode"]) == stat.S_IFLNK | 0o777
    assert engine.readlink(attr.ino) == b"../target/x"
    again = engine.lookup(ROOT_INO, b"ln")
    assert stat.S_ISLNK(again.mode)


def test_read_only(account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    store.put("f", b"x", {})
    eng = make_engine(account, tmp_path, read_only=True)
    ino = eng.lookup(ROOT_INO, b"f").ino
    assert errno_of(eng.open, ino, os.O_WRONLY) == errno.EROFS
    assert errno_of(eng.mkdir, ROOT_INO, b"d", 0o755, 0, 0) == errno.EROFS
    assert errno_of(eng.unlink, ROOT_INO, b"f") == errno.EROFS
    assert read_file(eng, ino) == b"x"


def test_negative_cache(account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, negative_ttl=60.0)
    assert errno_of(eng.lookup, ROOT_INO, b"later") == errno.ENOENT
    asked = sum(store.requests.values())
    assert errno_of(eng.lookup, ROOT_INO, b"later") == errno.ENOENT
    assert sum(store.requests.values()) == asked  # answered from the negative cache
    write_file(eng, ROOT_INO, "later", b"x")  # our own create clears it
    assert eng.lookup(ROOT_INO, b"later").size == 1


def test_listing_is_reused_within_attr_timeout(account: MemoryAccount, store: MemoryStore,
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory listed moments ago is listed again from memory, as names are cached:
    changes made here show at once, changes made elsewhere after attr_timeout."""
    for name in ("a", "b"):
        store.put(f"d/{name}", b"x", {})
    eng = make_engine(account, tmp_path, attr_ttl=60.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    assert names(eng, d) == ["a", "b"]
    lists, heads = store.requests["list"], store.requests["head"]
    assert names(eng, d) == ["a", "b"]
    assert (store.requests["list"], store.requests["head"]) == (lists, heads)
    # Changes through this engine show at once, in the listing kept...
    write_file(eng, d, "c", b"y")
    assert names(eng, d) == ["a", "b", "c"]
    eng.unlink(d, b"a")
    assert names(eng, d) == ["b", "c"]
    eng.rename(d, b"b", ROOT_INO, b"moved", 0)
    lists = store.requests["list"]
    assert names(eng, d) == ["c"]
    assert store.requests["list"] == lists
    # ... another client's change shows once the listing is older than attr_timeout.
    store.put("d/other", b"z", {})
    assert names(eng, d) == ["c"]
    later = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert names(eng, d) == ["c", "other"]


def test_a_create_in_a_listed_directory_asks_nothing_first(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """A name a fresh listing does not show is absent: creating it costs its upload and
    no lookup request (the listing plays the negative cache)."""
    store.put("d/a", b"x", {})
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    assert names(eng, d) == ["a"]
    before = dict(store.requests)
    for i in range(10):
        write_file(eng, d, f"new{i}", b"y")
    asked = {op: n - before.get(op, 0) for op, n in store.requests.items()
             if n != before.get(op, 0)}
    assert set(asked) <= {"put", "upload"}, asked
    assert errno_of(eng.lookup, d, b"never") == errno.ENOENT
    assert store.requests.get("head", 0) == before.get("head", 0)


def test_lookups_in_a_directory_share_one_listing_of_its_names(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """The first lookup in a directory lists one page of its names; later lookups ask
    only for the attributes of what is there (a HEAD), and nothing for what is not."""
    for i in range(5):
        store.put(f"d/f{i}", b"x", {})
    store.put("d/sub/g", b"y", {})
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    store.requests.clear()
    for i in range(5):
        assert eng.lookup(d, f"f{i}".encode()).size == 1
    assert errno_of(eng.lookup, d, b"missing") == errno.ENOENT
    assert stat.S_ISDIR(eng.lookup(d, b"sub").mode)
    assert store.requests == {"list": 1, "head": 6}  # 5 files, the sub/ marker


def files_under_a_small_names_page(store: MemoryStore, monkeypatch: pytest.MonkeyPatch,
                                   files: int) -> None:
    """``d/f0``.. in the store, with names listed 3 at most for lookups."""
    import objmount.core.namespace as namespace
    monkeypatch.setattr(namespace, "_NAMES_PAGE", 3)
    for i in range(files):
        store.put(f"d/f{i}", b"x", {})


def test_a_directory_larger_than_a_page_is_asked_per_name(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    files_under_a_small_names_page(store, monkeypatch, 5)
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=5.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    assert eng.lookup(d, b"f4").size == 1  # not on the first page
    assert errno_of(eng.lookup, d, b"missing") == errno.ENOENT
    store.requests.clear()
    assert eng.lookup(d, b"f3").size == 1
    assert store.requests == {"head": 1, "list": 1}  # the object and the prefix test
    later = time.monotonic() + 10  # past negative_timeout: still not listed again
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.requests.clear()
    assert errno_of(eng.lookup, d, b"other") == errno.ENOENT
    assert store.requests == {"head": 1, "list": 1}


def test_a_file_seen_before_in_a_large_directory_is_one_head_to_look_up_again(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    files_under_a_small_names_page(store, monkeypatch, 5)
    eng = make_engine(account, tmp_path, attr_ttl=1.0, negative_ttl=5.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    eng.lookup(d, b"f4")
    later = time.monotonic() + 5  # its attributes expired; the names not listed again
    monkeypatch.setattr(time, "monotonic", lambda: later)
    store.requests.clear()
    assert eng.lookup(d, b"f4").size == 1
    assert store.requests == {"head": 1}  # no LIST of f4/ beside it


def test_a_listing_slower_than_attr_timeout_still_answers_lookups(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid from its answer: a directory that takes longer to list than attr_timeout
    is not expired on arrival."""
    for i in range(5):
        store.put(f"d/f{i}", b"x", {})
    eng = make_engine(account, tmp_path, attr_ttl=0.2, negative_ttl=0.2)
    d = eng.lookup(ROOT_INO, b"d").ino
    slow_down(monkeypatch, store, "list", 0.3)
    fh = eng.opendir(d)
    assert len(eng.readdir(fh, 0)) == 5
    eng.releasedir(fh)
    store.requests.clear()
    assert errno_of(eng.lookup, d, b"missing") == errno.ENOENT
    assert eng.lookup(d, b"f2").size == 1
    assert "list" not in store.requests


def test_a_directory_made_here_needs_no_lookups(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)
    d = eng.mkdir(ROOT_INO, b"new", 0o755, UID, GID).ino
    store.requests.clear()
    for i in range(20):
        write_file(eng, d, f"f{i}", b"z")
    asked = {op for op, n in store.requests.items() if n}
    assert asked <= {"put", "upload"} and "head" not in store.requests, store.requests


def test_a_name_created_here_is_found_after_it_is_forgotten(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """The listing learns of names made here: an inode forgotten (kernel FORGET, last
    close) is looked up again, never taken for absent."""
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)
    d = eng.mkdir(ROOT_INO, b"d", 0o755, UID, GID).ino
    assert names(eng, d) == []
    fh, attr = eng.create(d, b"f", 0o644, os.O_WRONLY | os.O_CREAT, UID, GID)
    eng.write(fh, 0, b"data")
    eng.flush(fh)
    eng.release(fh)
    eng.forget(attr.ino, 1)
    assert eng.lookup(d, b"f").size == 4


def test_a_listing_is_trusted_for_absence_no_longer_than_negative_timeout(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another client's new object is missed for at most negative_timeout, as with a
    negative lookup."""
    store.put("d/a", b"x", {})
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=2.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    assert names(eng, d) == ["a"]
    store.put("d/other", b"z", {})
    assert errno_of(eng.lookup, d, b"other") == errno.ENOENT
    later = time.monotonic() + 3
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert eng.lookup(d, b"other").size == 1


def test_all_buckets_view(account: MemoryAccount, tmp_path: Path) -> None:
    account.stores["other"].put("k", b"v", {})
    eng = make_engine(account, tmp_path, MountRoot(None))
    assert names(eng, ROOT_INO) == ["s3"]
    s3 = eng.lookup(ROOT_INO, b"s3")
    assert names(eng, s3.ino) == ["b", "other"]
    other = eng.lookup(s3.ino, b"other")
    assert read_file(eng, eng.lookup(other.ino, b"k").ino) == b"v"
    assert errno_of(eng.lookup, s3.ino, b"nosuchbucket") == errno.ENOENT
    assert errno_of(eng.mkdir, s3.ino, b"newbucket", 0o755, 0, 0) == errno.EPERM


def test_rename_across_buckets_is_exdev(account: MemoryAccount, tmp_path: Path) -> None:
    eng = make_engine(account, tmp_path, MountRoot(None))
    s3 = eng.lookup(ROOT_INO, b"s3")
    b = eng.lookup(s3.ino, b"b")
    other = eng.lookup(s3.ino, b"other")
    write_file(eng, b.ino, "f", b"x")
    assert errno_of(eng.rename, b.ino, b"f", other.ino, b"f") == errno.EXDEV


def test_failed_local_write_never_replaces_the_object(engine: Engine, store: MemoryStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"old content")
    fh = engine.open(attr.ino, os.O_WRONLY | os.O_TRUNC)
    engine.write(fh, 0, b"partial")

    def full_disk(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    import objmount.core.openfile as openfile
    monkeypatch.setattr(openfile.os, "pwrite", full_disk)
    with pytest.raises(OSError):
        engine.write(fh, 7, b"more")
    monkeypatch.undo()
    assert errno_of(engine.flush, fh) == errno.ENOSPC
    engine.release(fh)
    assert store.get("f") == b"old content"



def test_bucket_root_attributes_cannot_be_stored(engine: Engine, account: MemoryAccount,
                                                 store: MemoryStore, tmp_path: Path) -> None:
    assert errno_of(engine.setattr, ROOT_INO, mode=0o700) == errno.EPERM
    # The root of a prefix mount has a key, so its marker carries the attributes.
    prefixed = make_engine(account, tmp_path / "p", MountRoot("b", "team"))
    prefixed.setattr(ROOT_INO, mode=0o700)
    assert store.head("team/").metadata["mode"] == str(stat.S_IFDIR | 0o700)


def test_open_files_of_dead_daemons_are_removed(account: MemoryAccount, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    dead = cache / "open-999999999"  # no such process
    dead.mkdir(parents=True)
    (dead / "open-x").write_bytes(b"stale")
    alive = cache / f"open-{os.getppid()}"
    alive.mkdir()
    make_engine(account, tmp_path)
    assert not dead.exists()
    assert alive.exists()  # a live daemon's files are not touched


def test_reads_do_not_change_atime(engine: Engine, store: MemoryStore) -> None:
    attr = write_file(engine, ROOT_INO, "f", b"data")
    stored = store.head("f").metadata["atime"]
    assert read_file(engine, attr.ino) == b"data"
    assert engine.getattr(attr.ino).atime_ns == attr.atime_ns
    assert store.head("f").metadata["atime"] == stored


def test_two_clients_last_close_wins_whole(account: MemoryAccount, store: MemoryStore,
                                           tmp_path: Path) -> None:
    one = make_engine(account, tmp_path / "1", attr_ttl=0.0)
    two = make_engine(account, tmp_path / "2", attr_ttl=0.0)
    write_file(one, ROOT_INO, "f", b"original")
    fh1 = one.open(one.lookup(ROOT_INO, b"f").ino, os.O_WRONLY | os.O_TRUNC)
    fh2 = two.open(two.lookup(ROOT_INO, b"f").ino, os.O_WRONLY | os.O_TRUNC)
    one.write(fh1, 0, b"from client one")
    two.write(fh2, 0, b"two")
    two.release(fh2)
    assert store.get("f") == b"two"
    one.release(fh1)
    assert store.get("f") == b"from client one"  # whole, never a mix of the two


def test_a_small_file_opens_with_one_request_that_brings_its_bytes(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """Up to whole_file_size, open() revalidates with a GET of the whole object (no HEAD)
    and reads need nothing more; a truncating open fetches nothing; larger objects open
    with a HEAD and are read by range."""
    eng = make_engine(account, tmp_path, attr_ttl=60.0, whole_file_size=4096,
                      block_size=4096)
    store.put("small", b"s" * 4096, {})
    store.put("large", b"L" * 8192, {})
    small = eng.lookup(ROOT_INO, b"small").ino
    large = eng.lookup(ROOT_INO, b"large").ino
    store.requests.clear()
    assert read_file(eng, small) == b"s" * 4096
    assert store.requests == {"download": 1}
    store.requests.clear()
    assert read_file(eng, large) == b"L" * 8192
    assert store.requests.get("download", 0) == 0 and store.requests["head"] == 1
    store.requests.clear()
    fh = eng.open(small, os.O_WRONLY | os.O_TRUNC)
    eng.release(fh)
    assert "download" not in store.requests
    store.put("small", b"changed", {})  # close-to-open: the next open sees it
    assert read_file(eng, small) == b"changed"


def test_closing_an_unlinked_file_leaves_the_new_file_of_its_name(
        account: MemoryAccount, tmp_path: Path) -> None:
    """Found by the model: a file created, unlinked while open, and created again under
    the same name; the first one's last close must not take the name from the second
    (which is open and not stored yet)."""
    eng = make_engine(account, tmp_path, attr_ttl=0.0, negative_ttl=0.0)
    first, _ = eng.create(ROOT_INO, b"a", 0o600, os.O_RDWR | os.O_CREAT, UID, GID)
    eng.unlink(ROOT_INO, b"a")
    second, _ = eng.create(ROOT_INO, b"a", 0o600, os.O_RDWR | os.O_CREAT, UID, GID)
    eng.release(first)
    assert names(eng, ROOT_INO) == ["a"]
    eng.release(second)
    assert names(eng, ROOT_INO) == ["a"]


def test_a_directory_of_exactly_one_page_is_listed_complete(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    files_under_a_small_names_page(store, monkeypatch, 3)
    eng = make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)
    d = eng.lookup(ROOT_INO, b"d").ino
    store.requests.clear()
    for i in range(3):
        assert eng.lookup(d, f"f{i}".encode()).size == 1
    assert errno_of(eng.lookup, d, b"f3") == errno.ENOENT
    assert store.requests == {"list": 1, "head": 3}


def test_attributes_from_a_slow_listing_are_valid_from_its_answer(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As the kernel counts readdirplus': HEADs made while a large directory was being
    listed (100,000 entries take ~25 s) do not expire before the listing is answered, so
    ls -l's stats after it need no second HEAD each (interception sent one per entry)."""
    for i in range(5):
        store.put(f"d/f{i}", b"x", {})
    # One HEAD at a time, so the listing takes 0.5 s, longer than attr_timeout.
    eng = make_engine(account, tmp_path, attr_ttl=0.2, negative_ttl=0.2,
                      metadata_concurrency=1)
    d = eng.lookup(ROOT_INO, b"d").ino
    slow_down(monkeypatch, store, "head", 0.1)
    fh = eng.opendir(d)
    entries = eng.readdir(fh, 0)
    eng.releasedir(fh)
    store.requests.clear()
    for e in entries:
        assert eng.getattr(e.attr.ino).size == 1
        assert eng.lookup(d, e.name.encode()).ino == e.attr.ino
    assert not any(store.requests.values()), store.requests
