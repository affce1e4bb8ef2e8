"""Differential tests of direct interception: the same scripted session runs once on a
local directory (no shim at all) and once on an object path under ``objmount run``;
what the programs print and the trees they leave must be the same.

Known, documented differences are normalised away, and only those: the directory's
own path in output, ``ls``'s "total" line, directory sizes and link counts, directory
times (doc/SEMANTICS.md: directories are prefixes; on SeaweedFS their metadata is not
kept), and modification times of files a session created "now".
"""

from __future__ import annotations

import difflib
import os
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from intercept import Intercept, local_snapshot

pytestmark = [pytest.mark.s3]


def make_source(root: Path) -> Path:
    """A small tree to copy in: modes, a symlink, nested and empty directories, fixed
    times with sub-second parts, a file larger than one 8 MiB block."""
    src = root / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "empty").mkdir()
    files = {"a.txt": b"alpha\n", "sub/b.bin": os.urandom(70_000),
             "sub/deeper/c.txt": b"deep\n" * 100, "big.bin": os.urandom(9 * 1024 * 1024),
             "ünï cödé.txt": "non-ASCII ü\n".encode()}
    for i, (rel, data) in enumerate(sorted(files.items())):
        path = src / rel
        path.write_bytes(data)
        os.chmod(path, (0o644, 0o600, 0o755, 0o640, 0o444)[i % 5])
        os.utime(path, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_987_654_321 + i))
    os.symlink("a.txt", src / "link")
    os.symlink("missing", src / "dangling")
    return src


def strip_times(snap: dict[str, list[Any]], keep: tuple[str, ...]) -> dict[str, list[Any]]:
    """Modification times only under ``keep``: what a tool copied with its times."""
    return {k: (v[:4] if v[0] == "file" and not k.startswith(keep) else v)
            for k, v in snap.items()}


def files_only(snap: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Directories by type only (their modes are not kept on SeaweedFS markers)."""
    return {k: (["dir"] if v[0] == "dir" else v) for k, v in snap.items()}


def normalise(text: str, directory: str, *aliases: str) -> str:
    for name in (directory, *aliases):
        text = text.replace(name, "$D")
    return text


class Differential:
    def __init__(self, om: Intercept, tmp_path: Path) -> None:
        self.om = om
        self.tmp = tmp_path
        self.src = make_source(tmp_path)

    def run(self, script: str, *, remote: str | None = None,
            times: tuple[str, ...] = (), check_tree: bool = True) -> str:
        local_dir = self.tmp / "local"
        local_dir.mkdir()
        env = {"SRC": str(self.src), "PYTHON": sys.executable, "LC_ALL": "C.UTF-8",
               "TZ": "UTC", "GIT_CONFIG_GLOBAL": "/dev/null"}
        local = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                               text=True, timeout=180, cwd=self.tmp, stdin=subprocess.DEVNULL,
                               env={**os.environ, **env, "D": str(local_dir)})
        assert local.returncode == 0, f"local run failed:\n{local.stdout}\n{local.stderr}"
        target = remote or f"{self.om.path}/work"
        obj = self.om.run("bash", "-euo", "pipefail", "-c", script, cwd=self.tmp,
                          extra_env={**env, "D": target})
        canonical = f"{self.om.path}/work"
        got = normalise(obj.stdout, target, canonical)
        want = normalise(local.stdout, str(local_dir))
        if got != want:
            pytest.fail("output differs (- local, + object path):\n" + "\n".join(
                difflib.unified_diff(want.splitlines(), got.splitlines(), lineterm="")) +
                f"\nstderr: {obj.stderr[-2000:]}", pytrace=False)
        if check_tree:
            expected = files_only(local_snapshot(local_dir))
            actual = files_only(self.om.snapshot(canonical))
            assert strip_times(actual, times) == strip_times(expected, times)
        return obj.stdout


@pytest.fixture
def diff(om: Intercept, tmp_path: Path) -> Differential:
    return Differential(om, tmp_path)


LS = (r"""ls -l --time-style=+%Y "$@" | awk '$1 != "total" """
      r"""{ if ($1 ~ /^d/) { $2 = "-"; $5 = "-"; $6 = "-" } $1 = $1; print }'""")

