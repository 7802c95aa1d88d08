"""relaychat doctor without the network: ICMP packets, causes, targets and the report."""

from __future__ import annotations

import errno
import socket
import ssl
import struct
from typing import Any

import pytest

from relaychat.doctor import Diagnosis, format_report, format_step, parse_target
from relaychat.doctor import icmp as icmp_mod
from relaychat.doctor.icmp import (
    ECHO_REPLY,
    ECHO_REQUEST,
    ECHO_REQUEST_V6,
    IcmpNotPermitted,
    build_echo_request,
    checksum,
    parse_icmp,
    ping,
    strip_ipv4_header,
)
from relaychat.doctor.steps import StepResult, check_icmp, likely_cause, skipped


def ipv4_header(proto: int = socket.IPPROTO_ICMP, options: bytes = b"") -> bytes:
    """A minimal IPv4 header (RFC 791 §3.1); its own checksum is not checked by parse."""
    ihl = 5 + len(options) // 4
    return (
        struct.pack(
            "!BBHHHBBH4s4s",
            (4 << 4) | ihl,
            0,
            20 + len(options),
            0,
            0,
            64,
            proto,
            0,
            socket.inet_aton("127.0.0.1"),
            socket.inet_aton("127.0.0.1"),
        )
        + options
    )


class TestChecksum:
    """RFC 1071 §3: the Internet checksum."""

    def test_rfc1071_example(self) -> None:
        # RFC 1071 §3 sums 00 01 f2 03 f4 f5 f6 f7 to ddf2; the checksum is its complement.
        assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2

    def test_odd_length_is_padded_with_zero(self) -> None:
        assert checksum(b"\x12\x34\x56") == checksum(b"\x12\x34\x56\x00")

    def test_carries_fold_back_in(self) -> None:
        assert checksum(b"\xff\xff\xff\xff") == 0
        assert checksum(b"\x00\x00") == 0xFFFF

    def test_a_correct_packet_sums_to_zero(self) -> None:
        assert checksum(build_echo_request(0x1234, 7, b"hello")) == 0


class TestEchoRequest:
    """RFC 792 "Echo or Echo Reply Message"; RFC 4443 §4.1."""

    def test_fields(self) -> None:
        packet = build_echo_request(0xBEEF, 42, b"payload")
        kind, code, _sum, ident, seq = struct.unpack("!BBHHH", packet[:8])
        assert (kind, code, ident, seq) == (ECHO_REQUEST, 0, 0xBEEF, 42)
        assert packet[8:] == b"payload"

    def test_v6_leaves_the_checksum_to_the_kernel(self) -> None:
        packet = build_echo_request(1, 2, b"x", v6=True)
        assert packet[0] == ECHO_REQUEST_V6
        assert packet[2:4] == b"\x00\x00"

    @pytest.mark.parametrize(("ident", "seq"), [(-1, 0), (0x10000, 0), (0, 0x10000)])
    def test_fields_must_fit_16_bits(self, ident: int, seq: int) -> None:
        with pytest.raises(ValueError):
            build_echo_request(ident, seq)


def echo_reply(ident: int, seq: int, payload: bytes) -> bytes:
    """What a peer sends back: type 0, same identifier, sequence and data (RFC 792)."""
    unsummed = struct.pack("!BBHHH", ECHO_REPLY, 0, 0, ident, seq) + payload
    return struct.pack("!BBHHH", ECHO_REPLY, 0, checksum(unsummed), ident, seq) + payload


class TestParse:
    def test_echo_reply(self) -> None:
        packet = parse_icmp(echo_reply(0x1234, 3, b"data"))
        assert packet.is_echo_reply and not packet.is_error
        assert (packet.ident, packet.seq, packet.payload) == (0x1234, 3, b"data")
        assert packet.checksum_ok

    def test_corruption_is_detected(self) -> None:
        raw = bytearray(echo_reply(1, 1, b"data"))
        raw[-1] ^= 0x01
        assert not parse_icmp(bytes(raw)).checksum_ok

    def test_too_short(self) -> None:
        with pytest.raises(ValueError):
            parse_icmp(b"\x00\x00\x00")

    def test_ipv4_header_is_stripped_by_its_length(self) -> None:
        reply = echo_reply(9, 9, b"")
        assert strip_ipv4_header(ipv4_header() + reply) == reply
        # with 4 bytes of options, IHL is 6
        assert strip_ipv4_header(ipv4_header(options=b"\x01\x01\x01\x00") + reply) == reply

    @pytest.mark.parametrize(
        "data", [b"", b"\x45" * 10, b"\x65" + b"\x00" * 30, b"\x4f" + bytes(30)]
    )
    def test_bad_ipv4_headers(self, data: bytes) -> None:
        with pytest.raises(ValueError):
            strip_ipv4_header(data)

    def test_destination_unreachable_quotes_our_request(self) -> None:
        # RFC 792: type 3, then the original IP header and the first 64 bits of its data.
        quoted = ipv4_header() + build_echo_request(0xABCD, 5, b"")[:8]
        unsummed = struct.pack("!BBHI", 3, 1, 0, 0) + quoted
        message = struct.pack("!BBHI", 3, 1, checksum(unsummed), 0) + quoted
        packet = parse_icmp(message)
        assert packet.is_error and (packet.ident, packet.seq) == (0xABCD, 5)
        assert packet.describe_error() == "host unreachable"

    def test_error_quoting_something_else_is_not_ours(self) -> None:
        quoted = ipv4_header(proto=socket.IPPROTO_UDP) + b"\x00" * 8
        assert not parse_icmp(struct.pack("!BBHI", 3, 3, 0, 0) + quoted).is_error

    def test_v6_time_exceeded_quotes_our_request(self) -> None:
        # RFC 4443 §3.3: type 3, then the invoking packet: a 40-byte IPv6 header, our echo.
        ipv6 = bytes([0x60, 0, 0, 0, 0, 8, 58, 64]) + bytes(32)
        message = struct.pack("!BBHI", 3, 0, 0, 0) + ipv6 + build_echo_request(7, 8, v6=True)
        packet = parse_icmp(message, v6=True)
        assert packet.is_error and (packet.ident, packet.seq) == (7, 8)
        assert "time to live exceeded" in packet.describe_error()


