"""IRC messages: parse and serialise (RFC 1459 §2.3.1, RFC 2812 §2.3, IRCv3 message-tags).

A line is ``['@' tags SPACE] [':' source SPACE] command params* [SPACE ':' trailing]``.

Limits enforced here (the caller turns :class:`~relaychat.errors.InputTooLong` into 417):
- the part after the tags, line ending included, is at most 512 bytes, so 510 without it;
- the tag section, its ``@`` and trailing space included, is at most 8191 bytes from a server,
  and 4096 from a client (message-tags: "clients MUST NOT send messages with tag data exceeding
  4094 bytes"; :func:`parse_from_client`).

Bytes are decoded as UTF-8. A line that is not valid UTF-8 is decoded as latin-1 instead, so any
input parses and nothing crashes on encoding; except that the server refuses such a line from a
client (:func:`parse_from_client` raises :class:`~relaychat.errors.InvalidUtf8`), since it
announces ``UTF8ONLY`` and must not relay it.

Separators are ASCII spaces (0x20) only, one or more (RFC 1459 §2.3.1); tabs and other Unicode
whitespace are ordinary characters inside a parameter. NUL, CR and LF are never part of a message
(RFC 1459 §2.3.1, Modern IRC "Messages"): :func:`parse` refuses a line holding one, so every
:class:`Message` it returns can be serialised again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relaychat.errors import EmptyMessage, InputTooLong, InvalidUtf8, ProtocolError
from relaychat.protocol.tags import parse_tags, serialize_tags

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_CLIENT_TAGS_BYTES",
    "MAX_LINE_BYTES",
    "MAX_TAGS_BYTES",
    "Message",
    "decode_line",
    "parse",
    "parse_bytes",
    "parse_from_client",
]

#: RFC 1459 §2.3: 512 bytes including CR-LF, so 510 for the content.
MAX_BODY_BYTES = 510
#: IRCv3 message-tags: 8191 bytes for the tag section including '@' and the trailing space.
MAX_TAGS_BYTES = 8191
#: IRCv3 message-tags: a client sends at most 4094 bytes of tag data, 4096 with '@' and the space.
MAX_CLIENT_TAGS_BYTES = 4096
#: The longest line a LineBuffer must accept before it can tell which part is too long.
MAX_LINE_BYTES = MAX_TAGS_BYTES + MAX_BODY_BYTES


def _has_forbidden(text: str) -> bool:
    return "\0" in text or "\r" in text or "\n" in text


@dataclass(frozen=True, slots=True)
class Message:
    """One IRC message.

    An empty ``source`` is normalised to ``None``. Fields are not checked when the message is
    built; :meth:`check` (called by :meth:`serialize`) refuses what could not go on the wire.

    Attributes:
        command: the verb or three-digit numeric, upper-cased when parsed.
        params: the parameters; the last one may hold spaces.
        source: the prefix without its ``:``, or ``None``.
        tags: IRCv3 tags, unescaped; a tag without a value maps to ``""``.
    """

    command: str
    params: tuple[str, ...] = ()
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict, compare=True, hash=False)

    def __post_init__(self) -> None:
        if self.source == "":
            object.__setattr__(self, "source", None)

    def check(self) -> None:
        """Check that this message is one valid line which parses back to an equal message.

        Raises:
            ProtocolError: the command is empty, holds a space or starts with ``:`` or ``@``;
                the source holds a space; a tag key is empty or holds ``=``, ``;`` or a space;
                a middle parameter is empty, holds a space or starts with ``:``; or any part
                holds CR, LF or NUL.
        """
        command = self.command
        if not command or " " in command or command[0] in ":@":
            raise ProtocolError(f"invalid command {command!r}")
        if self.source is not None and " " in self.source:
            raise ProtocolError(f"invalid source {self.source!r}")
        for key, value in self.tags.items():
            if not key or "=" in key or ";" in key or " " in key:
                raise ProtocolError(f"invalid tag key {key!r}")
            # CR and LF in a value are escaped; NUL cannot be.
            if "\0" in value or _has_forbidden(key):
                raise ProtocolError(f"CR, LF or NUL in tag {key!r}")
        params = self.params
        for p in params[:-1]:
            if not p or " " in p or p[0] == ":":
                raise ProtocolError(f"invalid middle parameter {p!r}")
        if (
            _has_forbidden(command)
            or (self.source is not None and _has_forbidden(self.source))
            or any(_has_forbidden(p) for p in params)
        ):
            raise ProtocolError("CR, LF and NUL are not allowed in a message")

    def serialize(self) -> str:
        """Return the line without its ending.

        Returns:
            The line; :func:`parse` turns it back into an equal message.

        Raises:
            ProtocolError: :meth:`check` refused the message.
        """
        self.check()
        parts: list[str] = []
        if self.tags:
            parts.append("@" + serialize_tags(self.tags))
        if self.source:
            parts.append(":" + self.source)
        parts.append(self.command)
        params = self.params
        if params:
            parts.extend(params[:-1])
            p = params[-1]
            parts.append(":" + p if not p or " " in p or p[0] == ":" else p)
        return " ".join(parts)

    def to_bytes(self) -> bytes:
        """Serialise to wire bytes, CR-LF included.

        Raises:
            ProtocolError: as :meth:`serialize`.
        """
        return (self.serialize() + "\r\n").encode("utf-8", "replace")

    def param(self, index: int, default: str = "") -> str:
        """The parameter at ``index``, or ``default`` when there are fewer."""
        return self.params[index] if index < len(self.params) else default


def decode_line(raw: bytes) -> str:
    """Decode one line: UTF-8, or latin-1 when it is not valid UTF-8 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse_bytes(raw: bytes, *, max_tags: int = MAX_TAGS_BYTES, utf8_only: bool = False) -> Message:
    """Check the byte limits of ``raw`` (one line, no ending), decode it and parse it.

    Args:
        raw: the line.
        max_tags: the longest tag section allowed, ``@`` and trailing space included.
        utf8_only: refuse a line that is not valid UTF-8 instead of reading it as latin-1.

    Raises:
        InputTooLong: the tag section or the rest is over its limit.
        InvalidUtf8: ``utf8_only`` and the line is not UTF-8 (and holds a command).
        EmptyMessage: the line holds no command.
        ProtocolError: the line holds NUL (or CR or LF, which a LineBuffer never leaves in).
    """
    if raw[:1] == b"@":
        sp = raw.find(b" ")
        tags_len = len(raw) if sp < 0 else sp + 1
        if tags_len > max_tags:
            raise InputTooLong(tags_len, max_tags)
        body_len = len(raw) - tags_len
    else:
        body_len = len(raw)
    if body_len > MAX_BODY_BYTES:
        raise InputTooLong(body_len, MAX_BODY_BYTES)
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw.decode("latin-1")
        if utf8_only:
            command = parse(line).command  # EmptyMessage/ProtocolError as for any line
            shown = command if command.isascii() and command.isprintable() else "*"
            raise InvalidUtf8(shown) from None
    return parse(line)


