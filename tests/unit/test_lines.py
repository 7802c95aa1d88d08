"""LineBuffer: a byte stream in, complete lines out, with a bound on line length."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import decode_line, parse_bytes


def feed_all(buf: LineBuffer, *chunks: bytes) -> list[bytes | Overlong]:
    out: list[bytes | Overlong] = []
    for chunk in chunks:
        out.extend(buf.feed(chunk))
    return out


class TestEndings:
    """RFC 1459 §2.3: lines end with CR-LF; LF alone and CR alone are accepted too."""

    @pytest.mark.parametrize("ending", [b"\r\n", b"\n", b"\r"], ids=["crlf", "lf", "cr"])
    def test_each_ending(self, ending: bytes) -> None:
        buf = LineBuffer(512)
        assert buf.feed(b"NICK a" + ending + b"USER a 0 * :A" + ending) == [
            b"NICK a",
            b"USER a 0 * :A",
        ]
        assert buf.pending == 0

    def test_mixed_endings(self) -> None:
        assert LineBuffer(512).feed(b"A\r\nB\nC\rD\r\n") == [b"A", b"B", b"C", b"D"]

    def test_empty_lines_are_ignored(self) -> None:
        assert LineBuffer(512).feed(b"\r\n\n\r\r\nA\r\n\r\n\nB\n\n") == [b"A", b"B"]

    def test_crlf_split_between_feeds(self) -> None:
        buf = LineBuffer(512)
        assert buf.feed(b"PING x\r") == [b"PING x"]
        assert buf.feed(b"\nPING y\r") == [b"PING y"]
        assert buf.feed(b"\n") == []
        assert buf.pending == 0


class TestPartialLines:
    def test_line_split_across_several_feeds(self) -> None:
        buf = LineBuffer(512)
        assert buf.feed(b"PRIV") == []
        assert buf.pending == 4
        assert buf.feed(b"MSG #a") == []
        assert buf.feed(b" :hello") == []
        assert buf.feed(b" there\r\nNEXT") == [b"PRIVMSG #a :hello there"]
        assert buf.pending == 4
        assert buf.feed(b"\r\n") == [b"NEXT"]

    def test_one_byte_at_a_time(self) -> None:
        data = b"PRIVMSG #a :hello\r\nJOIN #b\n"
        buf = LineBuffer(512)
        out = feed_all(buf, *(data[i : i + 1] for i in range(len(data))))
        assert out == [b"PRIVMSG #a :hello", b"JOIN #b"]

    def test_multibyte_character_split_between_chunks(self) -> None:
        line = "PRIVMSG #a :h\u00e9 \u20ac \U0001f600".encode()
        euro = line.index("\u20ac".encode())
        smiley = line.index("\U0001f600".encode())
        buf = LineBuffer(512)
        out = feed_all(
            buf, line[: euro + 1], line[euro + 1 : smiley + 2], line[smiley + 2 :], b"\n"
        )
        assert out == [line]
        assert parse_bytes(line).params == ("#a", "h\u00e9 \u20ac \U0001f600")


class TestOverlong:
    """A line past max_length is reported once, discarded to its end, and the next line works."""

    def test_exactly_max_length_is_accepted(self) -> None:
        assert LineBuffer(10).feed(b"x" * 10 + b"\r\n") == [b"x" * 10]

    def test_complete_overlong_line(self) -> None:
        buf = LineBuffer(10)
        assert buf.feed(b"x" * 11 + b"\r\nOK\r\n") == [Overlong(11), b"OK"]

    def test_overlong_is_reported_once_and_memory_stays_bounded(self) -> None:
        buf = LineBuffer(10)
        out = buf.feed(b"x" * 8)
        assert out == []
        out = buf.feed(b"x" * 8)
        assert out == [Overlong(16)]
        assert buf.pending == 0
        for _ in range(100):
            assert buf.feed(b"y" * 1000) == []
            assert buf.pending == 0
        assert buf.feed(b"zzz\r\nPING ok\r\n") == [b"PING ok"]

    def test_recovery_when_the_ending_arrives_alone(self) -> None:
        buf = LineBuffer(10)
        assert buf.feed(b"x" * 50) == [Overlong(50)]
        assert buf.feed(b"\r") == []
        assert buf.feed(b"\nNEXT\r\n") == [b"NEXT"]

    def test_pending_partial_line_pushed_over_the_limit(self) -> None:
        buf = LineBuffer(10)
        assert buf.feed(b"abcdef") == []
        assert buf.feed(b"ghijkl\nOK\n") == [Overlong(12), b"OK"]

    def test_max_length_must_be_positive(self) -> None:
        with pytest.raises(ValueError):
            LineBuffer(0)


class TestDecoding:
    def test_utf8(self) -> None:
        assert decode_line("caf\u00e9".encode()) == "caf\u00e9"

    def test_invalid_utf8_falls_back_to_latin1(self) -> None:
        raw = b"PRIVMSG #a :caf\xe9 \xff"
        assert decode_line(raw) == "PRIVMSG #a :caf\u00e9 \u00ff"
        assert parse_bytes(raw).params == ("#a", "caf\u00e9 \u00ff")


# Streams built from pieces that make line handling interesting.
stream_pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r", b"\n", b"\r\n", b" ", b":", b"@", b"PRIVMSG #a", b"\xc3", b"\xa9"]),
)


def normalised(items: list[bytes | Overlong]) -> list[bytes | None]:
    return [None if isinstance(item, Overlong) else item for item in items]


@settings(deadline=None)
@given(
    st.lists(stream_pieces, max_size=40),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    st.integers(min_value=1, max_value=64),
)
def test_chunking_does_not_change_the_lines(
    pieces: list[bytes], cuts: list[int], max_length: int
) -> None:
    """However the stream is cut into chunks, the same lines (and overlong markers) come out."""
    data = b"".join(pieces)
    whole = LineBuffer(max_length).feed(data)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    buf = LineBuffer(max_length)
    chunked = feed_all(buf, *chunks)
    assert normalised(chunked) == normalised(whole)
    assert buf.pending <= max_length
    for item in whole:
        if isinstance(item, Overlong):
            assert item.size > max_length
        else:
            assert item
            assert len(item) <= max_length
            assert b"\r" not in item
            assert b"\n" not in item
