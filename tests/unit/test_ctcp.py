"""CTCP framing and the DCC messages (protocol/ctcp.py): tables of what clients send, in memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaychat.protocol.ctcp import (
    CtcpError,
    DccReject,
    DccResume,
    DccSend,
    decode_address,
    encode_address,
    format_ctcp,
    parse_ctcp,
    parse_dcc,
    quote_name,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\x01VERSION\x01", ("VERSION", "")),
        ("\x01ping 123\x01", ("PING", "123")),
        ("\x01DCC SEND f 1 2 3", ("DCC", "SEND f 1 2 3")),  # no closing \x01 (some clients)
        ("\x01ACTION waves\x01", ("ACTION", "waves")),
        ("hello", None),
        ("\x01", None),
        ("\x01\x01", None),
        ("\x01A\x01B\x01", None),  # several CTCPs in one message: not ours to take apart
    ],
)
def test_parse_ctcp(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_ctcp(text) == expected


def test_format_ctcp_refuses_what_cannot_go_on_the_wire() -> None:
    assert format_ctcp("DCC", "SEND x") == "\x01DCC SEND x\x01"
    assert format_ctcp("VERSION") == "\x01VERSION\x01"
    for command, args in (("", "x"), ("A B", ""), ("DCC", "a\x01b"), ("DCC", "a\r\nb")):
        with pytest.raises(CtcpError):
            format_ctcp(command, args)


@pytest.mark.parametrize(
    ("address", "field"),
    [
        ("127.0.0.1", "2130706433"),
        ("192.168.1.20", "3232235796"),
        ("::1", "::1"),
        ("2001:db8::7", "2001:db8::7"),
        ("::ffff:10.0.0.1", "167772161"),  # an IPv4-mapped IPv6 address goes as IPv4
    ],
)
def test_addresses_as_dcc_carries_them(address: str, field: str) -> None:
    assert encode_address(address) == field
    assert decode_address(field) == decode_address(encode_address(address))


def test_address_fields_read_leniently_but_never_wrongly() -> None:
    assert decode_address("10.0.0.1") == "10.0.0.1"  # dotted, as a few clients send
    assert decode_address("4294967295") == "255.255.255.255"
    for bad in ("4294967296", "host.example", "1.2.3", "", "١٢٣", "::g"):
        with pytest.raises(CtcpError):
            decode_address(bad)
    with pytest.raises(CtcpError):
        encode_address("localhost")  # DCC carries addresses, never names


def test_offers_as_mirc_irssi_and_weechat_send_them() -> None:
    offer = parse_dcc("SEND report.pdf 2130706433 5000 1048576")
    assert offer == DccSend(name="report.pdf", host="127.0.0.1", port=5000, size=1048576)
    assert not offer.passive and offer.token is None
    # Quoted names with spaces (mIRC, irssi); the quotes are not part of the name.
    spaced = parse_dcc('SEND "my holiday photo.jpg" 2130706433 5000 42')
    assert spaced.name == "my holiday photo.jpg"  # type: ignore[union-attr]
    # An unquoted name with spaces: the name ends where a valid address/port/size begins.
    assert parse_dcc("SEND my file 2130706433 5000 42").name == "my file"  # type: ignore[union-attr]
    # IPv6.
    v6 = parse_dcc("SEND f.txt 2001:db8::1 6000 7")
    assert (v6.host, v6.port) == ("2001:db8::1", 6000)  # type: ignore[union-attr]
    # Passive (reverse) DCC: port 0 and a token; irssi puts 1.1.1.1 as the address.
    passive = parse_dcc("SEND f.txt 16843009 0 7 42")
    assert passive.passive and passive.token == "42"  # type: ignore[union-attr]
    # The receiver's answer to a passive offer: its address and port, with the token.
    answer = parse_dcc("SEND f.txt 2130706433 40000 7 42")
    assert not answer.passive and answer.token == "42"  # type: ignore[union-attr]
    # mIRC's turbo send: the receiver sends no acknowledgements.
    assert parse_dcc("TSEND f 2130706433 5000 7").turbo  # type: ignore[union-attr]


def test_offers_are_written_as_they_are_read() -> None:
    assert DccSend(name="a b.txt", host="127.0.0.1", port=5000, size=3).to_text() == (
        '\x01DCC SEND "a b.txt" 2130706433 5000 3\x01'
    )
    assert DccSend(name="x", host="::1", port=0, size=3, token="17").to_text() == (
        "\x01DCC SEND x ::1 0 3 17\x01"
    )
    big = DccSend(name="big.iso", host="10.0.0.2", port=1, size=5 << 30)
    assert big.to_text().endswith(" 5368709120\x01")  # sizes past 4 GiB as they are
    assert quote_name('say "hi".txt') == "\"say 'hi'.txt\""  # a quote cannot be carried
    assert quote_name('it"s') == "it's"


def test_resume_and_accept() -> None:
    resume = parse_dcc("RESUME file.txt 5000 1024")
    assert resume == DccResume(name="file.txt", port=5000, position=1024)
    accept = parse_dcc('ACCEPT "a b" 0 1024 77')
    assert accept == DccResume(name="a b", port=0, position=1024, token="77", accept=True)
    assert accept.to_text() == '\x01DCC ACCEPT "a b" 0 1024 77\x01'  # type: ignore[union-attr]
    # mIRC says "file.ext" instead of the name; the port (or token) is what matches.
    assert parse_dcc("ACCEPT file.ext 5000 10").name == "file.ext"  # type: ignore[union-attr]


def test_reject() -> None:
    assert parse_dcc('REJECT SEND "a b.txt"') == DccReject(kind="SEND", name="a b.txt")
    assert DccReject(kind="get", name="x y").to_text() == '\x01DCC REJECT GET "x y"\x01'


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ("SEND f 2130706433 0 100", "port 0 without a token"),
        ("RESUME f 0 100", "port 0 without a token"),
        ("SEND f 2130706433 5000", "needs a file name"),
        ("SEND f 2130706433 99999 10", "port '99999'"),
        ("SEND f 2130706433 5000 99999999999999999999", "size"),
        ("SEND f 2130706433 5000 -1", "size '-1'"),
        ("SEND f 2130706433 5000 10 42 extra", "too many"),
        ("SEND f 2130706433 5000 10 " + "7" * 40, "token"),
        ("SEND f nowhere 5000 10", "not an IP address"),
        ("CHAT chat 2130706433 5000", "not supported"),
        ("", "not supported"),
        ("RESUME f x 10", "port 'x'"),
    ],
)
def test_bad_messages_say_why(args: str, reason: str) -> None:
    with pytest.raises(CtcpError) as info:
        parse_dcc(args)
    assert reason in str(info.value)


def test_messages_refuse_bad_fields_when_built() -> None:
    with pytest.raises(CtcpError):
        DccSend(name="", host="127.0.0.1", port=1, size=1)
    with pytest.raises(CtcpError):
        DccSend(name="a\x01b", host="127.0.0.1", port=1, size=1)
    with pytest.raises(CtcpError):
        DccSend(name="a", host="example.org", port=1, size=1)
    with pytest.raises(CtcpError):
        DccResume(name="a", port=70000, position=0)


names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters='\x00\r\n\x01"'), min_size=1
).filter(lambda s: s.strip(" ") == s and "  " not in s and s != "")
hosts = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)


@given(
    name=names,
    host=hosts,
    port=st.integers(1, 65535),
    size=st.integers(0, 1 << 62),
    token=st.none() | st.from_regex(r"[0-9]{1,10}", fullmatch=True),
)
def test_send_round_trips(name: str, host: str, port: int, size: int, token: str | None) -> None:
    offer = DccSend(name=name, host=host, port=port, size=size, token=token)
    parsed = parse_ctcp(offer.to_text())
    assert parsed is not None and parsed[0] == "DCC"
    assert parse_dcc(parsed[1]) == offer


@given(st.text(max_size=300))
def test_anything_parses_or_says_why(args: str) -> None:
    try:
        parse_dcc(args)
    except CtcpError:
        pass
