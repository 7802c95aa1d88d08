"""The plain-line client's pure pieces: splitting what arrives into lines, what is sent into
lines, and holding back a character cut in two (the tutorial's server sends no line endings)."""

from __future__ import annotations

import pytest

from relaychat.client.plain import PlainLines, _incomplete_utf8, split_lines
from relaychat.protocol.lines import Overlong


def test_complete_lines_come_out_at_once() -> None:
    lines = PlainLines()
    assert lines.feed(b"one\r\ntwo\nthr") == ["one", "two"]
    assert lines.pending
    assert lines.feed(b"ee\n") == ["three"]
    assert not lines.pending


def test_text_without_a_line_ending_is_a_line_once_flushed() -> None:
    # The tutorial's server: conn.send(reply.encode()), no newline.
    lines = PlainLines()
    assert lines.feed(b"hi there") == []
    assert lines.flush() == "hi there"
    assert not lines.pending and lines.flush() is None


def test_blank_text_is_no_line() -> None:
    lines = PlainLines()
    lines.feed(b"   ")
    assert lines.flush() is None


def test_a_character_cut_in_two_is_held_back_until_its_end() -> None:
    lines = PlainLines()
    data = "héllo ü".encode()
    assert lines.feed(data[:-1]) == []  # the last byte of "ü" has not arrived
    assert lines.flush() == "héllo "
    assert lines.pending  # the first byte of "ü" waits
    lines.feed(data[-1:])
    assert lines.flush() == "ü"


def test_at_the_end_everything_held_is_taken() -> None:
    lines = PlainLines()
    lines.feed("ü".encode()[:1])
    assert lines.flush(final=True) == "\xc3"  # not UTF-8: latin-1, never an exception
    assert not lines.pending


def test_invalid_utf8_is_decoded_as_latin1() -> None:
    assert PlainLines().feed(b"caf\xe9\n") == ["café"]


def test_overlong_lines_are_dropped_and_reported() -> None:
    lines = PlainLines(max_line=8)
    out = lines.feed(b"0123456789abc\nok\n")
    assert isinstance(out[0], Overlong) and out[1:] == ["ok"]


def test_reset_forgets_what_was_held() -> None:
    lines = PlainLines()
    lines.feed(b"half a li")
    lines.reset()
    assert not lines.pending


@pytest.mark.parametrize(
    ("data", "cut"),
    [
        (b"", 0),
        (b"abc", 0),
        ("é".encode(), 0),
        ("é".encode()[:1], 1),
        ("€".encode()[:2], 2),
        ("€".encode()[:1], 1),
        ("😀".encode()[:3], 3),
        ("😀".encode(), 0),
        (b"\xff", 0),
        (b"a\x80", 0),
    ],
)
def test_incomplete_utf8(data: bytes, cut: int) -> None:
    assert _incomplete_utf8(data) == cut


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("hello", ["hello"]),
        ("a\nb\r\nc\rd", ["a", "b", "c", "d"]),
        ("a\n\n  \nb", ["a", "b"]),
        ("nul\0 gone", ["nul gone"]),
        ("  ", []),
    ],
)
def test_split_lines(text: str, want: list[str]) -> None:
    assert split_lines(text) == want
