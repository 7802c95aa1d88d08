"""CTCP framing and the DCC file-transfer messages, pure: text in, values out, and back.

CTCP (Client-To-Client Protocol) rides inside PRIVMSG (a request) and NOTICE (a reply) as
``\\x01COMMAND args\\x01``. DCC (Direct Client-to-Client) uses it to set up a TCP connection
between two clients; these are the messages of file transfer, as mIRC, irssi, WeeChat and
HexChat send them (the de facto spec; see ``docs/dcc.md``)::

    DCC SEND <file> <ip> <port> <size>            offer: connect to me at ip:port
    DCC SEND <file> <ip> 0 <size> <token>         passive offer: I cannot listen, will you?
    DCC SEND <file> <ip> <port> <size> <token>    answer to a passive offer: connect to me
    DCC RESUME <file> <port> <position> [token]   receiver: start from ``position`` please
    DCC ACCEPT <file> <port> <position> [token]   sender: agreed, connect (or answer) now
    DCC REJECT SEND <file>                        (a NOTICE) no thanks / cancelled

Rules:
1. ``<file>`` is in double quotes when it holds a space; a quote inside a name cannot be sent
   (:func:`quote_name` replaces it). An unquoted name with spaces is read as irssi reads it:
   the file name ends where the first valid ``<ip> <port> <size>`` begins.
2. ``<ip>`` is an IPv4 address as one unsigned 32-bit decimal number (``2130706433`` is
   127.0.0.1), or an IPv6 address literal. A dotted IPv4 address is accepted when read.
3. Everything here checks its fields when built and when parsed: a message that can be built
   can be sent, and a parse either returns a valid message or raises :class:`CtcpError` with a
   reason a user can read. Nothing about the *contents* (file-name safety, size limits, which
   nick may offer) is decided here: that is :mod:`relaychat.client.dccstate`'s business.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from relaychat.errors import ProtocolError

__all__ = [
    "CTCP_DELIM",
    "MAX_PORT",
    "MAX_SIZE",
    "CtcpError",
    "DccMessage",
    "DccReject",
    "DccResume",
    "DccSend",
    "decode_address",
    "encode_address",
    "format_ctcp",
    "is_ctcp_not_action",
    "parse_ctcp",
    "parse_dcc",
    "quote_name",
]

CTCP_DELIM = "\x01"
MAX_PORT = 65535
#: The largest size or position a DCC message may carry (what a signed 64-bit offset holds).
MAX_SIZE = (1 << 63) - 1
#: The longest token of passive DCC we take (irssi sends 0-63, mIRC a few digits).
MAX_TOKEN = 32
_FORBIDDEN = frozenset("\0\r\n\x01")


class CtcpError(ProtocolError):
    """A CTCP or DCC message that cannot be read or built; ``detail`` says why."""


def parse_ctcp(text: str) -> tuple[str, str] | None:
    """Split a CTCP message into its command (upper-cased) and arguments.

    Args:
        text: the text of a PRIVMSG or NOTICE.

    Returns:
        ``(command, args)``, or ``None`` when ``text`` is not CTCP. The closing ``\\x01`` is
        optional, as many clients leave it out.
    """
    if len(text) < 2 or text[0] != CTCP_DELIM:
        return None
    body = text[1:-1] if text.endswith(CTCP_DELIM) else text[1:]
    command, _, args = body.partition(" ")
    if not command or CTCP_DELIM in body:
        return None
    return command.upper(), args


def is_ctcp_not_action(text: str) -> bool:
    """Whether ``text`` is CTCP other than ``ACTION`` (a request or reply: VERSION, PING, a DCC
    offer...): text starting with ``\\x01`` that is not ``\\x01ACTION``. Such messages are
    relayed live but never kept in history (a DCC offer carries an IP address and a port, and
    a stale request would be answered again)."""
    if text[:1] != CTCP_DELIM:
        return False
    parsed = parse_ctcp(text)
    return parsed is None or parsed[0] != "ACTION"


def format_ctcp(command: str, args: str = "") -> str:
    """The text of a CTCP message (to send in a PRIVMSG, or a NOTICE for a reply).

    Raises:
        CtcpError: the command is empty or holds a space, or a part holds NUL, CR, LF or \\x01.
    """
    if not command or " " in command or _FORBIDDEN.intersection(command + args):
        raise CtcpError(f"cannot send CTCP {command!r} {args!r}")
    return f"{CTCP_DELIM}{command}{' ' + args if args else ''}{CTCP_DELIM}"


# --- addresses --------------------------------------------------------------------------------


def encode_address(address: str) -> str:
    """An IP address as a DCC message carries it (IPv4 as a 32-bit number, IPv6 as is).

    Raises:
        CtcpError: ``address`` is not an IP address (DCC carries no host names).
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        raise CtcpError(f"{address!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(int(ip)) if ip.version == 4 else ip.compressed


def decode_address(text: str) -> str:
    """The IP address of a DCC message's ``<ip>`` field, in the usual notation.

    Raises:
        CtcpError: not a 32-bit number, a dotted IPv4 address or an IPv6 literal.
    """
    try:
        if _digits(text):
            value = int(text)
            if not 0 <= value < 1 << 32:
                raise ValueError
            return str(ipaddress.IPv4Address(value))
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise CtcpError(f"{text[:60]!r} is not an IP address") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return ip.compressed


def _is_address(text: str) -> bool:
    try:
        decode_address(text)
    except CtcpError:
        return False
    return True


# --- names --------------------------------------------------------------------------------------


def quote_name(name: str) -> str:
    """The ``<file>`` field for ``name``: quoted when it holds a space (rule 1).

    A double quote inside the name cannot be carried, so it becomes ``'``.

    Raises:
        CtcpError: the name is empty or holds NUL, CR, LF or \\x01.
    """
    if not name or _FORBIDDEN.intersection(name):
        raise CtcpError(f"{name!r} cannot be sent as a file name")
    name = name.replace('"', "'")
    return f'"{name}"' if " " in name else name


def _split_name(tokens: list[str], fields: int, match: int) -> tuple[str, list[str]]:
    """Split ``tokens`` into the file name and the fields after it (rule 1).

    Args:
        tokens: the arguments after ``SEND``/``RESUME``/``ACCEPT``, split on single spaces.
        fields: how many fields at least follow the name.
        match: how many of those fields must look right for the name to end there.
    """
    if tokens[0].startswith('"'):
        for end in range(len(tokens) - fields):
            if tokens[end].endswith('"') and (end > 0 or len(tokens[0]) > 1):
                name = " ".join(tokens[: end + 1])[1:-1]
                if name and _fields_match(tokens[end + 1 :], match):
                    return name, tokens[end + 1 :]
    for end in range(1, len(tokens) - fields + 1):
        if _fields_match(tokens[end:], match):
            return " ".join(tokens[:end]), tokens[end:]
    return " ".join(tokens[: len(tokens) - fields]), tokens[len(tokens) - fields :]


def _digits(text: str) -> bool:
    """Whether ``text`` is a plain ASCII number of at most 20 digits."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


def _fields_match(rest: list[str], match: int) -> bool:
    if match == 3:  # <ip> <port> <size>
        return (
            len(rest) >= 3
            and _is_address(rest[0])
            and _digits(rest[1])
            and int(rest[1]) <= MAX_PORT
            and _digits(rest[2])
        )
    return len(rest) >= 2 and _digits(rest[0]) and int(rest[0]) <= MAX_PORT and _digits(rest[1])


def _number(text: str, what: str, limit: int) -> int:
    if not _digits(text) or int(text) > limit:
        raise CtcpError(f"{what} {text[:30]!r} is not a number from 0 to {limit}")
    return int(text)


def _check_token(token: str | None) -> None:
    if token is not None and (
        not token
        or len(token) > MAX_TOKEN
        or not token.isascii()
        or not token.isprintable()
        or " " in token
    ):
        raise CtcpError(f"the passive DCC token {token[:40]!r} is not valid")


def _check_name(name: str) -> None:
    if not name or _FORBIDDEN.intersection(name):
        raise CtcpError("the file name is empty or holds control characters")


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DccSend:
    """``DCC SEND``: an offer, a passive offer (``port`` 0 and a ``token``), or the answer to one.

    Attributes:
        name: the file name as sent (not yet made safe: see ``dccstate.safe_name``).
        host: the IP address (dotted IPv4 or IPv6); meaningless in a passive offer.
        port: where to connect; 0 in a passive offer.
        size: the file's size in bytes.
        token: the passive DCC token (``None`` for a classic offer).
        turbo: it came as ``DCC TSEND`` (mIRC's turbo: the receiver sends no acks).
    """

    name: str
    host: str
    port: int
    size: int
    token: str | None = None
    turbo: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_token(self.token)
        if not 0 <= self.port <= MAX_PORT:
            raise CtcpError(f"port {self.port} is out of range")
        if self.port == 0 and self.token is None:
            raise CtcpError("port 0 without a token (a passive offer needs one)")
        if not 0 <= self.size <= MAX_SIZE:
            raise CtcpError(f"size {self.size} is out of range")
        object.__setattr__(self, "host", decode_address(encode_address(self.host)))

    @property
    def passive(self) -> bool:
        """A passive offer: the sender cannot listen and asks the receiver to."""
        return self.port == 0

    def to_text(self) -> str:
        """The CTCP text (``\\x01DCC SEND ...\\x01``) to send in a PRIVMSG."""
        parts = [
            "TSEND" if self.turbo else "SEND",
            quote_name(self.name),
            encode_address(self.host),
            str(self.port),
            str(self.size),
        ]
        if self.token is not None:
            parts.append(self.token)
        return format_ctcp("DCC", " ".join(parts))


@dataclass(frozen=True, slots=True, kw_only=True)
class DccResume:
    """``DCC RESUME`` (the receiver asks to start at ``position``) or ``DCC ACCEPT`` (agreed).

    Attributes:
        name: the file name (clients match on ``port`` or ``token``, not on this).
        port: the port of the offer (0 for a passive one).
        position: the byte offset to continue from.
        token: the passive DCC token, for a passive offer.
        accept: ``True`` for ``DCC ACCEPT``, the sender's answer.
    """

    name: str
    port: int
    position: int
    token: str | None = None
    accept: bool = False

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_token(self.token)
        if not 0 <= self.port <= MAX_PORT:
            raise CtcpError(f"port {self.port} is out of range")
        if self.port == 0 and self.token is None:
            raise CtcpError("port 0 without a token (a passive offer needs one)")
        if not 0 <= self.position <= MAX_SIZE:
            raise CtcpError(f"position {self.position} is out of range")

    def to_text(self) -> str:
        """The CTCP text to send in a PRIVMSG."""
        verb = "ACCEPT" if self.accept else "RESUME"
        parts = [verb, quote_name(self.name), str(self.port), str(self.position)]
        if self.token is not None:
            parts.append(self.token)
        return format_ctcp("DCC", " ".join(parts))


@dataclass(frozen=True, slots=True, kw_only=True)
class DccReject:
    """``DCC REJECT <type> <arg>`` (in a NOTICE): the offer was declined or cancelled."""

    kind: str
    name: str

    def __post_init__(self) -> None:
        if not self.kind or " " in self.kind or _FORBIDDEN.intersection(self.kind + self.name):
            raise CtcpError("a DCC REJECT needs a type and a name without control characters")

    def to_text(self) -> str:
        """The CTCP text to send in a NOTICE."""
        return format_ctcp("DCC", f"REJECT {self.kind.upper()} {quote_name(self.name)}")


DccMessage = DccSend | DccResume | DccReject


def parse_dcc(args: str) -> DccMessage:
    """Read the arguments of a ``DCC`` CTCP (what follows ``DCC ``).

    Returns:
        The message: :class:`DccSend`, :class:`DccResume` (``accept`` for ACCEPT) or
        :class:`DccReject`.

    Raises:
        CtcpError: an unknown DCC type (``CHAT`` included: only files are supported), missing
            fields, or a field out of range; ``detail`` says which.
    """
    kind, _, rest = args.partition(" ")
    kind = kind.upper()
    tokens = rest.split(" ") if rest else []
    if kind in ("SEND", "TSEND"):
        if len(tokens) < 4:
            raise CtcpError(f"DCC {kind} needs a file name, address, port and size")
        name, fields = _split_name(tokens, 3, 3)
        if len(fields) > 4:
            raise CtcpError(f"DCC {kind} has {len(fields) - 4} field(s) too many")
        host = decode_address(fields[0])
        port = _number(fields[1], "port", MAX_PORT)
        size = _number(fields[2], "size", MAX_SIZE)
        token = fields[3] if len(fields) == 4 else None
        return DccSend(
            name=name, host=host, port=port, size=size, token=token, turbo=kind == "TSEND"
        )
    if kind in ("RESUME", "ACCEPT"):
        if len(tokens) < 3:
            raise CtcpError(f"DCC {kind} needs a file name, port and position")
        name, fields = _split_name(tokens, 2, 2)
        if len(fields) > 3:
            raise CtcpError(f"DCC {kind} has {len(fields) - 3} field(s) too many")
        return DccResume(
            name=name,
            port=_number(fields[0], "port", MAX_PORT),
            position=_number(fields[1], "position", MAX_SIZE),
            token=fields[2] if len(fields) == 3 else None,
            accept=kind == "ACCEPT",
        )
    if kind == "REJECT":
        sub, _, name = rest.partition(" ")
        if len(name) > 1 and name.startswith('"') and name.endswith('"'):
            name = name[1:-1]
        return DccReject(kind=sub.upper(), name=name)
    raise CtcpError(f"DCC {kind[:20] or '(empty)'} is not supported (only file transfer is)")