COREUTILS = r"""
lsl() { """ + LS + r"""; }
mkdir -p "$D" && cd "$D"
mkdir -p a/b/c
echo one > a/one.txt
seq 1 2000 > nums.txt
head -c 5000 /dev/zero | tr '\0' x > a/b/big.txt
touch -d '2021-02-03 04:05:06.5' a/one.txt
ln -s one.txt a/link
chmod 640 a/one.txt
cp -r a a_copy
cp -a a a_arch
cp "$SRC/big.bin" big.bin
mv a_copy a_moved
cat a/one.txt a/link
head -c 20 a/b/big.txt; echo
tail -c 7 nums.txt
wc nums.txt a/b/big.txt
sort -rn nums.txt | sed -n 1,3p
md5sum nums.txt a/b/big.txt big.bin
stat -c '%n %s %a %F %U %G' a/one.txt a/link nums.txt && stat -c '%n %a %F' a/b
stat -L -c '%n %s %Y' a/link a_arch/one.txt
find . | sort
find . -type f -name '*.txt' -size +1k | sort
find . -newer a/one.txt -type f | sort
lsl a a_arch
ls -a a/b | sort
du -a --apparent-size -b . | sort -k2 | awk '{ print $2 }'
du -b --apparent-size a/one.txt nums.txt
dd if=nums.txt of=dd.out bs=100 count=3 skip=2 2>/dev/null
md5sum dd.out
mkdir -p x/y/z && rmdir x/y/z && ls x/y | wc -l
touch newfile && [ -e newfile ] && [ -f newfile ] && [ ! -d newfile ] && echo exists
readlink a/link
realpath a/b/../one.txt | sed "s|$PWD|PWD|"
rm -r a_moved
chmod 755 a/b/big.txt && stat -c %a a/b/big.txt
truncate -s 3 a/b/big.txt && cat a/b/big.txt && echo
ls
"""


def test_coreutils_on_object_paths(diff: Differential) -> None:
    diff.run(COREUTILS)


def test_coreutils_with_s3_uri_paths(diff: Differential) -> None:
    """The same session with the directory given as s3://BUCKET/KEY."""
    diff.run(COREUTILS, remote=f"s3://{diff.om.bucket}/work")


BASH = r"""
mkdir -p "$D/g" && cd "$D/g"
pwd | sed "s|$D|D|"
touch f1 f2 f3.txt .hidden
echo * ; echo *.txt ; echo .h*
echo hi > out ; echo more >> out ; cat < out
wc -l < out
exec 3<>rw ; echo via-fd3 >&3 ; exec 3>&- ; cat rw
exec 4>appended ; echo one >&4 ; echo two >&4 ; exec 4>&- ; cat appended
echo 'SOURCED=yes' > lib.sh ; source lib.sh ; echo "$SOURCED"
printf '#!/bin/bash\necho "script $0 $#"\n' > run.sh ; chmod +x run.sh
./run.sh a b | sed "s|$D|D|"
cd .. ; pwd | sed "s|$D|D|"
(cd g && ls -d r*)
for f in g/f*; do echo "$f"; done
[ -d g ] && echo dir ; [ -f g/out ] && echo file ; [ -x g/run.sh ] && echo exec
[ -s g/out ] && echo nonempty ; [ g/out -nt g/f1 ] || echo not-newer
cd g && cat out | sort -r > sorted && cat sorted
mkdir -p sub && cd sub && echo "in $(basename "$PWD")" && cd - >/dev/null && basename "$PWD"
"""


def test_bash_on_object_paths(diff: Differential) -> None:
    diff.run(BASH)


