"""`objmount status`: each running daemon's report, and its request counters checked
against the requests the real server counted."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Mount, run_objmount
from intercept import Intercept
from s3fixtures import server_requests

from objmount.frontends import status
from objmount.server import ServerInfo


def reports(env: dict[str, str]) -> list[dict[str, object]]:
    result = run_objmount("status", "--json", env=env)
    assert result.returncode in (0, 3), result.stderr
    return list(json.loads(result.stdout)) if result.stdout.strip() else []


def report_of(pid: int | None, env: dict[str, str]) -> dict[str, object]:
    """The daemon's report once it covers everything done so far (one interval later)."""
    time.sleep(status.PUBLISH_INTERVAL * 1.5)
    found = [r for r in reports(env) if r["pid"] == pid]
    assert len(found) == 1, reports(env)
    return found[0]


def test_status_counts_what_the_server_counted(mounted: Mount, s3_server: ServerInfo,
                                               bucket: str) -> None:
    """Every request the mount sent is in its report: the server's LIST and PUT counts
    equal the report's, and its GETs (which include HEADs) equal HEAD + GET."""
    for i in range(5):
        (mounted.path / f"f{i}").write_bytes(os.urandom(1000 + i))
    (mounted.path / "d").mkdir()
    data = os.urandom(3 << 20)
    (mounted.path / "d" / "big").write_bytes(data)
    assert sorted(os.listdir(mounted.path)) == ["d", "f0", "f1", "f2", "f3", "f4"]
    mounted.remount()  # reads below come from the store
    before_server = server_requests(s3_server, bucket)
    before = report_of(mounted.pid, mounted.env)["store"]
    assert isinstance(before, dict)
    assert (mounted.path / "d" / "big").read_bytes() == data
    os.unlink(mounted.path / "f0")

    report = report_of(mounted.pid, mounted.env)
    after = report["store"]
    assert isinstance(after, dict)
    served = server_requests(s3_server, bucket) - before_server

    def ours(kind: str) -> int:
        return int(after["requests"].get(kind, 0)) - int(before["requests"].get(kind, 0))

    def theirs(kind: str) -> int:
        return sum(n for k, n in served.items() if k.split()[0] == kind)

    assert ours("LIST") == theirs("LIST")
    assert ours("PUT") == theirs("PUT") == 0
    assert ours("DELETE") == theirs("DELETE") == 1
    assert ours("HEAD") + ours("GET") == theirs("GET") > 0
    assert int(after["bytes_received"]) - int(before["bytes_received"]) == len(data)
    assert report["kind"] == "mount" and report["where"] == str(mounted.path)
    assert report["root"] == f"s3://{bucket}"
    reads = report["reads"]
    assert isinstance(reads, dict) and reads["misses"] >= 1


def test_status_lists_a_mount_until_it_is_unmounted(mount_factory: Callable[..., Mount],
                                                    bucket: str) -> None:
    m = mount_factory(f"s3://{bucket}")
    m.mount()
    pid = m.pid
    text = run_objmount("status", env=m.env)
    assert text.returncode == 0
    assert f"mount pid {pid}: {m.path}" in text.stdout
    assert "requests:" in text.stdout
    m.umount()
    assert all(r["pid"] != pid for r in reports(m.env))


def test_a_killed_daemons_report_is_dropped(tmp_path: Path) -> None:
    """A SIGKILLed daemon cannot remove its file: the reader recognises it by its pid."""
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stale = status.status_dir() / f"{dead}.json"
    stale.write_text(json.dumps({"pid": dead, "started": 0}))
    assert all(r["pid"] != dead for r in status.running())
    assert not stale.exists()


def test_options_before_the_subcommand_count(mount_factory: Callable[..., Mount],
                                             bucket: str, tmp_path: Path) -> None:
    """`objmount -v --log-file F mount ...` logs to F, as the options after it do."""
    log = tmp_path / "before.log"
    m = mount_factory(f"s3://{bucket}")
    m.path.mkdir(parents=True, exist_ok=True)
    result = run_objmount("-v", "--log-file", str(log), "mount",
                          "-o", f"cache_dir={tmp_path / 'cache'}", f"s3://{bucket}",
                          str(m.path), env=m.env)
    assert result.returncode == 0, result.stderr
    m.pid = m._daemon_pid()
    assert "mounted" in log.read_text()


def test_status_shows_the_interception_daemon(om: Intercept, s3_server: ServerInfo) -> None:
    """The daemon `objmount run` started reports itself, with the bytes of a read."""
    om.run("bash", "-c", f"head -c 100000 /dev/urandom > {om.path}/r && cat {om.path}/r "
           "> /dev/null")
    time.sleep(status.PUBLISH_INTERVAL * 1.5)
    found = [r for r in reports(om.env) if r["kind"] == "intercept"]
    assert len(found) == 1
    report = found[0]
    assert report["root"] == "all buckets"
    assert str(report["where"]).startswith(om.env["XDG_RUNTIME_DIR"])
    store = report["store"]
    assert isinstance(store, dict)
    assert store["bytes_sent"] >= 100000 and store["requests"]["PUT"] >= 1