def parse_from_client(raw: bytes) -> Message:
    """Parse a line a client sent to the server: tags of at most :data:`MAX_CLIENT_TAGS_BYTES`,
    and UTF-8 only (the server announces ``UTF8ONLY``).

    Raises:
        InputTooLong, InvalidUtf8, EmptyMessage, ProtocolError: as :func:`parse_bytes`.
    """
    return parse_bytes(raw, max_tags=MAX_CLIENT_TAGS_BYTES, utf8_only=True)


def parse(line: str) -> Message:
    """Parse one line (no ending) into a :class:`Message`.

    Separators are one or more ASCII spaces. The command is upper-cased. The result always
    passes :meth:`Message.check`.

    Raises:
        EmptyMessage: the line holds no command.
        ProtocolError: the line holds NUL, CR or LF, or its command starts with ``@``.
    """
    if _has_forbidden(line):
        raise ProtocolError("NUL, CR and LF are not allowed in a message")
    tags: dict[str, str] = {}
    source: str | None = None
    # Leading spaces are skipped, so what follows them is read as tags, source or command.
    rest = line.lstrip(" ")
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = parse_tags(raw_tags)
        rest = rest.lstrip(" ")
    if rest.startswith(":"):
        src, _, rest = rest[1:].partition(" ")
        source = src or None
        rest = rest.lstrip(" ")
    # A ':' where the command should be starts a trailing parameter: there is no command.
    if not rest or rest[0] == ":":
        raise EmptyMessage("no command")
    trailing: str | None = None
    idx = rest.find(" :")
    if idx >= 0:
        trailing = rest[idx + 2 :]
        rest = rest[:idx]
    # RFC 1459 §2.3.1: only ASCII spaces separate; str.split() would also split on tabs etc.
    words = [w for w in rest.split(" ") if w]
    if not words:
        raise EmptyMessage("no command")
    command = words[0].upper()
    if command[0] == "@":
        # Only the first word may open a tag section; as a command, '@' is never valid.
        raise ProtocolError(f"invalid command {command!r}")
    if trailing is not None:
        words.append(trailing)
    return Message(command, tuple(words[1:]), source, tags)
