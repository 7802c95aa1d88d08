"""IRC messages: parse and serialise (RFC 1459 §2.3.1, RFC 2812 §2.3, IRCv3 message-tags).

Three sources of truth: hand-written cases, the community vectors of the ``irc-parser-tests``
package (``parser_tests.data``), and hypothesis properties (round trip; any bytes either parse
or raise ProtocolError).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from parser_tests.data import (  # type: ignore[import-untyped]
    mask_match,
    msg_join,
    msg_split,
)

from relaychat.errors import EmptyMessage, InputTooLong, InvalidUtf8, ProtocolError
from relaychat.protocol import numerics as N
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import (
    MAX_BODY_BYTES,
    MAX_CLIENT_TAGS_BYTES,
    MAX_LINE_BYTES,
    MAX_TAGS_BYTES,
    Message,
    parse,
    parse_bytes,
    parse_from_client,
)
from relaychat.server.masks import match_mask

# --- strategies ------------------------------------------------------------------------------

# No NUL, CR or LF anywhere in a message; no lone surrogates (they cannot come from UTF-8).
_char = st.characters(codec="utf-8", exclude_characters="\0\r\n")
_text = st.text(alphabet=st.one_of(st.sampled_from(" :@;=\\!\t\xa0"), _char))
_word = st.text(alphabet=st.one_of(st.sampled_from(":@;=\\!\t\xa0"), _char), min_size=1).filter(
    lambda s: " " not in s
)

commands = st.one_of(
    st.from_regex(r"\A[A-Z]{1,12}\Z", fullmatch=True),
    st.from_regex(r"\A[0-9]{3}\Z", fullmatch=True),
)
sources = st.one_of(st.none(), _word)
middles = _word.filter(lambda s: s[0] != ":")
tag_keys = st.from_regex(r"\A\+?([a-z0-9.-]+/)?[A-Za-z0-9-]+\Z", fullmatch=True)
# Tag values may hold CR and LF: they are escaped on the wire.
tag_values = st.text(
    alphabet=st.one_of(st.sampled_from(";\\ \r\n:s"), st.characters(codec="utf-8")),
).filter(lambda s: "\0" not in s)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    params = draw(st.lists(middles, max_size=14))
    if draw(st.booleans()):
        # A last parameter that needs the ':' (spaces, a leading colon, empty) or not.
        params.append(draw(st.one_of(_text, st.sampled_from(["", ":", " ", "a b", ":x :y"]))))
    return Message(
        draw(commands),
        tuple(params),
        draw(sources),
        draw(st.dictionaries(tag_keys, tag_values, max_size=5)),
    )


# --- hand-written cases ----------------------------------------------------------------------


class TestParse:
    """RFC 1459 §2.3.1: ``[':' prefix SPACE] command params [SPACE ':' trailing]``."""

    def test_full_message(self) -> None:
        m = parse("@id=1;+draft/x=a\\sb :nick!u@h PRIVMSG #chan :hello: world ")
        assert m == Message(
            "PRIVMSG", ("#chan", "hello: world "), "nick!u@h", {"id": "1", "+draft/x": "a b"}
        )

    def test_command_is_upper_cased(self) -> None:
        assert parse("privmsg a b").command == "PRIVMSG"

    def test_several_spaces_separate(self) -> None:
        assert parse("@a=1   :src   CMD   x   y   :z  ") == Message(
            "CMD", ("x", "y", "z  "), "src", {"a": "1"}
        )

    @pytest.mark.parametrize("ws", ["\t", "\x0b", "\x0c", "\x1c", "\x85", "\xa0", "\u3000"])
    def test_only_ascii_space_separates(self, ws: str) -> None:
        """Other whitespace is part of a parameter (it used to split parameters)."""
        assert parse(f"PRIVMSG a{ws}b :hi").params == (f"a{ws}b", "hi")

    def test_leading_spaces_are_skipped(self) -> None:
        assert parse("  @a=1 :src CMD x") == Message("CMD", ("x",), "src", {"a": "1"})
        with pytest.raises(EmptyMessage):
            parse(" @")

    def test_empty_and_colon_trailing(self) -> None:
        assert parse("CMD :").params == ("",)
        assert parse("CMD a ::b").params == ("a", ":b")

    @pytest.mark.parametrize(
        "line", ["", "   ", "@a=b", "@a=b   ", ":src", ":src   ", "@a :src", ":src :trailing"]
    )
    def test_no_command(self, line: str) -> None:
        with pytest.raises(EmptyMessage):
            parse(line)

    @pytest.mark.parametrize("ch", ["\0", "\r", "\n"])
    def test_forbidden_characters(self, ch: str) -> None:
        with pytest.raises(ProtocolError):
            parse(f"PRIVMSG #a :hi{ch}there")
        with pytest.raises(ProtocolError):
            parse_bytes(f"PRIVMSG #a :hi{ch}there".encode())

    def test_empty_source_is_none(self) -> None:
        assert parse(": CMD").source is None
        assert Message("CMD", source="") == Message("CMD")


class TestSerialize:
    def test_trailing_colon_only_when_needed(self) -> None:
        assert Message("CMD", ("a", "b")).serialize() == "CMD a b"
        assert Message("CMD", ("a", "b c")).serialize() == "CMD a :b c"
        assert Message("CMD", ("a", "")).serialize() == "CMD a :"
        assert Message("CMD", ("a", ":b")).serialize() == "CMD a ::b"

    def test_tags_and_source(self) -> None:
        m = Message("CMD", ("x",), "srv", {"a": "b c", "d": ""})
        assert m.serialize() == "@a=b\\sc;d :srv CMD x"

    def test_to_bytes_is_utf8_with_crlf(self) -> None:
        assert Message("PRIVMSG", ("#a", "caf\u00e9")).to_bytes() == b"PRIVMSG #a caf\xc3\xa9\r\n"

    @pytest.mark.parametrize(
        "msg",
        [
            Message(""),
            Message("A B"),
            Message(":CMD"),
            Message("@CMD"),
            Message("CMD", ("a b", "c")),
            Message("CMD", ("", "c")),
            Message("CMD", (":a", "c")),
            Message("CMD", source="a b"),
            Message("CMD", tags={"": "x"}),
            Message("CMD", tags={"a=b": "x"}),
            Message("CMD", tags={"a;b": "x"}),
            Message("CMD", tags={"a b": "x"}),
            Message("CMD", tags={"a": "x\0"}),
            Message("CMD", ("a\r\nQUIT",)),
            Message("CMD", ("a\0",)),
            Message("CMD", source="a\nb"),
        ],
        ids=repr,
    )
    def test_refuses_what_cannot_go_on_the_wire(self, msg: Message) -> None:
        with pytest.raises(ProtocolError):
            msg.serialize()
        with pytest.raises(ProtocolError):
            msg.check()

    def test_command_never_starts_with_at_sign(self) -> None:
        with pytest.raises(ProtocolError):
            Message("@X", source="src").serialize()
        for line in ("@ @", ":src @X", "@a=1 @X y"):
            with pytest.raises(ProtocolError):
                parse(line)


class TestLimits:
    """RFC 1459 §2.3: 512 bytes with CR-LF; IRCv3 message-tags: 8191 bytes of tags."""

    def test_limits_add_up(self) -> None:
        assert MAX_BODY_BYTES == 510
        assert MAX_TAGS_BYTES == 8191
        assert MAX_LINE_BYTES == MAX_TAGS_BYTES + MAX_BODY_BYTES

    @staticmethod
    def body(size: int) -> bytes:
        head = b"PRIVMSG #a :"
        return head + b"x" * (size - len(head))

    def test_510_bytes_is_accepted(self) -> None:
        m = parse_bytes(self.body(510))
        assert len(m.params[1]) == 510 - len("PRIVMSG #a :")

    def test_511_bytes_is_too_long(self) -> None:
        with pytest.raises(InputTooLong) as info:
            parse_bytes(self.body(511))
        assert info.value.numeric == "417"
        assert (info.value.size, info.value.limit) == (511, 510)

    def test_body_limit_counts_bytes_not_characters(self) -> None:
        raw = b"PRIVMSG #a :" + "\u00e9".encode() * 250  # 12 + 500 bytes, 262 characters
        with pytest.raises(InputTooLong):
            parse_bytes(raw)

    @staticmethod
    def tags(size: int) -> bytes:
        """A tag section of ``size`` bytes, its '@' and trailing space included."""
        return b"@a=" + b"v" * (size - 4) + b" "

    def test_tags_up_to_8191_bytes_with_a_full_body(self) -> None:
        m = parse_bytes(self.tags(8191) + self.body(510))
        assert len(m.tags["a"]) == 8191 - 4
        assert m.command == "PRIVMSG"

    def test_tags_of_8192_bytes_are_too_long(self) -> None:
        with pytest.raises(InputTooLong) as info:
            parse_bytes(self.tags(8192) + b"PING x")
        assert info.value.numeric == "417"
        assert info.value.limit == MAX_TAGS_BYTES

    def test_tags_without_a_command_are_measured_too(self) -> None:
        with pytest.raises(InputTooLong):
            parse_bytes(b"@a=" + b"v" * 9000)

    def test_body_after_tags_is_still_limited(self) -> None:
        with pytest.raises(InputTooLong) as info:
            parse_bytes(self.tags(100) + self.body(511))
        assert info.value.limit == MAX_BODY_BYTES

    def test_line_buffer_bound_fits_the_largest_valid_line(self) -> None:
        line = self.tags(8191) + self.body(510)
        buf = LineBuffer(MAX_LINE_BYTES)
        assert buf.feed(line + b"\r\n" + line + b"x\r\nPING a\r\n") == [
            line,
            Overlong(len(line) + 1),
            b"PING a",
        ]


# --- community vectors (irc-parser-tests) ----------------------------------------------------


def _atoms(atoms: dict[str, Any]) -> Message:
    return Message(
        atoms["verb"],
        tuple(atoms.get("params") or ()),
        atoms.get("source"),
        dict(atoms.get("tags") or {}),
    )


@pytest.mark.parametrize("case", msg_split["tests"], ids=lambda c: repr(c["input"]))
def test_msg_split_vectors(case: dict[str, Any]) -> None:
    expected = _atoms(case["atoms"])
    got = parse(case["input"])
    assert got == Message(expected.command.upper(), expected.params, expected.source, expected.tags)
    assert parse(got.serialize()) == got


@pytest.mark.parametrize("case", msg_join["tests"], ids=lambda c: c.get("desc", "?"))
def test_msg_join_vectors(case: dict[str, Any]) -> None:
    """Our line equals one of the listed matches, up to tag order and escaping equivalences."""
    msg = _atoms(case["atoms"])
    line = msg.serialize()
    matches: list[str] = case["matches"]
    if line not in matches:
        # Tags may come in another order, or be escaped another valid way: compare parsed.
        assert all(parse(line) == parse(m) for m in matches), (line, matches)
    assert parse(line) == Message(msg.command.upper(), msg.params, msg.source, msg.tags)


@pytest.mark.parametrize("case", mask_match["tests"], ids=lambda c: c["mask"])
def test_mask_match_vectors(case: dict[str, Any]) -> None:
    for text in case["matches"]:
        assert match_mask(case["mask"], text), text
    for text in case["fails"]:
        assert not match_mask(case["mask"], text), text


# --- properties ------------------------------------------------------------------------------


@settings(deadline=None)
@given(messages())
def test_round_trip(msg: Message) -> None:
    """parse(m.serialize()) == m for every valid message."""
    assert parse(msg.serialize()) == msg


@settings(deadline=None)
@given(messages())
def test_round_trip_through_bytes(msg: Message) -> None:
    raw = msg.to_bytes()
    assert raw.endswith(b"\r\n")
    items = LineBuffer(len(raw)).feed(raw)
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, bytes)
    if len(raw) - 2 <= MAX_BODY_BYTES:
        assert parse_bytes(item) == msg
    else:
        assert parse(item.decode()) == msg


_fuzz_pieces = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"\r\n",
            b"\n",
            b"\r",
            b" ",
            b"  ",
            b":",
            b" :",
            b"@",
            b"=",
            b";",
            b"\\",
            b"\x00",
            b"\t",
            b"PRIVMSG",
            b"\xc3",
            b"\xa9",
            b"\xff",
            b"x" * 600,
        ]
    ),
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fuzz_pieces, max_size=30), st.integers(min_value=1, max_value=1024))
def test_any_bytes_parse_or_raise_protocol_error(pieces: list[bytes], max_length: int) -> None:
    """The h11 fuzz invariant: any input parses or raises ProtocolError, never anything else.

    What parses can always be serialised again, to a line that parses to the same message.
    """
    buf = LineBuffer(max_length)
    for piece in pieces:
        for item in buf.feed(piece):
            if isinstance(item, Overlong):
                continue
            try:
                msg = parse_bytes(item)
            except ProtocolError:
                continue
            assert parse(msg.serialize()) == msg


@given(st.text(alphabet=st.one_of(st.sampled_from(" :@;=\\\t\0\r\n"), st.characters())))
def test_any_text_parses_or_raises_protocol_error(line: str) -> None:
    try:
        msg = parse(line)
    except ProtocolError:
        return
    assert parse(msg.serialize()) == msg


class TestFromClient:
    """What the server accepts from a client: message-tags (4094 bytes of tags, "Clients MUST
    NOT send messages with tag data exceeding 4094 bytes") and UTF8ONLY."""

    @staticmethod
    def tags(size: int) -> bytes:
        return b"@a=" + b"v" * (size - 4) + b" "

    def test_4096_bytes_of_tag_section_pass(self) -> None:
        m = parse_from_client(self.tags(MAX_CLIENT_TAGS_BYTES) + b"TAGMSG #a")
        assert len(m.tags["a"]) == MAX_CLIENT_TAGS_BYTES - 4

    def test_4097_are_too_long(self) -> None:
        with pytest.raises(InputTooLong) as info:
            parse_from_client(self.tags(MAX_CLIENT_TAGS_BYTES + 1) + b"TAGMSG #a")
        assert info.value.numeric == "417" and info.value.limit == MAX_CLIENT_TAGS_BYTES

    def test_servers_may_still_send_8191(self) -> None:
        assert parse_bytes(self.tags(MAX_TAGS_BYTES) + b"PING x").command == "PING"

    @pytest.mark.parametrize(
        ("raw", "command"),
        [
            (b"PRIVMSG #a :caf\xe9", "PRIVMSG"),
            (b"@+x=\xff privmsg #a :hi", "PRIVMSG"),
            (b"\xe9t\xe9 x", "*"),
            (b"CMD\x01 \xff", "*"),
        ],
    )
    def test_not_utf8_is_refused_with_its_command(self, raw: bytes, command: str) -> None:
        with pytest.raises(InvalidUtf8) as info:
            parse_from_client(raw)
        assert info.value.command == command and info.value.numeric is None

    def test_not_utf8_without_a_command_is_just_empty(self) -> None:
        with pytest.raises(EmptyMessage):
            parse_from_client(b"@a=\xff")

    def test_utf8_passes_and_latin1_stays_for_others(self) -> None:
        assert parse_from_client("PRIVMSG #a :café ☕".encode()).params[1] == "café ☕"
        assert parse_bytes(b"PRIVMSG #a :caf\xe9").params[1] == "café"


# --- numerics.reply_bytes: the registration hot path must send exactly what reply() sends ------

_PARAM = st.text(alphabet=st.sampled_from("ab:  \r\n\0é#*@!"), max_size=8)


@given(
    server=st.sampled_from(["irc.example", "", "a b", "srv"]),
    target=st.sampled_from(["alice", "*", "", ":x", "a b", "bob\r"]),
    code=st.sampled_from(["001", "372", "433"]),
    fixed=st.one_of(st.none(), _PARAM),
    params=st.lists(_PARAM, max_size=4),
    text=st.one_of(st.none(), _PARAM),
)
def test_reply_bytes_is_reply_serialised(
    server: str, target: str, code: str, fixed: str | None, params: list[str], text: str | None
) -> None:
    """``reply_bytes`` gives ``reply(...).to_bytes()`` byte for byte, or ``None`` when only the
    Message path can decide (and then that path refuses the line or serialises it)."""
    numeric = N.Numeric(code, "TEST", fixed)
    fast = N.reply_bytes(server, target, numeric, *params, text=text)
    msg = N.reply(server, target, numeric, *params, text=text)
    if fast is not None:
        assert fast == msg.to_bytes()
        return
    parts = [server, target, *params, text or "", fixed or ""]
    usual = server and " " not in server and target and " " not in target and target[0] != ":"
    assert not usual or any(c in p for p in parts for c in "\r\n\0")  # else fast is used


def test_reply_bytes_common_cases() -> None:
    assert N.reply_bytes("srv", "al", N.RPL_WELCOME, text="Welcome home") == (
        b":srv 001 al :Welcome home\r\n"
    )
    assert N.reply_bytes("srv", "al", N.RPL_LOCALUSERS, "3", "4", text="x") == (
        b":srv 265 al 3 4 x\r\n"
    )
    assert N.reply_bytes("srv", "al", N.ERR_NOSUCHNICK, "a b") == (
        b":srv 401 al * :No such nick/channel\r\n"
    )
    assert N.reply_bytes("srv", "al", N.RPL_MOTD, text="evil\r\nQUIT") is None
