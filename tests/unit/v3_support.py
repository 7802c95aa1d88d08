"""Helpers for the in-memory tests of draft/multiline, draft/message-redaction,
draft/read-marker and +typing (not itself a test module)."""

from __future__ import annotations

from typing import Any

from relaychat.config import History
from relaychat.protocol.message import Message, parse
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness, free_config

__all__ = ["BASE", "ML", "NOW", "batches", "client", "make"]

#: The harness clock: 2023-11-14, later than every timestamp the tests send.
NOW = 1_700_000_000.0

#: The caps the spec examples (and irctest) give every client.
BASE = ("message-tags", "batch", "echo-message", "server-time", "labeled-response")
ML = "draft/multiline"


def make(*, history: bool = True, limits: dict[str, Any] | None = None, **hist: Any) -> CoreHarness:
    """A harness (``limits`` and ``hist`` override the config's ``[limits]`` and ``[history]``;
    no replay on JOIN unless asked). With ``history`` its core keeps history in memory and
    offers the history caps as the server does (``listeners.py``)."""
    config = free_config(limits=limits or {}, history=History(**{"replay_lines": 0, **hist}))
    h = CoreHarness(config, now=NOW)
    if history:
        h.core.history = MemoryHistory(max_read_markers=config.history.max_read_markers)
        h.core.extra_caps.update(
            {"draft/chathistory": "", "draft/message-redaction": "", "draft/read-marker": ""}
        )
    return h


def client(h: CoreHarness, nick: str, *caps: str, name: str | None = None) -> None:
    """Register ``nick`` (test label ``name``, default the nick) with ``caps`` ACKed."""
    label = name or nick
    h.open(label)
    if caps:
        h.send(label, "CAP LS 302")
        h.send(label, "CAP REQ :" + " ".join(caps))
    h.send(label, f"NICK {nick}")
    h.send(label, f"USER {nick.lower()} 0 * :{nick}")
    if caps:
        acked = h.lines(label)
        assert any(" ACK " in line for line in acked), acked
        h.send(label, "CAP END")
    assert h.users[label].registered, h.lines(label)
    h.lines(label)


def batches(lines: list[str]) -> list[Message]:
    """Parse ``lines``."""
    return [parse(line) for line in lines]
