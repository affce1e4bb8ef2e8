"""POSIX behaviour through the FUSE mount that programs rely on beyond bytes: special
files, link counts, the times a directory and a renamed file get, and what a rename
stores (a new ctime, the new name's Content-Type, other tools' metadata kept)."""

from __future__ import annotations

import os
import socket
import stat
import time
from typing import Any

import pytest
from conftest import Mount

pytestmark = pytest.mark.fuse


def head(s3_client: Any, bucket: str, key: str) -> dict[str, Any]:
    return dict(s3_client.head_object(Bucket=bucket, Key=key))


def test_special_files_are_empty_objects_with_their_type_in_the_mode(
        mount_factory: Any, bucket: str, s3_client: Any) -> None:
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    p = m.path
    os.mkfifo(p / "fifo", 0o640)
    os.mknod(p / "plain", stat.S_IFREG | 0o600)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(p / "sock"))
    made = {"fifo": stat.S_IFIFO, "plain": stat.S_IFREG, "sock": stat.S_IFSOCK}
    if os.geteuid() == 0:
        os.mknod(p / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        made["null"] = stat.S_IFCHR
    for name, kind in made.items():
        assert stat.S_IFMT(os.lstat(p / name).st_mode) == kind, name
        stored = head(s3_client, bucket, name)
        assert stored["ContentLength"] == 0
        assert stat.S_IFMT(int(stored["Metadata"]["mode"])) == kind, name
    assert stat.S_IMODE(os.lstat(p / "fifo").st_mode) == 0o640
    if "null" in made:
        assert head(s3_client, bucket, "null")["Metadata"]["rdev"] == str(os.makedev(1, 3))

    m.umount()
    m.mount()  # from the store alone
    for name, kind in made.items():
        assert stat.S_IFMT(os.lstat(p / name).st_mode) == kind, name
    assert stat.S_IMODE(os.lstat(p / "fifo").st_mode) == 0o640
    if "null" in made:
        assert os.lstat(p / "null").st_rdev == os.makedev(1, 3)
    # The kernel serves the FIFO itself: bytes pass through it, none are stored.
    reader = os.open(p / "fifo", os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(p / "fifo", os.O_WRONLY)
    os.write(writer, b"through the pipe")
    assert os.read(reader, 100) == b"through the pipe"
    os.close(writer)
    os.close(reader)
    assert head(s3_client, bucket, "fifo")["ContentLength"] == 0
    os.rename(p / "fifo", p / "fifo2")
    assert stat.S_ISFIFO(os.lstat(p / "fifo2").st_mode)
    os.chmod(p / "fifo2", 0o600)
    assert os.lstat(p / "fifo2").st_mode == stat.S_IFIFO | 0o600
    os.unlink(p / "fifo2")
    assert "Contents" not in s3_client.list_objects_v2(Bucket=bucket, Prefix="fifo")


def test_link_counts(mounted: Mount) -> None:
    p = mounted.path
    os.mkdir(p / "d")
    assert os.stat(p / "d").st_nlink == 2
    os.mkdir(p / "d" / "sub")
    os.mkdir(p / "d" / "sub2")
    (p / "d" / "file").write_text("x")
    assert os.stat(p / "d").st_nlink == 4  # ".", its entry, and two ".."
    os.rmdir(p / "d" / "sub2")
    assert os.stat(p / "d").st_nlink == 3
    os.rename(p / "d" / "sub", p / "sub")
    assert os.stat(p / "d").st_nlink == 2
    with open(p / "d" / "file", "rb") as f:
        assert os.fstat(f.fileno()).st_nlink == 1
        os.unlink(p / "d" / "file")
        assert os.fstat(f.fileno()).st_nlink == 0
        assert f.read() == b"x"


def test_a_directory_s_times_change_with_its_entries(mounted: Mount) -> None:
    p = mounted.path
    os.mkdir(p / "d")
    os.mkdir(p / "other")

    def changed(action: Any, *dirs: str) -> None:
        before = {d: os.stat(p / d) for d in dirs}
        time.sleep(0.02)
        action()
        for d in dirs:
            after = os.stat(p / d)
            assert after.st_mtime_ns > before[d].st_mtime_ns, (action, d)
            assert after.st_ctime_ns > before[d].st_ctime_ns, (action, d)

    changed(lambda: (p / "d" / "f").write_text("x"), "d")
    changed(lambda: os.mkdir(p / "d" / "sub"), "d")
    changed(lambda: os.symlink("f", p / "d" / "link"), "d")
    changed(lambda: os.mkfifo(p / "d" / "fifo"), "d")
    changed(lambda: os.rename(p / "d" / "f", p / "other" / "f"), "d", "other")
    changed(lambda: os.unlink(p / "other" / "f"), "other")
    changed(lambda: os.rmdir(p / "d" / "sub"), "d")
    # Times set on purpose stay as set (tar and rsync restore them last).
    os.utime(p / "d", ns=(1_000_000_000, 2_000_000_000))
    assert os.stat(p / "d").st_mtime_ns == 2_000_000_000


def test_a_rename_changes_ctime_and_content_type_and_keeps_other_metadata(
        mounted: Mount, bucket: str, s3_client: Any) -> None:
    p = mounted.path
    s3_client.put_object(Bucket=bucket, Key="a.txt", Body=b"text", ContentType="text/plain",
                         Metadata={"mode": str(stat.S_IFREG | 0o600), "mtime": "1600000000",
                                   "ctime": "1600000000", "project": "kept"})
    before = os.stat(p / "a.txt")
    assert before.st_ctime == 1600000000
    os.rename(p / "a.txt", p / "a.bin")
    after = os.stat(p / "a.bin")
    assert after.st_ctime > time.time() - 60
    assert after.st_mtime == 1600000000 and stat.S_IMODE(after.st_mode) == 0o600
    stored = head(s3_client, bucket, "a.bin")
    assert stored["ContentType"] == "application/octet-stream"
    assert stored["Metadata"]["project"] == "kept"
    assert stored["Metadata"]["mode"] == str(stat.S_IFREG | 0o600)
    assert float(stored["Metadata"]["ctime"]) > time.time() - 60
    os.rename(p / "a.bin", p / "b.html")
    assert head(s3_client, bucket, "b.html")["ContentType"] == "text/html"


def test_an_old_style_directory_object_is_a_directory(mounted: Mount, bucket: str,
                                                      s3_client: Any) -> None:
    """Older s3fs (and other tools) made a directory as an object of its name, without
    the slash, of Content-Type application/x-directory."""
    p = mounted.path
    meta = {"mode": str(stat.S_IFDIR | 0o700), "uid": "123", "gid": "456"}
    s3_client.put_object(Bucket=bucket, Key="old", Body=b"",
                         ContentType="application/x-directory", Metadata=meta)
    s3_client.put_object(Bucket=bucket, Key="full", Body=b"",
                         ContentType="application/x-directory", Metadata=meta)
    s3_client.put_object(Bucket=bucket, Key="full/child", Body=b"c")
    assert sorted(os.listdir(p)) == ["full", "old"]
    for name in ("old", "full"):
        st = os.stat(p / name)
        assert st.st_mode == stat.S_IFDIR | 0o700, name
        assert (st.st_uid, st.st_gid) == (123, 456), name
    assert os.listdir(p / "old") == [] and os.listdir(p / "full") == ["child"]
    (p / "old" / "new").write_text("n")
    assert s3_client.get_object(Bucket=bucket, Key="old/new")["Body"].read() == b"n"
    os.unlink(p / "old" / "new")
    os.rmdir(p / "old")  # the object that stood for it goes too
    assert not (p / "old").exists()
    os.rename(p / "full", p / "moved")
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "full" not in keys and "moved/child" in keys and "old" not in keys
    assert (p / "moved" / "child").read_text() == "c"


def test_a_directory_s_mode_owner_and_times_survive_a_remount(mount_factory: Any,
                                                              bucket: str) -> None:
    """On SeaweedFS, whose markers keep no metadata, through the older s3fs form."""
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    p = m.path
    os.mkdir(p / "private", 0o700)
    os.mkdir(p / "tree")
    (p / "tree" / "f").write_text("f")
    os.chown(p / "tree", 1234, 5678)
    os.chmod(p / "tree", 0o751)
    os.utime(p / "tree", ns=(1_500_000_000_000_000_000, 1_600_000_000_000_000_000))
    m.umount()
    m.mount()
    assert stat.S_IMODE(os.stat(p / "private").st_mode) == 0o700
    st = os.stat(p / "tree")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o751, 1234, 5678)
    assert st.st_mtime_ns == 1_600_000_000_000_000_000
    assert (p / "tree" / "f").read_text() == "f"
    os.rename(p / "tree", p / "moved")
    os.unlink(p / "moved" / "f")
    os.rmdir(p / "private")
    m.umount()
    m.mount()
    assert sorted(os.listdir(p)) == ["moved"]
    assert stat.S_IMODE(os.stat(p / "moved").st_mode) == 0o751


def test_a_directory_object_s_attributes_hold_while_its_parent_s_listing_is_fresh(
        mount_factory: Any, bucket: str) -> None:
    """Looked up again from a recent listing of its parent (attributes expired, names
    not): still the directory object's mode and xattrs, never its bare marker's."""
    m = mount_factory(f"s3://{bucket}", options="xattr,attr_timeout=0,negative_timeout=30")
    m.mount()
    d = m.path / "d"
    d.mkdir(mode=0o700)
    os.setxattr(d, "user.k", b"v")
    (d / "child").write_text("x")
    m.umount()
    m.mount()
    seen = [(stat.S_IMODE(os.stat(d).st_mode), os.listxattr(d)) for _ in range(3)]
    assert seen == [(0o700, ["user.k"])] * 3


def test_a_directory_renamed_over_an_empty_one_takes_its_place(mounted: Mount) -> None:
    """rename(2) over an empty directory, with no entries and with some. (The FUSE model
    soak found such a rename losing the directory moved on SeaweedFS, where dir and dir/
    are one entry; this sequence did not reproduce it.)"""
    p = mounted.path
    os.mkdir(p / "old")
    (p / "old" / "gone").write_text("x")
    os.unlink(p / "old" / "gone")  # once had an entry: SeaweedFS keeps a directory
    os.mkdir(p / "new", 0o700)
    os.mkdir(p / "full")
    (p / "full" / "f").write_text("f")
    os.rename(p / "new", p / "old")
    assert os.listdir(p / "old") == []
    os.rename(p / "full", p / "old")
    assert os.listdir(p / "old") == ["f"]
    mounted.remount()
    assert sorted(os.listdir(p)) == ["old"] and os.listdir(p / "old") == ["f"]


def make_node(path: Any, kind: str) -> None:
    if kind == "regular":
        path.write_bytes(b"")
    elif kind == "fifo":
        os.mkfifo(path, 0o644)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(path))
    else:
        mode = stat.S_IFBLK if kind == "block" else stat.S_IFCHR
        os.mknod(path, mode | 0o644, os.makedev(1, 3))