PYTHON = r"""
"$PYTHON" - "$D" "$SRC" <<'EOF'
import os, pathlib, shutil, subprocess, sys
D, SRC = sys.argv[1], sys.argv[2]
os.makedirs(D, exist_ok=True)
os.chdir(D)
p = pathlib.Path("p/q")
p.mkdir(parents=True)
pathlib.Path("p/a.txt").write_text("alpha\n")
with open("p/b.bin", "wb") as f:
    f.write(bytes(range(256)) * 100)
    f.seek(10)
    f.write(b"XYZ")
with open("p/b.bin", "r+b") as f:
    f.seek(0, 2)
    f.write(b"tail")
    f.seek(5)
    print(f.read(10))
with open("p/a.txt", "a") as f:
    f.write("appended\n")
print(open("p/a.txt").read(), end="")
print(sorted(os.listdir("p")))
print(sorted((e.name, e.is_dir(), e.is_file(), e.is_symlink()) for e in os.scandir("p")))
print([(d.replace(D, "$D"), sorted(ds), sorted(fs)) for d, ds, fs in os.walk(D)])
shutil.copytree(SRC, "tree", symlinks=True)
shutil.copy2(os.path.join(SRC, "a.txt"), "copied.txt")
print(os.stat("copied.txt").st_mtime_ns == os.stat(os.path.join(SRC, "a.txt")).st_mtime_ns)
print(sorted(str(x) for x in pathlib.Path("tree").rglob("*.txt")))
shutil.rmtree("tree/sub")
os.rename("p/a.txt", "p/renamed.txt")
os.replace("p/b.bin", "p/renamed.txt")
print(os.path.getsize("p/renamed.txt"), os.path.exists("p/b.bin"), os.path.isdir("p/q"))
print(subprocess.run(["cat", "copied.txt"], capture_output=True, text=True).stdout, end="")
print(subprocess.run("ls p | wc -l", shell=True, capture_output=True, text=True).stdout, end="")
print(os.path.realpath("p/q/..").replace(D, "$D"), os.getcwd().replace(D, "$D"))
os.symlink("renamed.txt", "p/ln")
print(os.readlink("p/ln"), os.path.islink("p/ln"), os.stat("p/ln").st_size)
os.chmod("copied.txt", 0o600)
print(oct(os.stat("copied.txt").st_mode))
os.utime("copied.txt", ns=(1, 1_500_000_000_000_000_001))
print(os.stat("copied.txt").st_mtime_ns)
os.truncate("copied.txt", 2)
print(open("copied.txt", "rb").read())
try:
    os.rmdir("p")
except OSError as exc:
    print("rmdir:", exc.errno)
try:
    open("nonexistent/x", "w")
except OSError as exc:
    print("open:", exc.errno)
EOF
"""


def test_python_on_object_paths(diff: Differential) -> None:
    diff.run(PYTHON)


ARCHIVES = r"""
mkdir -p "$D" && cd "$D"
tar -C "$SRC" -cf t.tar .
tar -tf t.tar | sort
mkdir x && tar -C x -xf t.tar
tar -C "$SRC" -czf t.tgz a.txt sub
mkdir y && tar -C y -xzf t.tgz && find y | sort
gzip -k x/a.txt && gunzip -c x/a.txt.gz && ls x/a.txt*
zstd -q x/sub/b.bin -o b.zst && zstd -qdc b.zst | md5sum && md5sum x/sub/b.bin
"""


def test_tar_gzip_zstd_on_object_paths(diff: Differential) -> None:
    diff.run(ARCHIVES, times=("x/", "y/"))


RSYNC = r"""
mkdir -p "$D" && cd "$D"
rsync -a "$SRC/" r/
rsync -ai "$SRC/" r/ | wc -l
rsync -a --delete "$SRC/sub/" r/sub-copy/
echo changed > "$D/r/a.txt"
rsync -ai --checksum "$SRC/a.txt" r/ | cut -c1-11
cat r/a.txt
rsync -a r/ back/
cp -a "$SRC" cpa
"""


def test_rsync_and_cp_a_keep_metadata(diff: Differential) -> None:
    diff.run(RSYNC, times=("r/", "back/", "cpa/"))


GIT = r"""
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t
export GIT_COMMITTER_EMAIL=t@example.com GIT_AUTHOR_DATE='2020-01-01T00:00:00Z'
export GIT_COMMITTER_DATE='2020-01-01T00:00:00Z'
mkdir -p "$D/repo" && cd "$D/repo"
git init -q -b main .
printf 'line1\nline2\n' > README
mkdir src && echo 'int x;' > src/x.c
git add . && git commit -qm first
echo line3 >> README
git status --short
git diff --stat
git commit -qam second
git mv src/x.c src/y.c && git commit -qm rename
git log --format='%H %s'
git checkout -q -b topic && echo t > t.txt && git add t.txt && git commit -qm topic
git checkout -q main && git merge -q topic && git log --oneline | wc -l
git gc -q --aggressive && git fsck --no-progress 2>&1 | grep -v '^Checking' || true
git status --short
git cat-file -p HEAD^{tree}
"""


def test_git_on_object_paths(diff: Differential) -> None:
    diff.run(GIT, check_tree=False)
    # git's object store (packs, mmapped) must also be readable from a fresh process.
    out = diff.om.sh(f"cd {diff.om.path}/work/repo && git log --oneline | wc -l && "
                     "git fsck --no-progress 2>&1 | { grep -cv '^Checking' || true; }").stdout
    assert out.split() == ["4", "0"]


