"""Wildcard masks (``*`` any run, ``?`` one character) for bans and WHO, casefolded.

RFC 2812 §2.5. A ban mask is normalised to ``nick!user@host`` form before it is stored.

Matching takes time linear in the mask times the text, whatever the mask: a mask is split on
``*`` into pieces of fixed length, and each piece is found leftmost after the previous one (for a
glob, the leftmost place is always a right choice). A single regular expression with one ``.*``
per star would backtrack exponentially on masks like ``*a*a*a*a*a*a*a*a*b``, and any client may
send one (WHO), so that is not an option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from relaychat.protocol.casemap import irc_lower

__all__ = ["FoldedMatcher", "folded_matcher", "longest_literal", "match_mask", "normalize_ban_mask"]


def _piece(text: str) -> re.Pattern[str]:
    """A pattern for a piece without ``*``: literal characters and ``?`` (any one)."""
    return re.compile("".join("." if ch == "?" else re.escape(ch) for ch in text), re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Mask:
    """A compiled mask: ``head`` at the start, ``middle`` in order, ``tail`` at the end."""

    head: re.Pattern[str]
    head_len: int
    middle: tuple[re.Pattern[str], ...]
    tail: re.Pattern[str] | None  # None: the mask has no star and ``head`` is all of it
    tail_len: int

    def match(self, text: str) -> bool:
        if self.tail is None:
            return len(text) == self.head_len and self.head.match(text) is not None
        end = len(text) - self.tail_len
        if end < self.head_len:
            return False
        if self.head.match(text) is None or self.tail.match(text, end) is None:
            return False
        pos = self.head_len
        for piece in self.middle:
            found = piece.search(text, pos, end)
            if found is None:
                return False
            pos = found.end()
        return True


@dataclass(frozen=True, slots=True)
class _PlainMask:
    """A compiled mask without ``?``: the same walk as :class:`_Mask`, with string methods
    (several times faster than a regular expression per piece)."""

    head: str
    middle: tuple[str, ...]
    tail: str | None  # None: the mask has no star

    def match(self, text: str) -> bool:
        head, tail = self.head, self.tail
        if tail is None:
            return text == head
        end = len(text) - len(tail)
        if end < len(head) or not text.startswith(head) or not text.endswith(tail):
            return False
        pos = len(head)
        for piece in self.middle:
            found = text.find(piece, pos, end)
            if found < 0:
                return False
            pos = found + len(piece)
        return True


@lru_cache(maxsize=4096)
def _compile(mask: str) -> _Mask | _PlainMask:
    parts = irc_lower(mask).split("*")
    if "?" not in mask:
        if len(parts) == 1:
            return _PlainMask(parts[0], (), None)
        return _PlainMask(parts[0], tuple(p for p in parts[1:-1] if p), parts[-1])
    if len(parts) == 1:
        return _Mask(_piece(parts[0]), len(parts[0]), (), None, 0)
    head, *middle, tail = parts
    return _Mask(
        _piece(head),
        len(head),
        tuple(_piece(p) for p in middle if p),
        _piece(tail),
        len(tail),
    )


def match_mask(mask: str, text: str) -> bool:
    """Whether ``text`` matches the wildcard ``mask``, with rfc1459 casefolding."""
    return _compile(mask).match(irc_lower(text))


class FoldedMatcher(Protocol):
    """A compiled mask: ``match(text)`` for ``text`` folded already (``irc_lower``)."""

    def match(self, text: str) -> bool: ...


def folded_matcher(mask: str) -> FoldedMatcher:
    """``mask`` compiled once, for matching many texts that are folded already (WHO)."""
    return _compile(mask)


def longest_literal(mask: str) -> str:
    """The longest run of ``mask`` without ``*`` or ``?``, folded: any text the mask matches
    holds it, so a substring test rules most texts out before any matching (WHO)."""
    runs = irc_lower(mask).replace("?", "*").split("*")
    return max(runs, key=len)


def normalize_ban_mask(mask: str) -> str:
    """Complete a partial mask to ``nick!user@host``; an empty part becomes ``*``.

    ``nick`` -> ``nick!*@*``; ``host.name`` or ``2001:db8::1`` (a dot or a colon, which a nick
    cannot hold) -> ``*!*@host``; ``user@host`` -> ``*!user@host``; ``nick!user`` ->
    ``nick!user@*``.
    """
    if "!" not in mask and "@" not in mask:
        if "." in mask or ":" in mask:
            return f"*!*@{mask}"
        return f"{mask or '*'}!*@*"
    nick, bang, rest = mask.partition("!")
    if not bang:
        nick, rest = "*", mask
    user, _, host = rest.partition("@")
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"
