"""The shim <-> daemon wire format, on both sides: the sans-IO Python codec and the C
codec (shim/codec.c, driven through tests/c/codec_harness.c). Round trips, arbitrary
splits of the byte stream, garbage (neither side may do anything but refuse it, and
both must agree on what is a frame), and the numbers both sides must share."""

from __future__ import annotations

import contextlib
import re
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objmount.core import blockmap
from objmount.frontends.intercept import protocol as p
from objmount.frontends.intercept import statpage

ROOT = Path(__file__).resolve().parent.parent
HEADER = (ROOT / "shim" / "objmount.h").read_text()

args_strategy = st.lists(
    st.one_of(st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
              st.binary(max_size=300)),
    max_size=p.MAX_ARGS)
messages = st.builds(p.Message, op=st.integers(0, 0xFFFF), args=args_strategy.map(tuple),
                     fd_count=st.integers(0, p.MAX_FDS))


# -- the Python codec ------------------------------------------------------------------------
@given(messages)
def test_round_trip(msg: p.Message) -> None:
    assert p.decode_frame(p.encode(msg)) == msg


@given(st.lists(messages, min_size=1, max_size=5), st.data())
def test_any_split_of_the_stream_gives_the_same_messages(msgs: list[p.Message],
                                                         data: st.DataObject) -> None:
    stream = b"".join(p.encode(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = p.Decoder()
    got: list[p.Message] = []
    for lo, hi in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got.extend(decoder.feed(stream[lo:hi]))
    assert got == msgs
    assert decoder.pending == 0


@given(st.binary(max_size=2000))
def test_garbage_is_refused_never_crashes(data: bytes) -> None:
    decoder = p.Decoder()
    try:
        for msg in decoder.feed(data):
            assert isinstance(msg, p.Message)
    except p.ProtocolError:
        pass


@given(messages, st.integers(0, 200), st.integers(0, 255))
def test_corrupted_frames_are_refused_or_decoded(msg: p.Message, where: int, byte: int) -> None:
    frame = bytearray(p.encode(msg))
    frame[where % len(frame)] = byte
    with contextlib.suppress(p.ProtocolError):
        p.decode_frame(bytes(frame))


def test_encoder_refuses_what_cannot_travel() -> None:
    for bad in (p.Message(70000), p.Message(1, (True,)), p.Message(1, ("text",)),  # type: ignore[arg-type]
                p.Message(1, (1 << 63,)), p.Message(1, (b"x" * p.MAX_FRAME,)),
                p.Message(1, fd_count=p.MAX_FDS + 1), p.Message(1, tuple(range(65)))):
        with pytest.raises(p.ProtocolError):
            p.encode(bad)
    with pytest.raises(p.ProtocolError):
        p.Decoder().feed(struct.pack("<I", p.MAX_FRAME) + b"\0" * 10)


def test_entries_round_trip() -> None:
    entries = [(1, p.DT_DIR, b"."), (2, p.DT_REG, "ünï".encode()), (3, p.DT_LNK, b"x" * 255)]
    assert p.unpack_entries(p.pack_entries(entries)) == entries
    with pytest.raises(p.ProtocolError):
        p.unpack_entries(p.pack_entries(entries)[:-1])


# -- the C codec against the Python one --------------------------------------------------------
@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("codec") / "codec_harness"
    subprocess.run(["gcc", "-O1", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-o",
                    str(exe), str(ROOT / "tests" / "c" / "codec_harness.c"),
                    str(ROOT / "shim" / "codec.c")], check=True)
    return exe


def c_decode(harness: Path, frames: list[bytes]) -> list[str]:
    data = b"".join(struct.pack("<I", len(f)) + f for f in frames)
    out = subprocess.run([str(harness), "decode"], input=data, capture_output=True,
                         check=True).stdout
    return out.decode().splitlines()


def described(msg: p.Message) -> str:
    parts = [str(msg.op), str(len(msg.args))]
    for a in msg.args:
        parts.append(f"i:{a}" if isinstance(a, int) else f"b:{a.hex()}")
    return " ".join(parts)


def python_view(frame: bytes) -> str:
    try:
        return described(p.decode_frame(frame))
    except p.ProtocolError:
        return "ERR"


SLOW = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@SLOW
@given(st.lists(messages, min_size=1, max_size=20))
def test_c_decodes_what_python_encodes(harness: Path, msgs: list[p.Message]) -> None:
    assert c_decode(harness, [p.encode(m) for m in msgs]) == [described(m) for m in msgs]


@SLOW
@given(st.lists(args_strategy, min_size=1, max_size=20), st.integers(0, 0xFFFF))
def test_python_decodes_what_c_encodes(harness: Path, arg_lists: list[list[int | bytes]],
                                       op: int) -> None:
    lines = "".join(f"{op} " + " ".join(f"i:{x}" if isinstance(x, int) else f"b:{x.hex()}"
                                        for x in a) + "\n" for a in arg_lists)
    out = subprocess.run([str(harness), "encode"], input=lines.encode(), capture_output=True,
                         check=True).stdout.decode().split()
    assert [p.decode_frame(bytes.fromhex(h)) for h in out] == \
        [p.Message(op, tuple(a)) for a in arg_lists]


@SLOW
@given(st.lists(st.one_of(st.binary(max_size=400), messages.map(p.encode)), min_size=1,
                max_size=20), st.data())
def test_both_decoders_agree_on_garbage(harness: Path, frames: list[bytes],
                                        data: st.DataObject) -> None:
    mangled = []
    for f in frames:
        if f and data.draw(st.booleans()):
            b = bytearray(f)
            b[data.draw(st.integers(0, len(b) - 1))] ^= data.draw(st.integers(1, 255))
            f = bytes(b)
        mangled.append(f)
    assert c_decode(harness, mangled) == [python_view(f) for f in mangled]


# -- numbers both sides must share ---------------------------------------------------------------
def c_define(name: str) -> int:
    match = re.search(rf"#define {name}\s+\(?([-0-9xa-fA-FULul]+)", HEADER)
    assert match, f"shim/objmount.h defines {name}"
    return int(match.group(1).rstrip("ULul"), 0)


def test_c_header_matches_the_python_protocol() -> None:
    enum = dict(re.findall(r"OM_([A-Z_]+) = (\d+),", HEADER))
    assert {k: int(v) for k, v in enum.items()} == {op.name: op.value for op in p.Op}
    assert c_define("OM_PROTOCOL_VERSION") == p.PROTOCOL_VERSION
    assert c_define("OM_MAX_ARGS") == p.MAX_ARGS
    assert c_define("OM_MAX_FDS") == p.MAX_FDS
    assert c_define("OM_EXTERNAL") == p.EXTERNAL
    for name in ("STAT_FOLLOW", "SETATTR_MODE", "SETATTR_UID", "SETATTR_GID", "SETATTR_SIZE",
                 "SETATTR_ATIME", "SETATTR_MTIME", "SETATTR_FOLLOW", "EXEC_ARGS", "EXEC_CWD",
                 "EXEC_FDS", "XATTR_GET", "XATTR_SET", "XATTR_LIST", "XATTR_REMOVE",
                 "ATTR_FIELDS"):
        assert c_define(f"OM_{name}") == getattr(p, name), name
    assert re.search(r"#define OM_MAX_FRAME \(256 \* 1024\)", HEADER)
    assert p.MAX_FRAME == 256 * 1024


def test_c_header_matches_the_shared_memory_layouts() -> None:
    assert c_define("OM_MAP_MAGIC") == blockmap.MAGIC
    assert c_define("OM_MAP_COMPLETE") == blockmap.COMPLETE
    assert c_define("OM_PAGE_MAGIC") == statpage.MAGIC
    assert c_define("OM_PAGE_HEADER") == statpage.HEADER_SIZE
    assert c_define("OM_SLOT_PROBES") == statpage.PROBES
    assert c_define("OM_SLOT_ATTR") == statpage.KIND_ATTR
    assert c_define("OM_SLOT_MISSING") == statpage.KIND_MISSING
    # Field offsets are checked by the compiler (_Static_assert in shim/objmount.h).
    assert blockmap.HEADER_SIZE == 64
    assert statpage.SLOT_SIZE - statpage.PATH_MAX == 80