SQLITE = r"""
mkdir -p "$D" && cd "$D"
sqlite3 db.sqlite 'create table t(x integer primary key, y text);'
for i in $(seq 1 50); do echo "insert into t(y) values ('row $i');"; done | sqlite3 db.sqlite
sqlite3 db.sqlite 'select count(*), sum(x) from t; update t set y = upper(y) where x % 7 = 0;'
sqlite3 db.sqlite "pragma journal_mode=wal; insert into t(y) values ('wal');
select count(*) from t;"
sqlite3 db.sqlite 'vacuum; pragma integrity_check; select y from t where x = 14;'
sqlite3 db.sqlite .dump | md5sum
"""


def test_sqlite3_on_object_paths(diff: Differential) -> None:
    diff.run(SQLITE, check_tree=False)


TEXT = r"""
mkdir -p "$D" && cd "$D"
cp -r "$SRC" t
grep -rn deep t | sort
grep -rl alpha . | sort
sed -i 's/alpha/ALPHA/' t/a.txt && cat t/a.txt
sed -i.bak -e '1i first' t/sub/deeper/c.txt && head -2 t/sub/deeper/c.txt && ls t/sub/deeper
cp -r t u && echo extra >> u/a.txt
diff -r t u || echo "diff exit $?"
diff -u t/a.txt u/a.txt | tail -2 || true
cmp t/big.bin u/big.bin && echo same
"""


def test_grep_sed_diff_on_object_paths(diff: Differential) -> None:
    diff.run(TEXT)


MAKE = r"""
mkdir -p "$D/proj" && cd "$D/proj"
cat > main.c <<'EOF'
#include <stdio.h>
#include "greeting.h"
int main(void) { printf("%s %d\n", GREETING, answer()); return 0; }
EOF
printf '#define GREETING "hello"\nint answer(void);\n' > greeting.h
printf '#include "greeting.h"\nint answer(void) { return 42; }\n' > answer.c
printf 'hello: main.o answer.o\n\tgcc -o $@ $^\n' > Makefile
printf '%%.o: %%.c greeting.h\n\tgcc -c -o $@ $<\n' >> Makefile
make -s && ./hello
make -q && echo up-to-date
sleep 1.1 && touch answer.c && make -s && ./hello | cut -d' ' -f2
sed -i 's/hello"/bonjour"/' greeting.h && make -s && ./hello
"""


def test_make_builds_a_program_stored_in_object_storage(diff: Differential) -> None:
    out = diff.run(MAKE, check_tree=False)
    assert out.splitlines()[-1] == "bonjour 42"


def test_program_and_script_stored_as_objects_run(om: Intercept, tmp_path: Path) -> None:
    """exec of an object path: the kernel reads a local copy; a script's $0 is the path
    the program was asked to run."""
    exe = tmp_path / "tool"
    subprocess.run(["gcc", "-o", str(exe), "-x", "c", "-"], check=True,
                   input='#include <stdio.h>\nint main(int c, char **v) '
                         '{ printf("%s %d\\n", v[0], c); return 3; }\n', text=True)
    d = om.path
    out = om.sh(f"cp {exe} {d}/tool && chmod 755 {d}/tool && "
                f"printf '#!/bin/sh\\necho \"$0 $1\"\\n' > {d}/s.sh && chmod +x {d}/s.sh && "
                f"cd {d} && ./s.sh x && {d}/s.sh y && "
                f"{{ ./tool a b || echo \"status $?\"; }}").stdout
    assert out.splitlines() == ["./s.sh x", f"{d}/s.sh y", "./tool 3", "status 3"]
    denied = om.sh(f"chmod 644 {d}/s.sh && {d}/s.sh", check=False)
    assert denied.returncode == 126 and "Permission denied" in denied.stderr


