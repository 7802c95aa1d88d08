"""ICMP echo, built and parsed by hand: RFC 792 (IPv4) and RFC 4443 (IPv6).

Rules:
- The packet functions (:func:`checksum`, :func:`build_echo_request`, :func:`parse_icmp`,
  :func:`strip_ipv4_header`) are pure: bytes in, values out, ``ValueError`` on bad input.
- :func:`ping` is the only function here that opens a socket. It prefers a raw socket (needs
  root or CAP_NET_RAW) and falls back to Linux's unprivileged ICMP datagram socket (allowed for
  the groups in ``net.ipv4.ping_group_range``); when neither is permitted it raises
  :class:`IcmpNotPermitted`, which says why.
- Every wait has a deadline; nothing here loops without one.

The echo message (RFC 792, "Echo or Echo Reply Message")::

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |     Type      |     Code      |          Checksum             |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |           Identifier          |        Sequence Number        |
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |     Data ...
"""

from __future__ import annotations

import random
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ECHO_REPLY",
    "ECHO_REPLY_V6",
    "ECHO_REQUEST",
    "ECHO_REQUEST_V6",
    "IcmpNotPermitted",
    "IcmpPacket",
    "PingResult",
    "build_echo_request",
    "checksum",
    "parse_icmp",
    "ping",
    "strip_ipv4_header",
]

# RFC 792 types
ECHO_REPLY = 0
DEST_UNREACHABLE = 3
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
# RFC 4443 §2.1 types
DEST_UNREACHABLE_V6 = 1
TIME_EXCEEDED_V6 = 3
ECHO_REQUEST_V6 = 128
ECHO_REPLY_V6 = 129

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence number
_IPV6_HEADER_LEN = 40
_NEXT_HEADER_ICMPV6 = 58

