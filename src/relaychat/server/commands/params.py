"""Helpers for handlers that take text from a client: fitting relayed text into a line, reading
numbers strictly, and telling a well-formed nick.

Echoing a client's parameters back needs no helper here: every numeric (``numerics.reply``) and
every standard reply (``Replies.standard``) makes its middle parameters safe itself.
"""

from __future__ import annotations

import re

from relaychat.protocol.message import MAX_BODY_BYTES

__all__ = ["fit", "message_line", "number", "pack", "valid_nick"]

# RFC 2812 §2.3.1: nickname = ( letter / special ) *( letter / digit / special / "-" )
_NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*\Z")


def valid_nick(nick: str, nicklen: int) -> bool:
    """Whether ``nick`` is a well-formed nickname no longer than ``nicklen``."""
    return 0 < len(nick) <= nicklen and _NICK_RE.match(nick) is not None


def fit(text: str, overhead: int) -> str:
    """``text`` cut (on a character boundary) so that ``overhead`` bytes plus its UTF-8 fit in
    one line of :data:`~relaychat.protocol.message.MAX_BODY_BYTES` (510) bytes.

    A relayed line gains the sender's prefix, which the sender's own line did not carry, so a
    line that fitted when it came in may not fit when it goes out (RFC 1459 §2.3).
    """
    room = MAX_BODY_BYTES - overhead
    if len(text) <= room // 4:  # fast path: even all 4-byte characters would fit
        return text
    raw = text.encode("utf-8", "replace")
    if len(raw) <= room:
        return text
    return raw[: max(room, 0)].decode("utf-8", "ignore")


def number(text: str) -> int | None:
    """``text`` as a non-negative integer of at most 9 ASCII digits, else ``None``.

    ``str.isdigit`` alone is not enough: it accepts ``"²"``, which ``int`` refuses.
    """
    if 0 < len(text) <= 9 and text.isascii() and text.isdigit():
        return int(text)
    return None


def pack(items: list[str], room: int, sep: str = ",") -> list[str]:
    """Join ``items`` with ``sep`` into as few strings as possible, each of at most ``room``
    bytes (an item longer than ``room`` stands alone), for numerics that list many names."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for item in items:
        n = len(item.encode())
        if current and size + len(sep) + n > room:
            out.append(sep.join(current))
            current, size = [], 0
        size += n + (len(sep) if current else 0)
        current.append(item)
    if current:
        out.append(sep.join(current))
    return out


def message_line(prefix: str, verb: str, target: str, text: str) -> bytes:
    """``:prefix VERB target :text`` (no text for TAGMSG), cut to fit 512 bytes.

    The text always goes as a trailing parameter (with its colon), as naive clients expect.
    The line is built directly rather than through Message: this is the hottest line in the
    server, and every part is already valid (the parser refused CR, LF and NUL; names are
    validated).
    """
    if verb == "TAGMSG":
        return f":{prefix} TAGMSG {target}\r\n".encode("utf-8", "replace")
    line = f":{prefix} {verb} {target} :{text}\r\n".encode("utf-8", "replace")
    if len(line) > 512:
        overhead = len(prefix.encode()) + len(verb) + len(target.encode()) + 5
        text = fit(text, overhead)
        line = f":{prefix} {verb} {target} :{text}\r\n".encode("utf-8", "replace")
    return line
