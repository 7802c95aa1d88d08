"""Wildcard masks (``*`` any run, ``?`` one character) for bans and WHO, casefolded.

RFC 2812 §2.5. A ban mask is normalised to ``nick!user@host`` form before it is stored.
"""

from __future__ import annotations

import re
from functools import lru_cache

from relaychat.protocol.casemap import irc_lower

__all__ = ["match_mask", "normalize_ban_mask"]


@lru_cache(maxsize=4096)
def _compile(mask: str) -> re.Pattern[str]:
    parts = []
    for ch in irc_lower(mask):
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def match_mask(mask: str, text: str) -> bool:
    """Whether ``text`` matches the wildcard ``mask``, with rfc1459 casefolding."""
    return _compile(mask).match(irc_lower(text)) is not None


def normalize_ban_mask(mask: str) -> str:
    """Complete a partial mask: ``nick`` -> ``nick!*@*``, ``user@host`` -> ``*!user@host``."""
    if "!" not in mask and "@" not in mask:
        return f"{mask}!*@*" if "." not in mask else f"*!*@{mask}"
    if "!" not in mask:
        return f"*!{mask}"
    nick, _, rest = mask.partition("!")
    if "@" not in rest:
        rest += "@*"
    user, _, host = rest.partition("@")
    return f"{nick or '*'}!{user or '*'}@{host or '*'}"
