"""IRCv3 message-tag value escaping (https://ircv3.net/specs/extensions/message-tags).

Tag values escape ``;`` as ``\\:``, space as ``\\s``, ``\\`` as ``\\\\``, CR as ``\\r`` and
LF as ``\\n``.
On unescaping, a backslash before any other character is dropped, and a trailing lone backslash
is dropped too.
"""

from __future__ import annotations

__all__ = ["escape_value", "parse_tags", "serialize_tags", "unescape_value"]

_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_ESCAPE_TABLE = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})


def escape_value(value: str) -> str:
    """Escape a tag value for the wire."""
    return value.translate(_ESCAPE_TABLE)


def unescape_value(raw: str) -> str:
    """Undo :func:`escape_value`; tolerant of invalid escapes as the spec requires."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        ch = raw[i]
        if ch == "\\":
            i += 1
            if i < n:
                nxt = raw[i]
                out.append(_ESCAPES.get(nxt, nxt))
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_tags(raw: str) -> dict[str, str]:
    """Parse the tag section (without the leading ``@``) into a dict.

    A tag without a value, or with an empty one, maps to ``""``. When a key repeats, the last wins.
    """
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not key:
            continue
        tags[key] = unescape_value(value) if sep else ""
    return tags


def serialize_tags(tags: dict[str, str]) -> str:
    """Serialise tags (without the leading ``@``); empty values are written as bare keys."""
    return ";".join(f"{k}={escape_value(v)}" if v else k for k, v in tags.items())
