"""Provisional attributes (core/attrfetch.py): a listing vouches for the name, type and
size of files too large to be symlinks; their HEADs wait until a program asks for mode,
owner or times, and then go out ahead along the listing. Asserted on the requests an
in-memory store receives, then through the FUSE mount and SeaweedFS."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from s3fixtures import server_requests
from test_engine import make_engine

from objmount.core import metadata
from objmount.core.engine import Engine
from objmount.core.inodes import ROOT_INO
from objmount.core.metadata import Attr
from objmount.errors import FsError
from objmount.server import ServerInfo
from objmount.store.memory import MemoryAccount, MemoryStore

SIZE = metadata.SYMLINK_MAX  # the smallest size a listing alone can vouch for
FILES = 120


@pytest.fixture
def account() -> MemoryAccount:
    account = MemoryAccount("b")
    store = account.stores["b"]
    for i in range(FILES):
        attr = Attr(0, stat.S_IFREG | 0o600, 1234, 5678, SIZE, 10**18, 10**18, 10**18, 1)
        store.put(f"d/f{i:03d}", os.urandom(SIZE), metadata.encode(attr))
    store.put("d/small", b"tiny", {})
    return account


@pytest.fixture
def store(account: MemoryAccount) -> MemoryStore:
    return account.stores["b"]


@pytest.fixture
def engine(account: MemoryAccount, tmp_path: Path) -> Engine:
    return make_engine(account, tmp_path, attr_ttl=60.0, negative_ttl=60.0)


def listed(engine: Engine, store: MemoryStore) -> tuple[int, dict[str, Any]]:
    """The directory d (looked up first: that costs requests of its own) and its
    entries, as readdir gives them."""
    directory = engine.lookup(ROOT_INO, b"d").ino
    store.requests.clear()
    fh = engine.opendir(directory)
    entries = {e.name: e for e in engine.readdir(fh, 0)}
    engine.releasedir(fh)
    return directory, entries


def settle(engine: Engine) -> None:
    """Wait for the HEADs sent ahead."""
    deadline = time.monotonic() + 10
    while engine.ns.attrs.in_flight():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def test_a_listing_sends_no_head_for_large_files(engine: Engine, store: MemoryStore) -> None:
    _directory, entries = listed(engine, store)
    assert store.requests == {"list": 1, "head": 1}  # the small one may be a symlink
    big = entries["f000"]
    assert not big.attr_known and big.attr.size == SIZE and stat.S_ISREG(big.attr.mode)
    assert entries["small"].attr_known


def test_removing_listed_files_sends_only_deletes(engine: Engine, store: MemoryStore) -> None:
    directory, entries = listed(engine, store)
    store.requests.clear()
    for name in entries:
        engine.unlink(directory, name.encode())
    # And, once: the directory existed only as a prefix, so emptying it asks whether it
    # is empty and leaves it a marker (see test_engine for rmdir's side).
    assert store.requests == {"delete": FILES + 1, "list": 1, "put": 1}


def test_a_names_listing_answers_lookups_after_the_attributes_expire(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """An rm -r slower than attr_timeout: the kernel looks names up again, and the
    listing (trusted for negative_timeout, a LIST per 1000 names) still answers them."""
    engine = make_engine(account, tmp_path, attr_ttl=0.01, negative_ttl=60.0)
    directory, entries = listed(engine, store)
    time.sleep(0.02)
    store.requests.clear()
    for name in entries:
        attr, _known = engine.lookup_entry(directory, name.encode())
        assert attr.size == entries[name].attr.size
        engine.unlink(directory, name.encode())
    assert store.requests.get("head", 0) <= 1  # the small one, which may be a symlink
    assert store.requests["delete"] == FILES + 1


def test_asking_for_attributes_fetches_them_and_the_next_ones(
        engine: Engine, store: MemoryStore) -> None:
    _directory, entries = listed(engine, store)
    store.requests.clear()
    first = engine.getattr(entries["f000"].attr.ino)
    assert (stat.S_IMODE(first.mode), first.uid, first.gid) == (0o600, 1234, 5678)
    fetcher = engine.ns.attrs
    first_round = 1 + fetcher.first_window
    settle(engine)
    assert store.requests == {"head": first_round}
    for i in range(1, first_round):  # fetched ahead: no request of their own
        assert stat.S_IMODE(engine.getattr(entries[f"f{i:03d}"].attr.ino).mode) == 0o600
    settle(engine)
    # Past the middle of the window (at f005), the next, twice as large, went out.
    middle = first_round - fetcher.first_window // 2
    assert store.requests["head"] == middle + 1 + 2 * fetcher.first_window
    # Every file once, however they are asked for after.
    for _name, entry in entries.items():
        engine.getattr(entry.attr.ino)
    settle(engine)
    assert store.requests["head"] == FILES


def test_lookup_gives_fetched_attributes_and_lookup_entry_may_not(
        engine: Engine, store: MemoryStore) -> None:
    directory, _entries = listed(engine, store)
    attr, known = engine.lookup_entry(directory, b"f005")
    assert not known and stat.S_IMODE(attr.mode) == engine.options.defaults.file_mode
    store.requests.clear()
    assert stat.S_IMODE(engine.lookup(directory, b"f005").mode) == 0o600
    assert store.requests["head"] >= 1


def test_a_large_object_is_a_file_whatever_its_metadata_says(
        engine: Engine, store: MemoryStore) -> None:
    link = Attr(0, stat.S_IFLNK | 0o777, 0, 0, 0, 0, 0, 0, 1)
    store.put("d/notalink", b"x" * SIZE, metadata.encode(link))
    store.put("d/link", b"target", metadata.encode(link))
    _directory, entries = listed(engine, store)
    assert stat.S_ISREG(engine.getattr(entries["notalink"].attr.ino).mode)
    assert stat.S_ISLNK(entries["link"].attr.mode) and entries["link"].attr_known


def test_through_the_mount_rm_r_sends_only_deletes_and_ls_shows_real_modes(
        mounted: Mount, s3_server: ServerInfo, s3_client: Any, bucket: str) -> None:
    d = mounted.path / "many"
    d.mkdir()
    for i in range(30):
        path = d / f"f{i:02d}"
        path.write_bytes(os.urandom(8192))
        path.chmod(0o640 if i % 2 else 0o600)
    mounted.remount()
    listing = subprocess.run(["ls", "-ln", str(d)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[1:]
    modes = {line.split()[-1]: line.split()[0] for line in listing}
    assert modes == {f"f{i:02d}": "-rw-r-----" if i % 2 else "-rw-------" for i in range(30)}
    mounted.remount()
    before = server_requests(s3_server, bucket)
    subprocess.run(["rm", "-r", str(d)], check=True)
    asked = server_requests(s3_server, bucket) - before
    deletes = sum(n for kind, n in asked.items() if kind.startswith("DELETE"))
    assert deletes == 31  # the files, the marker
    heads = sum(n for kind, n in asked.items() if kind.startswith("GET"))
    assert heads <= 1, asked  # the directory's own marker, no file's


def test_cached_answers_need_no_worker_and_no_request(
        engine: Engine, store: MemoryStore, account: MemoryAccount, tmp_path: Path) -> None:
    """What FUSE answers on its event loop: lookups and getattrs the caches know."""
    directory, entries = listed(engine, store)
    store.requests.clear()
    found = engine.lookup_nowait(directory, b"f001")
    assert found is not None and found[0].ino == entries["f001"].attr.ino and not found[1]
    with pytest.raises(FsError) as absent:
        engine.lookup_nowait(directory, b"not-there")
    assert absent.value.errno == errno.ENOENT
    assert engine.getattr_nowait(entries["small"].attr.ino) is not None  # fresh
    assert engine.getattr_nowait(entries["f001"].attr.ino) is None  # needs its HEAD
    assert store.requests == {}
    fresh = make_engine(account, tmp_path / "other")
    assert fresh.lookup_nowait(ROOT_INO, b"d") is None  # nothing listed yet: ask


def test_attributes_that_expired_are_fetched_ahead_again(
        account: MemoryAccount, store: MemoryStore, tmp_path: Path) -> None:
    """A second pass (ls -l again, stats in a loop) after the attributes expired: the
    first miss sends the window out again, from where the program is."""
    engine = make_engine(account, tmp_path, attr_ttl=0.2, negative_ttl=60.0)
    _directory, entries = listed(engine, store)
    for entry in entries.values():
        engine.getattr(entry.attr.ino)
    settle(engine)
    time.sleep(0.3)  # all expired
    store.requests.clear()
    engine.getattr(entries["f000"].attr.ino)
    settle(engine)
    # The window had grown past the directory's size: every file again, each once.
    assert store.requests["head"] == FILES + 1
