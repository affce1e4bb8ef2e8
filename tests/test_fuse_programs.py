"""Real programs on a real objmount mount: cp, mv, rm, tar, rsync, git, sqlite3, Python.

Every check that matters is made twice where it can be: through the mount (what the
programs see) and in the bucket with a plain S3 client (what is really stored).

SeaweedFS, the test server, drops user metadata on ``dir/`` marker objects, so
directories are compared for existence and type only; files and symlinks fully.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import Mount
from peers import snapshot

pytestmark = [pytest.mark.fuse, pytest.mark.s3]

# Owners other than the mounting user (root), so that chown really has to be stored.
OWNERS = [(1234, 5678), (0, 0), (1000, 1000), (65534, 65534)]
MODES = [0o600, 0o755, 0o640, 0o644, 0o700, 0o444]


# ---------------------------------------------------------------------------- helpers --
_current_mount: list[Mount] = []


@pytest.fixture(autouse=True)
def _remember_mount(request: pytest.FixtureRequest) -> None:
    """Failures of programs quote the tail of the mount's log."""
    _current_mount.clear()
    if "mounted" in request.fixturenames:
        _current_mount.append(request.getfixturevalue("mounted"))


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a program; fail the test with its output (and the mount log) if it fails."""
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        log = "\n".join(_current_mount[0].read_log().splitlines()[-15:]) \
            if _current_mount else ""
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
                    f"stdout: {result.stdout[-3000:]}\nstderr: {result.stderr[-3000:]}\n"
                    f"mount log (tail):\n{log}", pytrace=False)
    return result


def build_tree(root: Path) -> None:
    """A small tree with everything cp -a must carry: mixed modes, foreign owners,
    symlinks (one dangling), nested and empty directories, non-ASCII names, fixed
    mtimes with sub-second parts."""
    root.mkdir(parents=True)
    files = {
        "plain.txt": b"hello objmount\n",
        "script.sh": b"#!/bin/sh\necho hi\n",
        "empty-file": b"",
        "with space.txt": b"spaces in names\n",
        "ünïcödé.txt": "non-ASCII content: äöü ß 日本\n".encode(),
        "日本語/ファイル.txt": "日本語\n".encode(),
        "a/b/c/deep.bin": bytes(range(256)) * 300,
        "a/b/sibling.txt": b"sibling\n",
        "a/x.dat": os.urandom(70_000),
        "emoji-😀/inside.txt": b"emoji dir\n",
    }
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chmod(path, MODES[i % len(MODES)])
        os.chown(path, *OWNERS[i % len(OWNERS)])
        os.utime(path, ns=(1_600_000_000_000_000_000 + i * 86_400_123_456_789,
                           1_600_000_000_000_000_000 + i * 86_400_123_456_789))
    (root / "empty-dir").mkdir()
    (root / "a" / "empty-nested" / "deeper-empty").mkdir(parents=True)
    links = {"link-to-plain": "plain.txt", "a/b/link-up": "../../ünïcödé.txt",
             "dangling": "does/not/exist", "abs-link": "/etc/hostname"}
    for i, (rel, target) in enumerate(sorted(links.items())):
        path = root / rel
        os.symlink(target, path)
        os.lchown(path, *OWNERS[(i + 1) % len(OWNERS)])
        os.utime(path, ns=(1_650_000_000_000_000_000 + i * 1_000_000_001,
                           1_650_000_000_000_000_000 + i * 1_000_000_001),
                 follow_symlinks=False)


def assert_same_tree(expected_root: Path, actual_root: Path) -> None:
    expected = snapshot(expected_root)
    actual = snapshot(actual_root)
    assert sorted(actual) == sorted(expected), "different names"
    diffs = {k: (expected[k], actual[k]) for k in expected if expected[k] != actual[k]}
    assert not diffs, "attributes differ (expected, actual):\n" + "\n".join(
        f"  {k}: {v[0]} != {v[1]}" for k, v in sorted(diffs.items()))


def diff_r(a: Path, b: Path) -> None:
    run("diff", "-r", "--no-dereference", a, b)


def keys(s3_client: Any, bucket: str, prefix: str = "") -> set[str]:
    found: set[str] = set()
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        found.update(o["Key"] for o in page.get("Contents", []))
    return found


def get(s3_client: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def file_keys(root: Path, prefix: str) -> dict[str, bytes]:
    """Key -> bytes of every regular file below ``root`` as it must appear in the bucket."""
    out: dict[str, bytes] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out[prefix + str(path.relative_to(root))] = path.read_bytes()
    return out


# ------------------------------------------------------------------------------ tests --
def test_cp_a_preserves_tree(mounted: Mount, tmp_path: Path, s3_client: Any,
                             bucket: str) -> None:
    src = tmp_path / "src"
    build_tree(src)
    run("cp", "-a", src, mounted.path / "copy")
    diff_r(src, mounted.path / "copy")
    assert_same_tree(src, mounted.path / "copy")
    # The bytes are in the bucket under the same names.
    stored = keys(s3_client, bucket, "copy/")
    for key, data in file_keys(src, "copy/").items():
        assert key in stored
        assert get(s3_client, bucket, key) == data, key
    # And it is all in the store, not only in the daemon: the same after a remount.
    mounted.remount()
    diff_r(src, mounted.path / "copy")
    assert_same_tree(src, mounted.path / "copy")


def test_mv_file(mounted: Mount, s3_client: Any, bucket: str) -> None:
    m = mounted.path
    (m / "d").mkdir()
    (m / "a.txt").write_bytes(b"moving file\n")
    os.chmod(m / "a.txt", 0o640)
    os.chown(m / "a.txt", 1234, 5678)
    os.utime(m / "a.txt", (1_600_000_000, 1_600_000_000))
    run("mv", m / "a.txt", m / "b.txt")
    assert not (m / "a.txt").exists()
    assert (m / "b.txt").read_bytes() == b"moving file\n"
    st = os.stat(m / "b.txt")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == \
        (0o640, 1234, 5678, 1_600_000_000)
    run("mv", m / "b.txt", m / "d" / "c.txt")
    assert not (m / "b.txt").exists()
    assert (m / "d" / "c.txt").read_bytes() == b"moving file\n"
    stored = keys(s3_client, bucket)
    assert "a.txt" not in stored and "b.txt" not in stored
    assert "d/c.txt" in stored
    assert get(s3_client, bucket, "d/c.txt") == b"moving file\n"
    meta = s3_client.head_object(Bucket=bucket, Key="d/c.txt")["Metadata"]
    assert int(meta["mode"]) == stat.S_IFREG | 0o640
    assert (meta["uid"], meta["gid"]) == ("1234", "5678")


def test_mv_directory(mounted: Mount, tmp_path: Path, s3_client: Any, bucket: str) -> None:
    src = tmp_path / "src"
    build_tree(src)
    m = mounted.path
    run("cp", "-a", src, m / "before")
    run("mv", m / "before", m / "after")
    assert not (m / "before").exists()
    assert "before" not in os.listdir(m)
    diff_r(src, m / "after")
    assert_same_tree(src, m / "after")
    stored = keys(s3_client, bucket)
    assert not [k for k in stored if k.startswith("before/")], "old keys left behind"
    for key, data in file_keys(src, "after/").items():
        assert get(s3_client, bucket, key) == data, key
    # And into another directory, nested.
    (m / "parent").mkdir()
    run("mv", m / "after", m / "parent" / "inner")
    assert_same_tree(src, m / "parent" / "inner")
    stored = keys(s3_client, bucket)
    assert not [k for k in stored if k.startswith("after/")], "old keys left behind"
    assert set(file_keys(src, "parent/inner/")) <= stored


def test_rm_r_tree(mounted: Mount, tmp_path: Path, s3_client: Any, bucket: str) -> None:
    src = tmp_path / "src"
    build_tree(src)
    m = mounted.path
    run("cp", "-a", src, m / "doomed")
    (m / "keep.txt").write_text("stays\n")
    assert keys(s3_client, bucket, "doomed/")
    run("rm", "-r", m / "doomed")
    assert not (m / "doomed").exists()
    assert os.listdir(m) == ["keep.txt"]
    assert keys(s3_client, bucket, "doomed/") == set()
    assert keys(s3_client, bucket, "doomed") == set()
    assert keys(s3_client, bucket) == {"keep.txt"}


def test_tar_from_and_into_mount(mounted: Mount, tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    m = mounted.path
    run("cp", "-a", src, m / "t")
    archive = tmp_path / "archive.tar"
    # Create from the mount, extract locally: the archive carries everything.
    run("tar", "-C", m, "-cf", archive, "t")
    (tmp_path / "out").mkdir()
    run("tar", "-C", tmp_path / "out", "-xpf", archive)
    diff_r(src, tmp_path / "out" / "t")
    assert_same_tree(src, tmp_path / "out" / "t")
    # Extract into the mount.
    (m / "x").mkdir()
    run("tar", "-C", m / "x", "-xpf", archive, "--same-owner")
    diff_r(src, m / "x" / "t")
    assert_same_tree(src, m / "x" / "t")


def test_rsync_a_and_second_run_is_a_no_op(mounted: Mount, tmp_path: Path) -> None:
    src = tmp_path / "src"
    build_tree(src)
    m = mounted.path
    run("rsync", "-a", f"{src}/", f"{m}/r/")
    diff_r(src, m / "r")
    assert_same_tree(src, m / "r")
    second = run("rsync", "-ai", f"{src}/", f"{m}/r/")
    lines = [line for line in second.stdout.splitlines() if line.strip()]
    # Known server limitation: SeaweedFS drops the metadata of directory markers, so a
    # directory's time/permissions/owner may be reported as changed ('.d' lines with only
    # t, p, o, g flags). Anything about files or symlinks, or any transfer, is a failure.
    relevant = [line for line in lines
                if not (line.startswith(".d") and set(line[2:11]) <= set(".tpog"))]
    assert relevant == [], "second rsync did something:\n" + second.stdout


def test_cp_tar_and_rsync_keep_hard_links(mounted: Mount, tmp_path: Path) -> None:
    """A link farm (cp -al), a tar archive's link entries, rsync -H and rsync
    --link-dest (snapshot backups) onto the mount: one file under several names."""
    m = mounted.path
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "f").write_text("data")
    os.link(src / "f", src / "g")
    os.link(src / "f", src / "sub" / "h")
    run("rsync", "-aH", f"{src}/", f"{m}/r/")
    assert os.stat(m / "r" / "f").st_nlink == 3
    assert os.path.samefile(m / "r" / "g", m / "r" / "sub" / "h")
    run("cp", "-al", m / "r", m / "farm")
    assert os.stat(m / "farm" / "f").st_nlink == 6
    assert os.path.samefile(m / "farm" / "g", m / "r" / "f")
    archive = tmp_path / "a.tar"
    run("tar", "-C", src, "-cf", archive, ".")
    (m / "x").mkdir()
    run("tar", "-C", m / "x", "-xf", archive)
    assert os.path.samefile(m / "x" / "f", m / "x" / "sub" / "h")
    assert os.stat(m / "x" / "g").st_nlink == 3
    # A second snapshot against the first: unchanged files become links to it.
    run("rsync", "-a", f"--link-dest={m}/r", f"{src}/", f"{m}/snap2/")
    assert os.path.samefile(m / "snap2" / "f", m / "r" / "f")
    run("rm", "-r", m / "farm")
    assert (m / "snap2" / "sub" / "h").read_text() == "data"


def test_git_on_mount(mounted: Mount, tmp_path: Path) -> None:
    repo = mounted.path / "repo"
    repo.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com"}

    def git(*args: str) -> str:
        return run("git", *args, cwd=repo, env=env).stdout

    git("init", "-q", "-b", "main")
    (repo / "README.md").write_text("# objmount test repo\n")
    (repo / "src").mkdir()
    (repo / "src" / "main.py").write_text("print('hello')\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(repo / "run.sh", 0o755)
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    (repo / "README.md").write_text("# objmount test repo\n\nsecond line\n")
    (repo / "src" / "main.py").unlink()
    (repo / "src" / "other.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-q", "-m", "second")
    log = git("log", "--format=%s").split()
    assert log == ["second", "first"]
    assert git("status", "--porcelain") == ""
    run("git", "fsck", "--full", "--strict", cwd=repo, env=env)
    assert git("ls-files").split() == ["README.md", "run.sh", "src/other.py"]
    # The executable bit went into the commit.
    assert "100755" in git("ls-tree", "HEAD", "run.sh")
    # A clone from the mount is the same repository.
    clone = tmp_path / "clone"
    run("git", "clone", "-q", repo, clone, env=env)
    assert (clone / "README.md").read_text() == "# objmount test repo\n\nsecond line\n"


def test_sqlite_survives_remount(mounted: Mount) -> None:
    db = mounted.path / "data" / "test.db"
    db.parent.mkdir()
    sql = """
        CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, value INTEGER);
        INSERT INTO t (name, value) VALUES ('alpha', 1), ('beta', 2), ('gamma', 3);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
        INSERT INTO t (name, value) SELECT 'row' || i, i FROM n;
        UPDATE t SET value = value * 10 WHERE name = 'beta';
        DELETE FROM t WHERE name = 'gamma';
    """
    run("sqlite3", db, sql)
    query = "SELECT name, value FROM t WHERE name IN ('alpha','beta','gamma') ORDER BY id;"
    expected = "alpha|1\nbeta|20\n"
    assert run("sqlite3", db, query).stdout == expected
    assert run("sqlite3", db, "SELECT count(*), sum(value) FROM t;").stdout == \
        f"2002|{1 + 20 + sum(range(1, 2001))}\n"
    assert run("sqlite3", db, "PRAGMA integrity_check;").stdout == "ok\n"
    run("sqlite3", db, "UPDATE t SET value = 99 WHERE name = 'alpha';")
    mounted.remount()
    assert run("sqlite3", db, query).stdout == "alpha|99\nbeta|20\n"
    assert run("sqlite3", db, "PRAGMA integrity_check;").stdout == "ok\n"
    assert run("sqlite3", db, "SELECT count(*) FROM t;").stdout == "2002\n"
    # No journal left behind.
    assert sorted(os.listdir(db.parent)) == ["test.db"]


PY_SCRIPT = textwrap.dedent("""
    import json, os, shutil, sys
    root = sys.argv[1]
    src = os.path.join(root, "pysrc")
    os.makedirs(os.path.join(src, "a", "b"))
    os.makedirs(os.path.join(src, "empty"))
    for rel, text in [("top.txt", "top"), ("a/one.txt", "one"), ("a/b/two.txt", "two"),
                      ("a/b/ñandú.txt", "non-ascii")]:
        with open(os.path.join(src, rel), "w") as f:
            f.write(text * 1000)
    os.chmod(os.path.join(src, "a/one.txt"), 0o600)
    os.symlink("a/b/two.txt", os.path.join(src, "link"))

    def walk(top):
        out = []
        for dirpath, dirnames, filenames in os.walk(top):
            rel = os.path.relpath(dirpath, top)
            out += [os.path.normpath(os.path.join(rel, d)) + "/" for d in dirnames]
            out += [os.path.normpath(os.path.join(rel, f)) for f in filenames]
        return sorted(out)

    result = {"walk_src": walk(src)}
    shutil.copytree(src, os.path.join(root, "pycopy"), symlinks=True)
    result["walk_copy"] = walk(os.path.join(root, "pycopy"))
    result["copy_mode"] = oct(os.stat(os.path.join(root, "pycopy/a/one.txt")).st_mode & 0o777)
    result["copy_link"] = os.readlink(os.path.join(root, "pycopy/link"))
    with open(os.path.join(root, "pycopy/a/b/ñandú.txt")) as f:
        result["copy_text"] = f.read() == "non-ascii" * 1000
    shutil.rmtree(src)
    result["src_exists"] = os.path.exists(src)
    shutil.move(os.path.join(root, "pycopy/top.txt"), os.path.join(root, "top-moved.txt"))
    with open(os.path.join(root, "pycopy/top.txt"), "w") as f:
        f.write("top")
    # A directory: rename(2) of a directory, no copy fallback needed on one file system.
    shutil.move(os.path.join(root, "pycopy"), os.path.join(root, "pymoved"))
    result["moved_exists"] = os.path.exists(os.path.join(root, "pycopy"))
    result["walk_moved"] = walk(os.path.join(root, "pymoved"))
    shutil.rmtree(os.path.join(root, "pymoved"))
    result["left"] = sorted(os.listdir(root))
    print(json.dumps(result))