class TestNotPermitted:
    def test_neither_socket_kind_is_permitted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        def refuse(family: int, kind: int, proto: int) -> socket.socket:
            if kind == socket.SOCK_RAW:
                raise PermissionError(errno.EPERM, "Operation not permitted")
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(icmp_mod.socket, "socket", refuse)
        monkeypatch.setattr(icmp_mod, "_ping_group_range", lambda: "1 0")
        with pytest.raises(IcmpNotPermitted) as info:
            ping("127.0.0.1")
        assert "raw socket: Operation not permitted" in str(info.value)
        assert "ICMP datagram socket: Permission denied" in str(info.value)
        result = check_icmp("127.0.0.1", 1, 1.0)
        assert result.status == "failed"
        assert result.error is not None and "ICMP is not permitted here" in result.error
        assert result.likely_cause is not None
        assert "CAP_NET_RAW" in result.likely_cause
        assert "net.ipv4.ping_group_range is '1 0'" in result.likely_cause


@pytest.mark.parametrize(
    ("step", "exc", "words"),
    [
        ("dns", socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "does not exist"),
        ("dns", socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), "did not answer"),
        ("dns", TimeoutError(), "DNS server did not answer in time"),
        ("tcp", ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "nothing is listening"),
        ("tcp", OSError(errno.EHOSTUNREACH, "No route"), "no route to the host"),
        ("tcp", OSError(errno.ENETUNREACH, "unreachable"), "no route to that network"),
        ("tcp", TimeoutError(), "firewall dropping packets"),
        ("irc", TimeoutError(), "never completed IRC registration"),
        ("irc", ConnectionResetError(errno.ECONNRESET, "reset"), "reset the connection"),
        ("ping", TimeoutError(), "did not answer PING"),
        ("icmp", TimeoutError(), "drops ICMP"),
        ("tcp", OSError(errno.EROFS, "odd"), "unexpected"),
    ],
)
def test_likely_causes(step: str, exc: BaseException, words: str) -> None:
    assert words in likely_cause(step, exc)


def test_tls_causes() -> None:
    def verify_error(message: str) -> ssl.SSLCertVerificationError:
        exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
        exc.verify_message = message
        return exc

    assert "self-signed" in likely_cause("tls", verify_error("self-signed certificate"))
    assert "expired" in likely_cause("tls", verify_error("certificate has expired"))
    assert "another name" in likely_cause("tls", verify_error("Hostname mismatch, ..."))
    wrong = ssl.SSLError(1, "wrong version")
    wrong.reason = "WRONG_VERSION_NUMBER"
    assert "does not speak TLS" in likely_cause("tls", wrong)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("irc.example", ("irc.example", None)),
        ("irc.example:6697", ("irc.example", 6697)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("::1", ("::1", None)),
        ("[::1]:6667", ("::1", 6667)),
        ("[fe80::1]", ("fe80::1", None)),
    ],
)
def test_parse_target(text: str, expected: tuple[str, int | None]) -> None:
    assert parse_target(text) == expected


@pytest.mark.parametrize(
    "text", ["", ":6667", "host:0", "host:65536", "host:http", "[::1", "[::1]x"]
)
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_target(text)


def ok(step: str, **details: Any) -> StepResult:
    return StepResult(step=step, status="ok", duration=0.001, details=details)


def test_report_names_the_failed_step_and_its_cause() -> None:
    refused = StepResult(
        step="tcp",
        status="failed",
        duration=0.0001,
        error="Connection refused",
        likely_cause="nothing is listening on that port",
    )
    diagnosis = Diagnosis(
        "h",
        1,
        False,
        (
            ok("dns", addresses=["127.0.0.1"]),
            skipped("icmp", "turned off (--no-icmp)"),
            refused,
            skipped("tls", "needs a TCP connection"),
        ),
    )
    assert not diagnosis.ok
    assert diagnosis.failed_step is refused
    report = format_report(diagnosis)
    assert "FAIL  TCP connect" in report
    assert "likely cause: nothing is listening on that port" in report
    assert report.splitlines()[-1] == (
        "result: failed at step 'TCP connect': nothing is listening on that port"
    )
    assert diagnosis.to_dict()["failed_step"] == "tcp"


def test_icmp_failure_alone_does_not_fail_the_diagnosis() -> None:
    dropped = StepResult(step="icmp", status="failed", duration=1.0, error="no reply")
    diagnosis = Diagnosis("h", 6667, False, (ok("dns", addresses=["h"]), dropped))
    assert diagnosis.ok
    assert format_step(dropped).lstrip().startswith("warn")
    assert format_report(diagnosis).endswith("every step passed (but see ICMP)")
