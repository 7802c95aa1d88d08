"""Shared helpers for the in-memory core tests (not itself a test module)."""

from __future__ import annotations

import re
from typing import Any

from tests.harness import CoreHarness, free_config

__all__ = ["SERVER", "harness", "joined", "src"]

#: The default server name, the source of every numeric.
SERVER = "relaychat.local"


def src(nick: str) -> str:
    """The prefix of a client that :meth:`CoreHarness.connect` registered as ``nick``.

    The harness sends ``USER <nick lower-cased>``; the server keeps the first 10 characters
    that are letters, digits, ``_``, ``.`` or ``-``, and prefixes ``~`` (no ident).
    """
    username = re.sub(r"[^A-Za-z0-9_.\-]", "", nick.lower())[:10] or "user"
    return f"{nick}!~{username}@127.0.0.1"


def harness(**config: Any) -> CoreHarness:
    """A fresh in-memory server; keyword arguments go to :func:`free_config`."""
    return CoreHarness(free_config(**config))


def joined(h: CoreHarness, channel: str, *nicks: str) -> None:
    """Connect each nick (if needed) and join it to ``channel``, then drop everyone's output.

    The first nick creates the channel and so is its operator.
    """
    for nick in nicks:
        if nick not in h.users:
            h.connect(nick)
        h.send(nick, f"JOIN {channel}")
    h.clear()
