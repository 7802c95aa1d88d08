"""Fitting text into IRC lines, pure: shared by the client library and the server's webhooks.

A text becomes lines that each fit in one IRC line *as the server relays it*, that is with the
``:nick!user@host`` prefix the server adds (RFC 1459 §2.3: 512 bytes with CR-LF). Splits fall
between characters, never inside one, and at a space when one is near the end.
"""

from __future__ import annotations

from relaychat.protocol.message import MAX_BODY_BYTES

__all__ = ["DEFAULT_HOST_LEN", "DEFAULT_USER_LEN", "split_text", "text_budget"]

#: RFC 2812 §1.2.1 leaves host names to 63 bytes; a server may show an address or a cloak.
DEFAULT_HOST_LEN = 63
#: "~" plus a 10-character ident, as most servers (and relaychat) allow.
DEFAULT_USER_LEN = 11


def text_budget(
    command: str,
    target: str,
    *,
    nick_len: int,
    user_len: int = DEFAULT_USER_LEN,
    host_len: int = DEFAULT_HOST_LEN,
) -> int:
    """How many bytes of text fit in one line once the server has added its prefix.

    The relayed line is ``:nick!user@host COMMAND target :text`` and must fit in 510 bytes.

    Args:
        command: ``PRIVMSG`` or ``NOTICE``.
        target: the channel or nick.
        nick_len, user_len, host_len: the lengths to allow for the prefix parts (be generous
            when unknown: the nick may change before the line is written).

    Returns:
        The number of bytes of UTF-8 text per line (at least 1).
    """
    overhead = 1 + nick_len + 1 + user_len + 1 + host_len + 1  # ":nick!user@host "
    overhead += len(command) + 1 + len(target.encode("utf-8")) + 2  # "PRIVMSG #c :"
    return max(1, MAX_BODY_BYTES - overhead)


def split_text(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into lines of at most ``max_bytes`` UTF-8 bytes each.

    Line breaks in ``text`` start new lines (IRC cannot carry them); empty lines and NUL bytes
    are dropped. A long line is cut at the last space in its second half when there is one (the
    space is dropped), otherwise at the last whole character that fits.

    Args:
        text: any text.
        max_bytes: the byte budget per line, e.g. from :func:`text_budget`.

    Returns:
        The lines, in order; joined with spaces/newlines they give back the text.

    Raises:
        ValueError: ``max_bytes`` is below 4 (one character may need 4 bytes).
    """
    if max_bytes < 4:
        raise ValueError("max_bytes must be at least 4")
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\0", "")
        while len(line.encode("utf-8")) > max_bytes:
            head = _fit(line, max_bytes)
            space = head.rfind(" ")
            if space > len(head) // 2:
                out.append(head[:space])
                line = line[space + 1 :]
            else:
                out.append(head)
                line = line[len(head) :]
        if line:
            out.append(line)
    return out


def _fit(line: str, max_bytes: int) -> str:
    """The longest prefix of ``line`` whose UTF-8 form fits in ``max_bytes``."""
    encoded = line.encode("utf-8")[: max_bytes + 1]
    cut = max_bytes
    # A byte 0b10xxxxxx continues a character: back up to the start of the character at ``cut``.
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:
        cut -= 1
    return encoded[:cut].decode("utf-8")
