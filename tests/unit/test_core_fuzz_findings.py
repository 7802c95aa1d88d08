"""Regression tests for what the core fuzzer (fuzz/, docs/fuzzing.md) found, one test each."""

from __future__ import annotations

from relaychat.protocol.message import parse_bytes
from tests.unit.accounts_support import harness as accounts_harness
from tests.unit.core_support import harness


def _fits(lines: list[str]) -> None:
    for line in lines:
        raw = line.encode()
        assert len(raw) + 2 <= 512, (len(raw), line[:80])
        parse_bytes(raw)


def test_unknown_verb_echo_fits_512_bytes() -> None:
    """A 500-byte unknown verb was echoed whole in the 421 reply, past 512 bytes: every numeric
    is now cut to fit (trailing text, then the longest echoed parameters)."""
    h = harness()
    h.connect("alice")
    h.send("alice", "é" * 250)
    lines = h.lines("alice")
    assert lines and " 421 alice " in lines[0]
    _fits(lines)


def test_long_nick_echo_fits_512_bytes() -> None:
    h = harness()
    h.connect("alice")
    h.send("alice", "WHOIS " + "é" * 250)
    lines = h.lines("alice")
    assert [line.split()[1] for line in lines] == ["401", "318"]
    _fits(lines)


def test_standard_reply_echo_fits_512_bytes() -> None:
    """``REGISTER <500 bytes>`` got a FAIL echoing the whole account name: over 512 bytes."""
    h, _ = accounts_harness()
    h.connect("alice")
    h.send("alice", "REGISTER " + "x" * 480 + " * pw")
    lines = h.lines("alice")
    assert lines and lines[0].split()[1] == "FAIL"
    _fits(lines)