@pytest.mark.parametrize("kind", ["regular", "fifo", "socket", "block", "char"])
def test_hard_links_of_every_file_type(mounted: Mount, kind: str) -> None:
    """What link(2) must do (as pjdfstest's link group checks it): one inode whose
    attributes, changed by one name, show under all; counts that follow link and unlink;
    a new ctime for the file and new times for the directory."""
    if kind in ("block", "char") and os.geteuid() != 0:
        pytest.skip("devices need root")
    d = mounted.path / "d"
    d.mkdir()
    n0, n1, n2 = d / "n0", d / "n1", d / "n2"
    make_node(n0, kind)
    assert os.lstat(n0).st_nlink == 1
    before, dir_before = os.lstat(n0), os.stat(d)
    time.sleep(0.01)
    os.link(n0, n1)
    after, dir_after = os.lstat(n0), os.stat(d)
    assert after.st_ctime_ns > before.st_ctime_ns
    assert dir_after.st_mtime_ns > dir_before.st_mtime_ns
    assert dir_after.st_ctime_ns > dir_before.st_ctime_ns
    os.link(n1, n2)
    assert [os.lstat(n).st_nlink for n in (n0, n1, n2)] == [3, 3, 3]
    os.chmod(n1, 0o201)
    os.chown(n1, 65534, 65533)
    for n in (n0, n1, n2):
        st = os.lstat(n)
        assert (stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid, st.st_gid) == (
            0o201, 3, 65534, 65533), n
    os.unlink(n0)
    assert not os.path.lexists(n0)
    assert [os.lstat(n).st_nlink for n in (n1, n2)] == [2, 2]
    os.unlink(n2)
    st = os.lstat(n1)
    assert (stat.S_IMODE(st.st_mode), st.st_nlink, st.st_uid) == (0o201, 1, 65534)
    os.unlink(n1)
    assert os.listdir(d) == []


def test_a_set_group_id_directory_gives_new_entries_its_group(mounted: Mount) -> None:
    """Linux (and BSD) group semantics, which the kernel leaves to a FUSE file system:
    files, directories, symlinks and FIFOs made in a set-group-ID directory take its group,
    and directories the bit too; elsewhere the creator's group."""
    shared = mounted.path / "shared"
    shared.mkdir()
    os.chown(shared, 0, 4242)
    os.chmod(shared, 0o2775)
    (shared / "f").write_text("x")
    os.mkdir(shared / "d")
    os.symlink("f", shared / "l")
    os.mkfifo(shared / "p")
    for name in ("f", "d", "l", "p"):
        assert os.lstat(shared / name).st_gid == 4242, name
    assert os.stat(shared / "d").st_mode & stat.S_ISGID
    assert not os.stat(shared / "f").st_mode & stat.S_ISGID
    (shared / "d" / "deeper").write_text("y")
    assert os.stat(shared / "d" / "deeper").st_gid == 4242
    (mounted.path / "plain").write_text("z")
    assert os.stat(mounted.path / "plain").st_gid == os.getgid()
