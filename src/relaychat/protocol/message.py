"""IRC messages: parse and serialise (RFC 1459 §2.3.1, RFC 2812 §2.3, IRCv3 message-tags).

A line is ``['@' tags SPACE] [':' source SPACE] command params* [SPACE ':' trailing]``.

Limits enforced here (the caller turns :class:`~relaychat.errors.InputTooLong` into 417):
- the part after the tags, line ending included, is at most 512 bytes, so 510 without it;
- the tag section, its ``@`` and trailing space included, is at most 8191 bytes.

Bytes are decoded as UTF-8; a line that is not valid UTF-8 is decoded as latin-1 instead, so any
input parses and nothing crashes on encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relaychat.errors import EmptyMessage, InputTooLong, ProtocolError
from relaychat.protocol.tags import parse_tags, serialize_tags

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_LINE_BYTES",
    "MAX_TAGS_BYTES",
    "Message",
    "decode_line",
    "parse",
    "parse_bytes",
]

#: RFC 1459 §2.3: 512 bytes including CR-LF, so 510 for the content.
MAX_BODY_BYTES = 510
#: IRCv3 message-tags: 8191 bytes for the tag section including '@' and the trailing space.
MAX_TAGS_BYTES = 8191
#: The longest line a LineBuffer must accept before it can tell which part is too long.
MAX_LINE_BYTES = MAX_TAGS_BYTES + MAX_BODY_BYTES


@dataclass(frozen=True, slots=True)
class Message:
    """One IRC message.

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

    def serialize(self) -> str:
        """Return the line without its ending.

        Raises:
            ProtocolError: a middle parameter is empty, holds a space or starts with ``:``, or
                any part holds CR, LF or NUL.
        """
        parts: list[str] = []
        if self.tags:
            parts.append("@" + serialize_tags(self.tags))
        if self.source:
            parts.append(":" + self.source)
        parts.append(self.command)
        params = self.params
        if params:
            last = len(params) - 1
            for i, p in enumerate(params):
                if i == last:
                    if not p or " " in p or p[0] == ":":
                        parts.append(":" + p)
                    else:
                        parts.append(p)
                else:
                    if not p or " " in p or p[0] == ":":
                        raise ProtocolError(f"invalid middle parameter {p!r}")
                    parts.append(p)
        line = " ".join(parts)
        if "\r" in line or "\n" in line or "\0" in line:
            raise ProtocolError("CR, LF and NUL are not allowed in a message")
        return line

    def to_bytes(self) -> bytes:
        """Serialise to wire bytes, CR-LF included."""
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


def parse_bytes(raw: bytes) -> Message:
    """Check the byte limits of ``raw`` (one line, no ending), decode it and parse it.

    Raises:
        InputTooLong: the tag section or the rest is over its limit.
        EmptyMessage: the line holds no command.
    """
    if raw[:1] == b"@":
        sp = raw.find(b" ")
        tags_len = len(raw) if sp < 0 else sp + 1
        if tags_len > MAX_TAGS_BYTES:
            raise InputTooLong(tags_len, MAX_TAGS_BYTES)
        body_len = len(raw) - tags_len
    else:
        body_len = len(raw)
    if body_len > MAX_BODY_BYTES:
        raise InputTooLong(body_len, MAX_BODY_BYTES)
    return parse(decode_line(raw))


def parse(line: str) -> Message:
    """Parse one line (no ending) into a :class:`Message`.

    Separators may be one or more spaces. The command is upper-cased.

    Raises:
        EmptyMessage: the line holds no command.
    """
    tags: dict[str, str] = {}
    source: str | None = None
    rest = line
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = parse_tags(raw_tags)
        rest = rest.lstrip(" ")
    if rest.startswith(":"):
        src, _, rest = rest[1:].partition(" ")
        source = src or None
        rest = rest.lstrip(" ")
    if not rest:
        raise EmptyMessage("no command")
    trailing: str | None = None
    idx = rest.find(" :")
    if idx >= 0:
        trailing = rest[idx + 2 :]
        rest = rest[:idx]
    words = rest.split()
    if not words:
        raise EmptyMessage("no command")
    command = words[0].upper()
    if trailing is not None:
        words.append(trailing)
    return Message(command, tuple(words[1:]), source, tags)
