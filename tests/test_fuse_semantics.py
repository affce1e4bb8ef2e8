"""Semantics that only show through the kernel: refused operations, limits, two clients."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount, is_mounted

pytestmark = pytest.mark.fuse


def oserror(fn: Any, *args: Any) -> int:
    with pytest.raises(OSError) as info:
        fn(*args)
    return info.value.errno or 0


def test_hard_links_share_one_inode_and_every_name_is_a_plain_object(
        mount_factory: Any, bucket: str, s3_client: Any) -> None:
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    p = m.path
    (p / "a").write_bytes(b"hello")
    os.mkdir(p / "d")
    os.link(p / "a", p / "d" / "b")
    sa, sb = os.stat(p / "a"), os.stat(p / "d" / "b")
    assert sa.st_ino == sb.st_ino and sa.st_nlink == sb.st_nlink == 2
    with open(p / "d" / "b", "ab") as f:
        f.write(b" world")
    os.chmod(p / "a", 0o600)
    assert (p / "a").read_bytes() == b"hello world"
    assert stat.S_IMODE(os.stat(p / "d" / "b").st_mode) == 0o600
    # A plain S3 client sees each name as an ordinary object with the bytes.
    for key in ("a", "d/b"):
        got = s3_client.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == b"hello world"
        assert got["Metadata"]["objmount-names"] == "a,d%2Fb"
    assert oserror(os.link, p / "d", p / "e") == errno.EPERM
    assert oserror(os.link, p / "a", p / "d" / "b") == errno.EEXIST
    m.umount()
    m.mount()  # from the store alone
    sa, sb = os.stat(p / "a"), os.stat(p / "d" / "b")
    assert sa.st_ino == sb.st_ino and sa.st_nlink == 2
    os.link(p / "a", p / "c")
    assert os.stat(p / "d" / "b").st_nlink == 3
    os.unlink(p / "a")
    assert os.stat(p / "c").st_nlink == 2
    os.rename(p / "c", p / "e")
    assert os.stat(p / "e").st_ino == os.stat(p / "d" / "b").st_ino
    (p / "e").write_bytes(b"new")
    assert (p / "d" / "b").read_bytes() == b"new"
    # Another tool replaces one name: it is a file of its own, never overwritten.
    s3_client.put_object(Bucket=bucket, Key="e", Body=b"theirs")
    m.umount()
    m.mount()
    (p / "d" / "b").write_bytes(b"ours")
    assert (p / "e").read_bytes() == b"theirs"
    assert os.stat(p / "d" / "b").st_nlink == 1
    assert "objmount-link" not in s3_client.head_object(Bucket=bucket, Key="d/b")["Metadata"]


def test_a_hard_link_goes_on_when_another_client_removes_or_replaces_its_first_name(
        mount_factory: Any, bucket: str, s3_client: Any) -> None:
    """Found by the FUSE model: the name written to first, deleted or replaced out of
    band while the mount runs, must not take the file's other names with it."""
    m = mount_factory(f"s3://{bucket}", options="attr_timeout=0,negative_timeout=0")
    m.mount()
    p = m.path
    (p / "a").write_bytes(b"one")
    os.link(p / "a", p / "b")
    os.link(p / "b", p / "c")
    s3_client.delete_object(Bucket=bucket, Key="a")
    os.link(p / "b", p / "d")  # copied from a name that is still there
    ino = os.stat(p / "b").st_ino
    assert [os.stat(p / n).st_ino for n in "cd"] == [ino, ino]
    assert not (p / "a").exists()
    with open(p / "c", "ab") as f:
        f.write(b" two")
    assert [(p / n).read_bytes() for n in "bcd"] == [b"one two"] * 3
    assert "a" not in {o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert os.stat(p / "d").st_nlink == 3
    # The name now written first (b) replaced by another client: c and d go on as one.
    s3_client.put_object(Bucket=bucket, Key="b", Body=b"theirs")
    os.chmod(p / "d", 0o600)
    assert os.stat(p / "c").st_ino == os.stat(p / "d").st_ino != os.stat(p / "b").st_ino
    assert (p / "b").read_bytes() == b"theirs"
    assert os.stat(p / "c").st_nlink == 2
    assert stat.S_IMODE(os.stat(p / "c").st_mode) == 0o600
    assert s3_client.get_object(Bucket=bucket, Key="b")["Body"].read() == b"theirs"
    # Both removed out of band but c: c is a file of its own.
    s3_client.delete_object(Bucket=bucket, Key="d")
    (p / "c").write_bytes(b"alone")
    assert os.stat(p / "c").st_nlink == 1 and not (p / "d").exists()


def test_renaming_a_directory_keeps_the_hard_links_in_it(
        mount_factory: Any, bucket: str, s3_client: Any) -> None:
    """Each name's object names the group's keys: moving a directory renames them all,
    whether or not the mount had looked the names up."""
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    p = m.path
    (p / "d1" / "sub").mkdir(parents=True)
    (p / "d1" / "f").write_bytes(b"x")
    os.link(p / "d1" / "f", p / "d1" / "sub" / "g")
    os.link(p / "d1" / "f", p / "out")
    os.rename(p / "d1", p / "d2")  # names known here
    m.umount()
    m.mount()
    os.rename(p / "d2", p / "d3")  # names unknown here: found in the objects
    names = [p / "d3" / "f", p / "d3" / "sub" / "g", p / "out"]
    assert {os.stat(n).st_ino for n in names} == {os.stat(names[0]).st_ino}
    assert [os.stat(n).st_nlink for n in names] == [3, 3, 3]
    (p / "out").write_bytes(b"y")
    assert [n.read_bytes() for n in names] == [b"y"] * 3
    got = s3_client.head_object(Bucket=bucket, Key="d3/sub/g")["Metadata"]
    assert got["objmount-names"] == "d3%2Ff,d3%2Fsub%2Fg,out"


def test_user_xattrs_are_stored_in_s3fs_form(mount_factory: Any, bucket: str,
                                             s3_client: Any) -> None:
    plain = mount_factory(f"s3://{bucket}")
    plain.mount()
    (plain.path / "f").write_text("x")
    # Off unless asked for (-o xattr): ls -l would ask each file twice (CONFIGURATION.md).
    assert oserror(os.setxattr, plain.path / "f", "user.k", b"v") == errno.EOPNOTSUPP
    assert oserror(os.listxattr, plain.path / "f") == errno.EOPNOTSUPP
    plain.umount()
    m = mount_factory(f"s3://{bucket}", options="xattr")
    m.mount()
    f, d = m.path / "f", m.path / "d"
    d.mkdir()
    os.setxattr(f, "user.k", b"v")
    os.setxattr(f, "user.empty", b"")
    os.setxattr(d, "user.dir", b"on a directory")
    assert sorted(os.listxattr(f)) == ["user.empty", "user.k"]
    assert os.getxattr(f, "user.k") == b"v" and os.getxattr(f, "user.empty") == b""
    assert oserror(os.setxattr, f, "user.k", b"w", os.XATTR_CREATE) == errno.EEXIST
    assert oserror(os.setxattr, f, "user.new", b"w", os.XATTR_REPLACE) == errno.ENODATA
    assert oserror(os.getxattr, f, "user.missing") == errno.ENODATA
    assert oserror(os.getxattr, f, "security.selinux") == errno.ENODATA
    assert oserror(os.setxattr, f, "trusted.k", b"v") in (errno.EOPNOTSUPP, errno.EPERM)
    assert oserror(os.setxattr, f, "user.big", b"x" * 4000) == errno.ENOSPC
    os.symlink("f", m.path / "link")
    assert oserror(lambda: os.setxattr(m.path / "link", "user.k", b"v",
                                       follow_symlinks=False)) == errno.EPERM
    stored = s3_client.head_object(Bucket=bucket, Key="f")["Metadata"]["xattr"]
    assert urllib.parse.unquote(stored) == '{"user.empty":"","user.k":"dg=="}'
    # Bytes, mode and the other attributes survive a change of xattrs, and xattrs
    # survive chmod, rename and a rewrite of the file.
    os.chmod(f, 0o600)
    os.rename(f, m.path / "g")
    with open(m.path / "g", "a") as out:
        out.write("y")
    os.removexattr(m.path / "g", "user.empty")
    m.umount()
    m.mount()
    g = m.path / "g"
    assert g.read_text() == "xy" and stat.S_IMODE(os.stat(g).st_mode) == 0o600
    assert os.listxattr(g) == ["user.k"] and os.getxattr(g, "user.k") == b"v"
    assert os.getxattr(m.path / "d", "user.dir") == b"on a directory"
    assert oserror(os.removexattr, g, "user.empty") == errno.ENODATA


def test_statfs(mounted: Mount) -> None:
    st = os.statvfs(mounted.path)
    assert st.f_namemax == 255
    assert st.f_bavail * st.f_frsize >= 1 << 50


def test_the_kernel_asks_for_up_to_a_mebibyte_per_read(mounted: Mount) -> None:
    """As root, the mount's kernel read-ahead is raised from 128 KiB to 1 MiB (set after
    the kernel's INIT, which would cap it, and before the mount command returns, so the
    first reader gets it), so sequential reads cost an eighth of the requests."""
    if os.geteuid() != 0:
        pytest.skip("only root may change a mount's read-ahead")
    dev = os.stat(mounted.path).st_dev
    knob = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    assert knob.read_text().strip() == "1024"  # at once: no waiting


def test_close_to_open_between_two_mounts(mount_factory: Any, bucket: str) -> None:
    a = mount_factory(f"s3://{bucket}")
    b = mount_factory(f"s3://{bucket}")
    a.mount()
    b.mount()
    (a.path / "shared.txt").write_text("version 1")
    assert (b.path / "shared.txt").read_text() == "version 1"
    with open(a.path / "shared.txt", "w") as f:
        f.write("version 2, longer")
    # The writer closed: a new open elsewhere sees the new bytes, whatever it cached.
    assert (b.path / "shared.txt").read_text() == "version 2, longer"


def test_read_only_mount(mount_factory: Any, bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="f", Body=b"data")
    m = mount_factory(f"s3://{bucket}", options="ro")
    m.mount()
    assert (m.path / "f").read_bytes() == b"data"
    assert oserror((m.path / "new").write_text, "x") == errno.EROFS
    assert oserror(os.unlink, m.path / "f") == errno.EROFS
    assert oserror(os.mkdir, m.path / "d") == errno.EROFS


def test_prefix_mount(mount_factory: Any, bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="outside", Body=b"no")
    s3_client.put_object(Bucket=bucket, Key="team/a/inside", Body=b"yes")
    m = mount_factory(f"s3://{bucket}/team/a")
    m.mount()
    assert os.listdir(m.path) == ["inside"]
    (m.path / "new").write_text("n")
    assert s3_client.get_object(Bucket=bucket, Key="team/a/new")["Body"].read() == b"n"


def test_all_buckets_mount(mount_factory: Any, bucket: str, s3_client: Any) -> None:
    s3_client.put_object(Bucket=bucket, Key="k", Body=b"v")
    m = mount_factory("")
    m.mount()
    assert os.listdir(m.path) == ["s3"]
    assert bucket in os.listdir(m.path / "s3")
    assert (m.path / "s3" / bucket / "k").read_bytes() == b"v"
    assert oserror(os.mkdir, m.path / "s3" / "new-bucket") == errno.EPERM


def test_full_cache_disk_is_enospc_and_loses_nothing(mount_factory: Any, bucket: str,
                                                     s3_client: Any, tmp_path: Path) -> None:
    small = tmp_path / "smallcache"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)], check=True)
    try:
        s3_client.put_object(Bucket=bucket, Key="keep", Body=b"old content")
        m = mount_factory(f"s3://{bucket}", options=f"cache_dir={small}")
        m.mount()
        with pytest.raises(OSError) as info, open(m.path / "keep", "wb") as f:
            for _ in range(8):
                f.write(os.urandom(1 << 20))
                f.flush()
        assert info.value.errno == errno.ENOSPC
        # The failed write never reached the store: the old object is whole.
        assert s3_client.get_object(Bucket=bucket, Key="keep")["Body"].read() == \
            b"old content"
        m.umount()
    finally:
        subprocess.run(["umount", str(small)], check=False)
    assert not is_mounted(small)