""")


def test_python_script_walk_copytree_move_rmtree(mounted: Mount, tmp_path: Path,
                                                 s3_client: Any, bucket: str) -> None:
    import json

    script = tmp_path / "script.py"
    script.write_text(PY_SCRIPT)
    out = json.loads(run(sys.executable, script, mounted.path).stdout)
    expected_walk = sorted(["a/", "a/b/", "a/b/ñandú.txt", "a/b/two.txt", "a/one.txt",
                            "empty/", "link", "top.txt"])
    assert out["walk_src"] == expected_walk
    assert out["walk_copy"] == expected_walk
    assert out["copy_mode"] == "0o600"
    assert out["copy_link"] == "a/b/two.txt"
    assert out["copy_text"] is True
    assert out["src_exists"] is False
    assert out["moved_exists"] is False
    assert out["walk_moved"] == expected_walk
    assert out["left"] == ["top-moved.txt"]
    assert keys(s3_client, bucket) == {"top-moved.txt"}
    assert get(s3_client, bucket, "top-moved.txt") == b"top" * 1000


def test_overwrite_append_truncate_reach_the_store(mounted: Mount, s3_client: Any,
                                                   bucket: str) -> None:
    f = mounted.path / "f"

    def sh(command: str) -> None:
        run("sh", "-c", command, cwd=mounted.path)

    def check(expected: bytes) -> None:
        # Close-to-open: once the writing program has exited (closed), the bytes are
        # in the store, and the mount shows the same.
        assert get(s3_client, bucket, "f") == expected
        assert f.read_bytes() == expected
        assert os.stat(f).st_size == len(expected)

    sh("printf 'a much longer first version of the file\\n' > f")
    check(b"a much longer first version of the file\n")
    sh("echo x > f")
    check(b"x\n")
    sh("echo y >> f")
    check(b"x\ny\n")
    sh("printf 'zz' >> f")
    check(b"x\ny\nzz")
    run("truncate", "-s", "3", f)
    check(b"x\ny")
    run("truncate", "-s", "10", f)
    check(b"x\ny" + b"\0" * 7)
    run("truncate", "-s", "0", f)
    check(b"")
    sh("echo again >> f")
    check(b"again\n")
    # Through an open descriptor too: ftruncate then write, stored at close.
    with open(f, "r+b") as fh:
        fh.truncate(2)
        fh.seek(0, os.SEEK_END)
        fh.write(b"++")
    check(b"ag++")


@pytest.fixture(autouse=True)
def _no_stray_tools() -> None:
    for tool in ("cp", "mv", "rm", "tar", "rsync", "git", "sqlite3", "diff", "truncate"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed")