#: RFC 792 "Destination Unreachable" codes, as a person would say them.
UNREACHABLE_V4 = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    13: "communication administratively prohibited (a firewall)",
}
#: RFC 4443 §3.1 codes.
UNREACHABLE_V6 = {
    0: "no route to destination",
    1: "communication administratively prohibited (a firewall)",
    3: "address unreachable",
    4: "port unreachable",
}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum.

    An odd-length input is padded with a zero byte (RFC 792). A packet that carries a correct
    checksum sums to ``0`` with this function.
    """
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def build_echo_request(ident: int, seq: int, payload: bytes = b"", *, v6: bool = False) -> bytes:
    """An ICMP echo request with its checksum.

    Args:
        ident: the identifier (0-65535) replies must carry back.
        seq: the sequence number (0-65535).
        payload: data the peer must echo unchanged.
        v6: build an ICMPv6 echo request (type 128); its checksum covers an IPv6 pseudo-header
            (RFC 4443 §2.3) the kernel knows and we do not, so the kernel fills it in.

    Raises:
        ValueError: ``ident`` or ``seq`` is out of range.
    """
    if not (0 <= ident <= 0xFFFF and 0 <= seq <= 0xFFFF):
        raise ValueError("identifier and sequence number must fit in 16 bits")
    kind = ECHO_REQUEST_V6 if v6 else ECHO_REQUEST
    unsummed = _HEADER.pack(kind, 0, 0, ident, seq) + payload
    if v6:
        return unsummed
    return _HEADER.pack(kind, 0, checksum(unsummed), ident, seq) + payload


@dataclass(frozen=True, slots=True)
class IcmpPacket:
    """One parsed ICMP message.

    Attributes:
        type: the ICMP type.
        code: the ICMP code.
        ident: the identifier (echo messages), or the one quoted by an error message.
        seq: the sequence number, likewise.
        payload: the echo data (for errors: the quoted original datagram).
        checksum_ok: the checksum verified (always ``True`` for ICMPv6, which the kernel checks).
        is_error: a destination-unreachable or time-exceeded message quoting our echo request.
    """

    type: int
    code: int
    ident: int
    seq: int
    payload: bytes = b""
    checksum_ok: bool = True
    is_error: bool = False
    v6: bool = field(default=False, repr=False)

    @property
    def is_echo_reply(self) -> bool:
        """Whether it is an echo reply."""
        return self.type == (ECHO_REPLY_V6 if self.v6 else ECHO_REPLY)

    def describe_error(self) -> str:
        """What an error message says, in words ("host unreachable", "TTL exceeded")."""
        if self.type == (TIME_EXCEEDED_V6 if self.v6 else TIME_EXCEEDED):
            return "time to live exceeded in transit (a routing loop, or too many hops)"
        table = UNREACHABLE_V6 if self.v6 else UNREACHABLE_V4
        return table.get(self.code, f"destination unreachable (code {self.code})")


def strip_ipv4_header(data: bytes) -> bytes:
    """What follows the IPv4 header of ``data`` (its length is IHL x 4 bytes, RFC 791 §3.1).

    Raw IPv4 sockets deliver the whole datagram; ICMP datagram sockets and IPv6 do not.

    Raises:
        ValueError: ``data`` is not an IPv4 datagram or is cut short.
    """
    if len(data) < 20 or data[0] >> 4 != 4:
        raise ValueError("not an IPv4 datagram")
    ihl = (data[0] & 0x0F) * 4
    if ihl < 20 or len(data) < ihl:
        raise ValueError("IPv4 header length is wrong")
    return data[ihl:]


def _quoted_echo(body: bytes, v6: bool) -> tuple[int, int] | None:
    """The (identifier, sequence) of the echo request an error message quotes, if it is one."""
    try:
        if v6:
            # RFC 4443 §3: as much of the invoking packet as fits; its IPv6 header is 40 bytes.
            if len(body) < _IPV6_HEADER_LEN + 8 or body[6] != _NEXT_HEADER_ICMPV6:
                return None
            inner = body[_IPV6_HEADER_LEN:]
            expected = ECHO_REQUEST_V6
        else:
            # RFC 792: the internet header plus the first 64 bits of the original datagram.
            if len(body) < 20 or body[9] != socket.IPPROTO_ICMP:
                return None
            inner = strip_ipv4_header(body)
            expected = ECHO_REQUEST
    except ValueError:
        return None
    if len(inner) < 8:
        return None
    kind, _code, _sum, ident, seq = _HEADER.unpack_from(inner)
    return (ident, seq) if kind == expected else None


def parse_icmp(data: bytes, *, v6: bool = False) -> IcmpPacket:
    """Parse one ICMP message (no IP header in front).

    Args:
        data: the ICMP message.
        v6: it is ICMPv6.

    Returns:
        The message; for an error quoting an echo request, ``ident``/``seq`` are the quoted
        ones and ``is_error`` is set.

    Raises:
        ValueError: shorter than the 8-byte header.
    """
    if len(data) < _HEADER.size:
        raise ValueError(f"ICMP message of {len(data)} bytes is shorter than its header")
    kind, code, _sum, ident, seq = _HEADER.unpack_from(data)
    ok = True if v6 else checksum(data) == 0
    errors = (DEST_UNREACHABLE_V6, TIME_EXCEEDED_V6) if v6 else (DEST_UNREACHABLE, TIME_EXCEEDED)
    if kind in errors:
        quoted = _quoted_echo(data[_HEADER.size :], v6)
        if quoted is not None:
            return IcmpPacket(kind, code, *quoted, data[_HEADER.size :], ok, True, v6)
    return IcmpPacket(kind, code, ident, seq, data[_HEADER.size :], ok, False, v6)


# --- sending and receiving ----------------------------------------------------------------------


class IcmpNotPermitted(PermissionError):
    """Neither a raw ICMP socket nor an unprivileged ICMP datagram socket may be opened."""

    def __init__(self, raw_error: str, dgram_error: str, group_range: str | None) -> None:
        hint = "run as root (or grant CAP_NET_RAW)"
        if group_range is not None:
            hint += (
                f", or allow unprivileged ping for your group: net.ipv4.ping_group_range is "
                f"{group_range!r}"
            )
        super().__init__(
            f"ICMP is not permitted here (raw socket: {raw_error}; "
            f"ICMP datagram socket: {dgram_error})"
        )
        self.hint = hint
        self.raw_error = raw_error
        self.dgram_error = dgram_error
        self.group_range = group_range


@dataclass(frozen=True, slots=True)
class PingResult:
    """What :func:`ping` saw.

    Attributes:
        mode: ``"raw"`` or ``"datagram"``: the kind of socket used.
        sent: echo requests sent.
        rtts: the round-trip time of every matched reply, in seconds.
        errors: what ICMP error messages about our requests said.
        bad: replies discarded for a wrong checksum or altered data.
    """

    mode: str
    sent: int
    rtts: tuple[float, ...]
    errors: tuple[str, ...] = ()
    bad: int = 0

    @property
    def received(self) -> int:
        """Echo replies matched."""
        return len(self.rtts)


def _ping_group_range() -> str | None:
    try:
        return " ".join(Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except OSError:
        return None


def _open(family: int) -> tuple[socket.socket, str]:
    proto = socket.IPPROTO_ICMPV6 if family == socket.AF_INET6 else socket.IPPROTO_ICMP
    try:
        return socket.socket(family, socket.SOCK_RAW, proto), "raw"
    except PermissionError as exc:
        raw_error = exc.strerror or str(exc)
    try:
        return socket.socket(family, socket.SOCK_DGRAM, proto), "datagram"
    except (PermissionError, OSError) as exc:
        dgram_error = exc.strerror or str(exc)
    raise IcmpNotPermitted(raw_error, dgram_error, _ping_group_range())


def _payload(seq: int) -> bytes:
    # 56 data bytes, as ping(8) sends: a timestamp, then a recognisable pattern.
    return struct.pack("!dH", time.time(), seq) + bytes(range(46))


def ping(
    address: str,
    *,
    count: int = 3,
    timeout: float = 1.0,
    interval: float = 0.1,
) -> PingResult:
    """Send ``count`` echo requests to ``address`` and match the replies.

    Args:
        address: an IPv4 or IPv6 address (not a name).
        count: echo requests to send, one at a time.
        timeout: seconds to wait for each reply.
        interval: seconds between a reply (or timeout) and the next request.

    Returns:
        What was seen (replies, errors, discards).

    Raises:
        IcmpNotPermitted: no kind of ICMP socket may be opened here.
        OSError: sending failed (e.g. network unreachable).
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    v6 = family == socket.AF_INET6
    sock, mode = _open(family)
    ident = random.getrandbits(16)
    rtts: list[float] = []
    errors: list[str] = []
    bad = 0
    try:
        for seq in range(1, count + 1):
            payload = _payload(seq)
            packet = build_echo_request(ident, seq, payload, v6=v6)
            started = time.perf_counter()
            sock.sendto(packet, (address, 0))
            deadline = started + timeout
            while (remaining := deadline - time.perf_counter()) > 0:
                sock.settimeout(remaining)
                try:
                    data, peer = sock.recvfrom(65535)
                except TimeoutError:
                    break
                try:
                    if mode == "raw" and not v6:
                        data = strip_ipv4_header(data)
                    reply = parse_icmp(data, v6=v6)
                except ValueError:
                    continue
                # A datagram socket's identifier is rewritten by the kernel, which also only
                # hands this socket its own replies; a raw socket sees every ICMP message.
                if reply.seq != seq or (mode == "raw" and reply.ident != ident):
                    continue
                if reply.is_error:
                    errors.append(f"{reply.describe_error()} (from {peer[0]})")
                    break
                if not reply.is_echo_reply or peer[0].split("%")[0] != address.split("%")[0]:
                    continue
                if not reply.checksum_ok or reply.payload != payload:
                    bad += 1
                    continue
                rtts.append(time.perf_counter() - started)
                break
            if seq < count:
                time.sleep(interval)
    finally:
        sock.close()
    return PingResult(mode, count, tuple(rtts), tuple(errors), bad)