IDENTITY = """
import errno, os, sys
d = sys.argv[1]
os.makedirs(f"{d}/sub", exist_ok=True)
open(f"{d}/sub/f", "w").write("x")
os.symlink("f", f"{d}/sub/l")
by_path = {n: os.lstat(f"{d}/sub/{n}") for n in ("f", "l")}
by_entry = {e.name: e.inode() for e in os.scandir(f"{d}/sub")}
fd = os.open(f"{d}/sub/f", os.O_RDONLY)
by_fd = os.fstat(fd)
os.close(fd)
print(by_entry == {n: st.st_ino for n, st in by_path.items()},
      (by_fd.st_dev, by_fd.st_ino) == (by_path["f"].st_dev, by_path["f"].st_ino),
      by_path["f"].st_ino != by_path["l"].st_ino,
      os.stat(f"{d}/sub").st_dev == by_path["f"].st_dev != os.stat("/").st_dev)
os.chdir(f"{d}/sub")
print(os.getcwd() == f"{d}/sub", os.path.realpath("l") == f"{d}/sub/f")
print(sys.argv[2] in os.listdir(os.path.dirname(d)))
os.setxattr(f"{d}/sub/f", "user.k", b"v")
fd = os.open(f"{d}/sub/f", os.O_RDONLY)
print(os.getxattr(f"{d}/sub/f", "user.k") == b"v", os.listxattr(fd) == ["user.k"])
os.close(fd)
"""


def test_identity_agrees_between_stat_fstat_and_readdir(om: Intercept) -> None:
    """rm -r, fts and rsync compare st_dev/st_ino from stat, fstat and d_ino; the object
    namespace is one device of its own. getcwd and realpath give object paths, and the
    provider directory lists the buckets. user.* xattrs work by path and descriptor."""
    out = om.run(sys.executable, "-c", IDENTITY, om.path, om.bucket).stdout
    assert out.split() == ["True"] * 9


READ_TIMES = """
import os, sys
p = sys.argv[1]
before = os.stat(p)
fd = os.open(p, os.O_RDONLY)
while os.read(fd, 1 << 20):
    pass
during = os.fstat(fd)
os.close(fd)
after = os.stat(p)
seen = [(st.st_size, st.st_mtime_ns, st.st_ctime_ns) for st in (before, during, after)]
print(len(set(seen)))
print(seen, file=sys.stderr)
"""


def test_reading_never_looks_like_a_change(om: Intercept, s3_client: Any) -> None:
    """Fetching an object's bytes into its cache file is no change to the file: stat and
    fstat agree before, during and after a read (tar checks exactly this)."""
    for key, size in (("r/small", 100), ("r/big", 9 << 20)):
        s3_client.put_object(Bucket=om.bucket, Key=key, Body=b"z" * size)
    res = om.run(sys.executable, "-c", READ_TIMES, f"{om.path}/r/big")
    assert res.stdout == "1\n", res.stderr
    res = om.run("tar", "-cf", "/dev/null", "-C", om.path, "r", check=False)
    assert (res.returncode, res.stderr) == (0, "")


SPECIAL = """
import errno, os, stat, sys
d = sys.argv[1]
os.umask(0o022)
os.mkfifo(f"{d}/fifo", 0o666)
os.mknod(f"{d}/plain", 0o644)
print(oct(os.lstat(f"{d}/fifo").st_mode), oct(os.lstat(f"{d}/plain").st_mode))
try:
    os.open(f"{d}/fifo", os.O_RDONLY | os.O_NONBLOCK)
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""


def test_mkfifo_and_mknod_store_the_inode(om: Intercept, s3_client: Any) -> None:
    """As on the FUSE mount: an empty object with the type in its mode. The shim cannot
    give a program a FIFO of the store's, so opening one is ENXIO."""
    out = om.run(sys.executable, "-c", SPECIAL, om.path).stdout.split()
    assert out == [oct(stat.S_IFIFO | 0o644), oct(stat.S_IFREG | 0o644), "ENXIO"]
    meta = s3_client.head_object(Bucket=om.bucket, Key="fifo")["Metadata"]
    assert int(meta["mode"]) == stat.S_IFIFO | 0o644


HARD_LINKS = r"""
mkdir -p "$D/h" && cd "$D/h"
echo one > a && mkdir d
ln a b && ln a d/c
stat -c '%n %h %s' a b d/c
[ a -ef b ] && [ a -ef d/c ] && echo same-file
echo two >> d/c && cat b
chmod 600 b && stat -c '%n %a' a
ln -s a s && ln -P s hs && ln -L s hf
stat -c '%n %h %F' s hs hf a
readlink hs && [ hf -ef a ] && echo followed
rm a && stat -c '%n %h' b d/c && cat d/c
mv b d/moved && [ d/moved -ef d/c ] && echo still-one
ln d/c d/moved 2>/dev/null || echo exists
python3 -c '
import errno, os
for src, dst in (("d", "e"), ("nothing", "f")):
    try:
        os.link(src, dst)
    except OSError as exc:
        print(errno.errorcode[exc.errno])
'
rm d/c && stat -c '%n %h' d/moved && cat d/moved
"""


