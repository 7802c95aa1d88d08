"""Helpers for echoing a client's parameters back in replies.

A numeric puts most of its parameters in the middle of the line, where an empty word, a word
holding a space or one starting with ``:`` cannot be written (RFC 1459 §2.3.1). A client can send
any of those (``WHOIS :a b``), so every parameter a handler echoes from the client's own input goes
through :func:`safe` first, as Ergo's ``SafeErrorParam`` does.
"""

from __future__ import annotations

from relaychat.protocol.message import MAX_BODY_BYTES
from relaychat.protocol.numerics import safe_param

__all__ = ["fit", "number", "safe"]


def safe(param: str) -> str:
    """``param`` when it can be a middle parameter, else ``*`` (see ``numerics.safe_param``)."""
    return safe_param(param)


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