def test_dead_server_gives_eio_and_keeps_the_bytes(mount_factory: Any, tmp_path: Path) -> None:
    from objmount.server import start_server, stop_server

    server = start_server(tmp_path / "srv", ["doomed"], "ak-doomed", "sk-doomed")
    try:
        env = {**server.env(), "AWS_CONFIG_FILE": "/nonexistent",
               "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
        m = mount_factory("s3://doomed", env=env)
        m.mount()
        (m.path / "before").write_text("stored while the server lived")
        f = open(m.path / "after", "w")  # noqa: SIM115 - the close is what is tested
        f.write("written while the server dies")
    finally:
        stop_server(server.pid)
    with pytest.raises(OSError) as info:
        f.close()
    assert info.value.errno == errno.EIO
    assert oserror((m.path / "before").read_text) == errno.EIO  # open must ask the store
    assert oserror(os.mkdir, m.path / "newdir") == errno.EIO
    kept = list((tmp_path / "cache" / "unsaved").iterdir())
    assert [p.read_text() for p in kept] == ["written while the server dies"]
    assert "could not store after" in m.read_log()


def test_posix_acls_are_enforced_stored_and_inherited(
        mount_factory: Any, bucket: str, s3_client: Any) -> None:
    """-o acl: setfacl/getfacl as on a disk. The kernel checks the ACL; the mode follows
    it (the group bits are the mask) and it follows chmod; a directory's default ACL is
    what new entries get in place of the umask; s3fs's x-amz-meta-xattr holds them."""
    if os.getuid() != 0:
        pytest.skip("needs root to run a command as another user")
    where = Path(tempfile.mkdtemp(prefix="om-acl-", dir="/tmp"))
    where.chmod(0o755)  # the other user must be able to reach the mount point
    m = mount_factory(f"s3://{bucket}", path=where / "mnt",
                      options="acl,allow_other,attr_timeout=0")
    umask = os.umask(0o022)
    try:
        check_acls(m, bucket, s3_client)
    finally:
        os.umask(umask)
        m.cleanup()  # unmounted before the directory goes: never rmtree through a mount
        shutil.rmtree(where, ignore_errors=True)


def check_acls(m: Mount, bucket: str, s3_client: Any) -> None:
    m.mount()
    p = m.path
    f = p / "f"
    f.write_text("secret")
    os.chmod(f, 0o600)
    subprocess.run(["setfacl", "-m", "u:65534:r", str(f)], check=True)
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o640  # the mask (r) shows as group bits
    assert "user:nobody:r--" in subprocess.run(["getfacl", "-c", str(f)], check=True,
                                                capture_output=True, text=True).stdout
    read_as_nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                      "cat", str(f)]
    assert subprocess.run(read_as_nobody, capture_output=True, text=True).stdout == "secret"
    os.chmod(f, 0o600)  # the mask goes to ---: nobody's entry no longer grants anything
    assert subprocess.run(read_as_nobody, capture_output=True).returncode != 0
    assert "#effective:---" in subprocess.run(["getfacl", "-c", str(f)], check=True,
                                               capture_output=True, text=True).stdout
    stored = s3_client.head_object(Bucket=bucket, Key="f")["Metadata"]["xattr"]
    assert "system.posix_acl_access" in urllib.parse.unquote(stored)
    subprocess.run(["setfacl", "-b", str(f)], check=True)  # back to the mode alone
    assert "xattr" not in s3_client.head_object(Bucket=bucket, Key="f")["Metadata"]
    # Inheritance: the default ACL sets what new entries get, limited by their mode as
    # it arrives: the kernel has applied the umask (022) already (no FUSE_DONT_MASK
    # through pyfuse3), so the group bits stay r (disks would give rw).
    d = p / "d"
    d.mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u::rwx,g::rwx,o::-,u:65534:rw", str(d)],
                   check=True)
    (d / "new").write_text("x")
    os.mkdir(d / "sub")
    assert stat.S_IMODE(os.stat(d / "new").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(d / "sub").st_mode) == 0o750
    sub_acl = subprocess.run(["getfacl", "-c", str(d / "sub")], check=True,
                             capture_output=True, text=True).stdout
    assert "default:user:nobody:rw-" in sub_acl and "user:nobody:rw-" in sub_acl
    m.umount()
    m.mount()  # all of it from the store
    assert "default:user:nobody:rw-" in subprocess.run(
        ["getfacl", "-c", str(d)], check=True, capture_output=True, text=True).stdout
    assert stat.S_IMODE(os.stat(d / "new").st_mode) == 0o640
    assert "user:nobody:rw-" in subprocess.run(["getfacl", "-c", str(d / "new")], check=True,
                                                capture_output=True, text=True).stdout
    plain = p / "plain"
    plain.write_text("y")
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o644  # no default ACL: the umask
