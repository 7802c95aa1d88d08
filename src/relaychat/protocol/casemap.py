"""Casefolding of nicknames and channel names.

RFC 1459 §2.2: because of IRC's Scandinavian origin, ``{}|^`` are the lower-case equivalents of
``[]\\~``. relaychat advertises ``CASEMAPPING=rfc1459`` and folds every key with :func:`irc_lower`.
"""

from __future__ import annotations

__all__ = ["ascii_lower", "irc_lower", "irc_lower_kept"]

_RFC1459 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~",
    "abcdefghijklmnopqrstuvwxyz{}|^",
)
_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def irc_lower(name: str) -> str:
    """Fold ``name`` with rfc1459 casemapping (the key for every nick and channel lookup)."""
    return name.translate(_RFC1459)


def irc_lower_kept(name: str) -> str:
    """:func:`irc_lower`, but ``name`` itself when folding changes nothing (most nicks): for
    keys kept as long as a connection lives, so that it holds one string, not two equal ones."""
    folded = name.translate(_RFC1459)
    return name if folded == name else folded


def ascii_lower(name: str) -> str:
    """Fold ``name`` with ascii casemapping (A-Z only)."""
    return name.translate(_ASCII)
