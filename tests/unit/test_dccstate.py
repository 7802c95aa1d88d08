"""The pure part of DCC (client/dccstate.py) and its file rules (client/dccfiles.py).

The acknowledgement arithmetic is where files over 4 GiB go wrong in other clients, so it is
tested here exhaustively around every wrap of the 32-bit counter (no 4 GiB file is needed); a
real transfer across the wrap, over a socket, is in ``tests/integration/test_dcc.py``.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaychat.client.dccfiles import close_target, name_complete, open_target
from relaychat.client.dccstate import (
    MAX_NAME_BYTES,
    AckTracker,
    DccConfig,
    Direction,
    RateMeter,
    State,
    Transfer,
    ack_bytes,
    check_offer,
    format_eta,
    format_size,
    free_name,
    parse_port_range,
    parse_size,
    safe_name,
    unwrap_ack,
)
from relaychat.client.errors import DccError
from relaychat.errors import ConfigError
from relaychat.protocol.ctcp import DccSend

GiB = 1 << 30


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system.ini", "system.ini"),
        ("dir/sub/file.txt", "file.txt"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        ("  spaced  .txt. ", "spaced  .txt"),
        ("evil\x1b[31m.txt", "evil_[31m.txt"),
        ("bidi\u202etxt.exe", "bidi_txt.exe"),  # right-to-left override: shown as _
        ("zero\u200bwidth", "zero_width"),
        ('a:b*c?"d<e>f|g', "a_b_c__d_e_f_g"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("café.txt", "café.txt"),
    ],
)
def test_safe_name(offered: str, safe: str) -> None:
    assert safe_name(offered) == safe


@pytest.mark.parametrize("offered", ["..", ".", "/", "../", "a/..", "   ", "\\", "...", "_"])
def test_names_with_nothing_usable_are_refused(offered: str) -> None:
    with pytest.raises(ValueError, match="no usable part"):
        safe_name(offered)


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_name("é" * 300 + ".tar.gz")
    assert len(name.encode()) <= MAX_NAME_BYTES and name.endswith(".gz")
    assert safe_name("x" * 1000).startswith("x") and len(safe_name("x" * 1000)) == MAX_NAME_BYTES


@given(st.text(min_size=1, max_size=400))
def test_a_safe_name_is_always_one_plain_component(offered: str) -> None:
    try:
        name = safe_name(offered)
    except ValueError:
        return
    assert "/" not in name and "\\" not in name and "\0" not in name
    assert not name.startswith(".") and name not in ("", ".", "..")
    assert all(ord(c) >= 32 and c != "\x7f" for c in name)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


def test_free_name_never_takes_one_in_use() -> None:
    taken = {"a.txt", "a-1.txt", "noext", "noext-1", "noext-2"}
    assert free_name("a.txt", taken.__contains__) == "a-2.txt"
    assert free_name("noext", taken.__contains__) == "noext-3"
    assert free_name("fresh.txt", taken.__contains__) == "fresh.txt"
    with pytest.raises(ValueError):
        free_name("x", lambda n: True, limit=5)


# --- acknowledgements -------------------------------------------------------------------------


def test_acks_are_32_bit_and_wrap_as_irssi_and_weechat_send_them() -> None:
    assert ack_bytes(1000) == struct.pack("!I", 1000)
    assert ack_bytes(4 * GiB) == b"\0\0\0\0"
    assert ack_bytes(4 * GiB + 5) == struct.pack("!I", 5)
    assert ack_bytes(17 * GiB + 3) == struct.pack("!I", GiB + 3)


@pytest.mark.parametrize("wrap", [0, 1, 2, 3, 7])
@pytest.mark.parametrize("before", [0, 1, 4096, 1 << 20, (1 << 31)])
def test_unwrap_around_every_wrap(wrap: int, before: int) -> None:
    """A receiver that has ``got`` bytes sends ``got mod 2**32``; the sender, having sent up to
    2 GiB more than that, recovers ``got`` exactly."""
    base = wrap << 32
    for got in (base - before, base, base + before, base + (1 << 32) - 1 - before):
        if got < 0:
            continue
        for ahead in (0, 1, 65536, 64 << 20, (1 << 31)):
            sent = got + ahead
            word = struct.unpack("!I", ack_bytes(got))[0]
            assert unwrap_ack(word, sent) == got, (got, sent)


@given(got=st.integers(0, 1 << 50), ahead=st.integers(0, (1 << 32) - 1))
def test_unwrap_is_exact_while_less_than_4_gib_is_in_flight(got: int, ahead: int) -> None:
    word = struct.unpack("!I", ack_bytes(got))[0]
    assert unwrap_ack(word, got + ahead) == got


def test_ack_tracker_reads_split_acks_and_keeps_the_highest() -> None:
    size = 5 * GiB + 123  # a file over 4 GiB, resumed at 4 GiB - 1 MiB
    start = 4 * GiB - (1 << 20)
    tracker = AckTracker(start)
    data = b"".join(ack_bytes(p) for p in (start + 10, 4 * GiB - 1, 4 * GiB + 7, size))
    acked = [tracker.feed(data[i : i + 3], size) for i in range(0, len(data), 3)]  # 3 by 3
    assert acked[-1] == size and tracker.count == 4
    assert acked == sorted(acked)  # never goes back
    assert tracker.feed(ack_bytes(start), size) == size  # a stale ack changes nothing


def test_ack_tracker_understands_64_bit_acks_too() -> None:
    """Some clients send the position as 8 bytes: each half unwraps to at most the truth."""
    size = 6 * GiB + 99
    tracker = AckTracker()
    for got in (GiB, 4 * GiB + 5, size):
        sent = min(size, got + (1 << 20))
        tracker.feed(struct.pack("!Q", got), sent)
        assert tracker.acked == got


# --- settings, offers, rates ------------------------------------------------------------------


def test_config_checks_itself() -> None:
    assert DccConfig().max_size == 16 * GiB and DccConfig().allow_from is None
    for bad in (
        {"port_range": (6000, 5000)},
        {"port_range": (0, 10)},
        {"stall_timeout": 0},
        {"chunk_size": 10},
        {"max_offers": 0},
        {"max_size": -1},
    ):
        with pytest.raises(ConfigError):
            DccConfig(**bad)  # type: ignore[arg-type]


def test_config_from_the_client_file() -> None:
    cfg = DccConfig.from_settings(
        {
            "port_range": "5000-5010",
            "max_size": "2G",
            "allow_from": ["alice", "bob"],
            "bind_host": "0.0.0.0",
            "advertise_host": "203.0.113.9",
            "stall_timeout": 5,
            "passive": True,
        }
    )
    assert cfg.port_range == (5000, 5010) and cfg.max_size == 2 * GiB
    assert cfg.allow_from == ("alice", "bob") and cfg.stall_timeout == 5.0 and cfg.passive
    assert DccConfig.from_settings({"port_range": 6000}).port_range == (6000, 6000)
    for bad in ({"nope": 1}, {"max_size": True}, {"allow_from": "alice"}, {"passive": "yes"}):
        with pytest.raises(ConfigError):
            DccConfig.from_settings(bad)


def test_parsers() -> None:
    assert parse_port_range("5000") == (5000, 5000)
    assert parse_port_range("5000-5010") == (5000, 5010)
    assert parse_size("500M") == 500 << 20 and parse_size("2GiB") == 2 * GiB
    assert parse_size("1024") == 1024
    for bad in ("x", "5010-5000", "0", "70000"):
        with pytest.raises(ValueError):
            parse_port_range(bad)
    with pytest.raises(ValueError):
        parse_size("lots")


def test_offers_that_are_refused() -> None:
    cfg = DccConfig(max_size=GiB)
    ok = DccSend(name="f", host="127.0.0.1", port=5000, size=GiB)
    assert check_offer(ok, cfg) is None
    too_big = DccSend(name="f", host="127.0.0.1", port=5000, size=GiB + 1)
    assert "over the limit" in (check_offer(too_big, cfg) or "")
    low = DccSend(name="f", host="127.0.0.1", port=22, size=1)
    assert "below 1024" in (check_offer(low, cfg) or "")
    assert check_offer(low, DccConfig(allow_low_ports=True)) is None
    for host in ("0.0.0.0", "255.255.255.255", "224.0.0.1", "::"):
        bad = DccSend(name="f", host=host, port=5000, size=1)
        assert "not an address" in (check_offer(bad, cfg) or ""), host
    passive = DccSend(name="f", host="0.0.0.0", port=0, size=1, token="1")
    assert check_offer(passive, cfg) is None  # a passive offer's address is never used


def test_rate_meter_and_eta() -> None:
    meter = RateMeter(window=5.0)
    for second in range(10):
        meter.add(100.0 + second, second * 10 << 20)
    assert meter.rate() == pytest.approx(10 << 20)
    t = Transfer(id=1, direction=Direction.RECEIVE, nick="bob", name="f", size=100 << 20)
    t.state, t.done, t.meter = State.ACTIVE, 90 << 20, meter
    assert t.eta() == pytest.approx(1.0) and t.fraction == pytest.approx(0.9)
    assert "90.0 MiB of 100.0 MiB (90%) active" in t.describe()
    assert [format_size(n) for n in (512, 1536, 20 << 20, 5 * GiB)] == [
        "512 B",
        "1.5 KiB",
        "20.0 MiB",
        "5.0 GiB",
    ]
    assert [format_eta(s) for s in (None, 42, 185, 3725)] == [
        "?",
        "42 s",
        "3 min 05 s",
        "1 h 02 min",
    ]


# --- files --------------------------------------------------------------------------------------


def test_a_new_file_never_replaces_one(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("mine")
    target = open_target(tmp_path, "a.txt", 10, resume=None, reserved=set())
    assert target.path == tmp_path / "a-1.txt.part" and target.offset == 0
    os.write(target.fd, b"0123456789")
    close_target(target.fd, target.path)
    final = name_complete(target.path)
    assert final == tmp_path / "a-1.txt" and final.read_bytes() == b"0123456789"
    assert (tmp_path / "a.txt").read_text() == "mine"


def test_resume_continues_our_part_file_only(tmp_path: Path) -> None:
    (tmp_path / "f.bin.part").write_bytes(b"x" * 40)
    target = open_target(tmp_path, "f.bin", 100, resume=None, reserved=set())
    assert (target.path.name, target.offset) == ("f.bin.part", 40)
    assert os.lseek(target.fd, 0, os.SEEK_CUR) == 40
    os.close(target.fd)
    # The same .part in use by another transfer is left alone.
    other = open_target(tmp_path, "f.bin", 100, resume=None, reserved={str(target.path)})
    assert other.path.name == "f-1.bin.part" and other.offset == 0
    close_target(other.fd, other.path)
    assert not other.path.exists()  # an empty .part of ours goes away
    # A .part as big as the offer is not a partial copy: a new file.
    fresh = open_target(tmp_path, "f.bin", 40, resume=None, reserved=set())
    assert fresh.path.name == "f-1.bin.part" and fresh.offset == 0
    os.close(fresh.fd)
    # resume=False never continues; resume=True also continues NAME itself.
    (tmp_path / "g.bin").write_bytes(b"y" * 5)
    assert open_target(tmp_path, "g.bin", 9, resume=None, reserved=set()).offset == 0
    forced = open_target(tmp_path, "g.bin", 9, resume=True, reserved=set())
    assert (forced.path.name, forced.offset) == ("g.bin", 5)
    with pytest.raises(DccError, match="nothing to resume"):
        open_target(tmp_path, "none.bin", 9, resume=True, reserved=set())


def test_a_planted_symlink_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    folder = tmp_path / "downloads"
    folder.mkdir()
    (folder / "f.txt.part").symlink_to(outside)
    (folder / "g.txt").symlink_to(outside)
    with pytest.raises(DccError, match="nothing to resume"):
        open_target(folder, "f.txt", 100, resume=True, reserved=set())
    target = open_target(folder, "f.txt", 100, resume=None, reserved=set())
    assert target.path == folder / "f-1.txt.part" and target.offset == 0
    os.write(target.fd, b"new")
    os.close(target.fd)
    assert outside.read_text() == "precious"
    other = open_target(folder, "g.txt", 100, resume=None, reserved=set())
    os.close(other.fd)
    assert name_complete(other.path) == folder / "g-1.txt"  # the link's name is taken
    assert outside.read_text() == "precious"
