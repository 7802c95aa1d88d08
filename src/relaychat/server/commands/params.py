"""Helpers for handlers that take text from a client: fitting relayed text into a line, and
reading numbers strictly.

Echoing a client's parameters back needs no helper here: every numeric (``numerics.reply``) and
every standard reply (``Replies.standard``) makes its middle parameters safe itself.
"""

from __future__ import annotations

from relaychat.protocol.message import MAX_BODY_BYTES

__all__ = ["fit", "number"]


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