def test_hard_links_with_ln(diff: Differential) -> None:
    """ln, ln -P and -L (a symlink linked itself, or followed), rm and mv of one name:
    the same answers as on a local disk."""
    diff.run(HARD_LINKS)


LINK_TOOLS = r"""
mkdir -p "$D/t" && cd "$D/t"
mkdir -p src/sub && echo data > src/f && ln src/f src/g && ln src/f src/sub/h
cp -al src farm && stat -c '%n %h' src/f farm/sub/h && [ farm/g -ef src/f ] && echo farm
a=$(mktemp) && tar -cf "$a" src && mkdir out && tar -xf "$a" -C out && rm "$a"
stat -c '%n %h' out/src/f out/src/g out/src/sub/h && [ out/src/g -ef out/src/sub/h ] && echo tar
rsync -aH src/ copy/ && stat -c '%n %h' copy/f copy/sub/h && [ copy/f -ef copy/g ] && echo rsync
rm -r farm && stat -c '%n %h' src/g
"""


def test_cp_tar_and_rsync_keep_hard_links(diff: Differential) -> None:
    """cp -al (a link farm), tar (a link in the archive, extracted as one) and rsync -H."""
    diff.run(LINK_TOOLS)


SETGID_DIRS = r"""
mkdir -p "$D/s" && cd "$D/s"
mkdir shared && chgrp 4242 shared && chmod 2775 shared
touch shared/f && mkdir shared/d && ln -s f shared/l
stat -c '%n %g %a' shared/f shared/d && stat -c '%n %g' shared/l
touch plain && stat -c '%n %g' plain
"""


def test_a_set_group_id_directory_gives_new_entries_its_group(diff: Differential) -> None:
    diff.run(SETGID_DIRS)


XATTRS = """
import ctypes, errno, os, sys
d = sys.argv[1]
f = f"{d}/x/f"
os.makedirs(f"{d}/x")
open(f, "w").write("data")
os.symlink("f", f"{d}/x/l")
os.setxattr(f, "user.a", bytes(range(200)))
os.setxattr(f"{d}/x/l", "user.b", b"through the link")  # follows it
os.setxattr(f"{d}/x", "user.dir", b"d")
def err(fn, *args):
    try:
        fn(*args)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    return "ok"
print(sorted(os.listxattr(f)), os.getxattr(f, "user.a") == bytes(range(200)),
      os.getxattr(f"{d}/x", "user.dir"),
      err(os.setxattr, f, "user.a", b"", os.XATTR_CREATE),
      err(os.getxattr, f, "user.none"), err(os.getxattr, f, "security.selinux"),
      err(lambda: os.setxattr(f"{d}/x/l", "user.c", b"", follow_symlinks=False)))
fd = os.open(f, os.O_RDWR)
os.write(fd, b"DATA")
os.removexattr(fd, "user.a")
os.close(fd)
print(os.listxattr(f), open(f).read())
libc = ctypes.CDLL(None, use_errno=True)  # the C calls, as a C program makes them
size = libc.getxattr(f.encode(), b"user.b", None, 0)
short = libc.getxattr(f.encode(), b"user.b", ctypes.create_string_buffer(2), 2)
print(size, short, errno.errorcode[ctypes.get_errno()])
"""


def test_xattrs_through_interception(om: Intercept, s3_client: Any) -> None:
    """As on the FUSE mount: user.* in s3fs's x-amz-meta-xattr, by path (following a
    symlink or not) and by descriptor; a small buffer gives ERANGE (libc's contract)."""
    out = om.run(sys.executable, "-c", XATTRS, om.path).stdout.splitlines()
    assert out == ["['user.a', 'user.b'] True b'd' EEXIST ENODATA ENODATA EPERM",
                   "['user.b'] DATA", "16 -1 ERANGE"]
    meta = s3_client.head_object(Bucket=om.bucket, Key="x/f")["Metadata"]
    assert urllib.parse.unquote(meta["xattr"]) == '{"user.b":"dGhyb3VnaCB0aGUgbGluaw=="}'
