"""AUTHENTICATE chunking (IRCv3 sasl-3.1) and the PLAIN message (RFC 4616)."""

from __future__ import annotations

import base64

import pytest

from relaychat.accounts.sasl import (
    CHUNK,
    ChunkBuffer,
    SaslDataError,
    SaslResponseTooLong,
    SaslTooLong,
    encode_chunks,
    parse_plain,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class TestChunkBuffer:
    """sasl-3.1: 400-byte chunks; a shorter one or ``+`` ends the response."""

    def test_one_short_chunk(self) -> None:
        assert ChunkBuffer().feed(b64(b"hello")) == b"hello"

    def test_plus_alone_is_empty(self) -> None:
        assert ChunkBuffer().feed("+") == b""

    def test_exactly_400_then_plus(self) -> None:
        data = b"x" * 300  # 400 base64 bytes
        buf = ChunkBuffer()
        assert buf.feed(b64(data)) is None
        assert buf.feed("+") == data

    def test_several_chunks(self) -> None:
        data = bytes(range(256)) * 3
        buf = ChunkBuffer()
        chunks = encode_chunks(data)
        assert [len(c) for c in chunks] == [400, 400, 224]
        results = [buf.feed(c) for c in chunks]
        assert results[:-1] == [None, None] and results[-1] == data

    def test_buffer_is_empty_after_a_response(self) -> None:
        buf = ChunkBuffer()
        buf.feed(b64(b"one"))
        assert buf.feed(b64(b"two")) == b"two"

    def test_chunk_over_400_bytes(self) -> None:
        with pytest.raises(SaslTooLong, match="400"):
            ChunkBuffer().feed("A" * (CHUNK + 1))

    def test_response_over_the_limit(self) -> None:
        buf = ChunkBuffer(limit=800)
        assert buf.feed("A" * 400) is None
        assert buf.feed("A" * 400) is None
        # Each chunk was fine: the exchange failed (904), not a chunk (905; issue 11 fix 9).
        with pytest.raises(SaslResponseTooLong, match="800") as caught:
            buf.feed("AAAA")
        assert not isinstance(caught.value, SaslTooLong)
        assert buf.feed(b64(b"fresh")) == b"fresh"  # reset after the error

    @pytest.mark.parametrize("bad", ["!!!!", "abc", "a b"])
    def test_not_base64(self, bad: str) -> None:
        with pytest.raises(SaslDataError, match="base64"):
            ChunkBuffer().feed(bad)


@pytest.mark.parametrize("size", [0, 1, 299, 300, 301, 600, 1000])
def test_encode_chunks_round_trip(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    chunks = encode_chunks(data)
    assert all(len(c) <= CHUNK for c in chunks)
    assert chunks[-1] == "+" or len(chunks[-1]) < CHUNK
    buf = ChunkBuffer()
    out = [buf.feed(c) for c in chunks]
    assert out[-1] == data and all(o is None for o in out[:-1])


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\0jilles\0sesame", ("", "jilles", "sesame")),
        (b"jilles\0jilles\0sesame", ("jilles", "jilles", "sesame")),
        ("\0ünï\0pässwörd".encode(), ("", "ünï", "pässwörd")),
    ],
)
def test_parse_plain(data: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_plain(data) == expected


@pytest.mark.parametrize(
    "data", [b"jilles\0sesame", b"a\0b\0c\0d", b"\0\0sesame", b"\0jilles\0", b"\0\xff\0x"]
)
def test_parse_plain_rejects(data: bytes) -> None:
    with pytest.raises(SaslDataError):
        parse_plain(data)
