"""The record of multipart uploads a daemon started: what a later daemon aborts after a
crash, and what it must leave alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from objmount.store.uploadlog import PREFIX, Unfinished, UploadLog, abort_left_behind


def dead_log(directory: Path, pid: int, lines: list[dict[str, str]], tail: str = "") -> Path:
    """A log as a killed process leaves it: nobody holds its lock."""
    path = directory / f"{PREFIX}{pid}"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail)
    return path


def started(upload_id: str, endpoint: str = "http://s3", key: str = "k") -> dict[str, str]:
    return {"started": upload_id, "endpoint": endpoint, "bucket": "b", "key": key}


def test_a_dead_process_s_unfinished_uploads_are_aborted_and_its_log_removed(
        tmp_path: Path) -> None:
    path = dead_log(tmp_path, 999_999, [started("u1"), started("u2", key="k2"),
                                        {"ended": "u1"}], tail='{"started": "u3", "endp')
    aborted: list[Unfinished] = []
    assert abort_left_behind(tmp_path, "http://s3", aborted.append) == 1
    assert aborted == [Unfinished("http://s3", "b", "k2", "u2")]
    assert not path.exists()


def test_a_live_process_s_log_is_left_alone(tmp_path: Path) -> None:
    live = UploadLog(tmp_path, "http://s3")  # holds its lock, as a running daemon does
    live.started("b", "k", "u1")
    aborted: list[Unfinished] = []
    assert abort_left_behind(tmp_path, "http://s3", aborted.append) == 0
    assert aborted == [] and live.path.exists()
    live.ended("u1")
    live.close()
    assert not live.path.exists()


def test_uploads_at_another_store_are_kept_for_a_daemon_that_talks_to_it(
        tmp_path: Path) -> None:
    path = dead_log(tmp_path, 999_998, [started("u1"), started("u2", endpoint="http://other")])
    aborted: list[Unfinished] = []
    assert abort_left_behind(tmp_path, "http://s3", aborted.append) == 1
    assert [u.upload_id for u in aborted] == ["u1"]
    assert abort_left_behind(tmp_path, "http://s3", aborted.append) == 0
    assert abort_left_behind(tmp_path, "http://other", aborted.append) == 1
    assert [u.upload_id for u in aborted] == ["u1", "u2"] and not path.exists()


def test_a_store_that_cannot_be_asked_now_keeps_the_log_for_the_next_start(
        tmp_path: Path) -> None:
    path = dead_log(tmp_path, 999_997, [started("u1")])

    def unreachable(upload: Unfinished) -> None:
        raise OSError("connection refused")

    assert abort_left_behind(tmp_path, "http://s3", unreachable) == 0
    assert path.exists()
    aborted: list[Unfinished] = []
    assert abort_left_behind(tmp_path, "http://s3", aborted.append) == 1


@pytest.mark.parametrize("ended", [True, False])
def test_the_live_log_records_start_and_end(tmp_path: Path, ended: bool) -> None:
    log = UploadLog(tmp_path, "http://s3")
    log.started("b", "k", "u1")
    if ended:
        log.ended("u1")
    lines = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert lines[0] == started("u1")
    assert len(lines) == (2 if ended else 1)
    log.close()
