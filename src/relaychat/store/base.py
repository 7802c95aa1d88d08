"""The history interface the server core writes to.

Rules:
1. The core calls :meth:`HistoryStore.append` for every message it relays, *before* the edge
   writes the relayed bytes; ``append`` only buffers (no I/O, never blocks).
2. The edge (``server/listeners.py``) calls :meth:`HistoryStore.commit_pending` off the event
   loop and writes the relayed bytes out only after the records they carry are committed (group
   commit), so whatever anyone has received survives a crash of the process.
3. Reads (CHATHISTORY, replay on join) may run on the loop: they are indexed and bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from relaychat.protocol.casemap import irc_lower

__all__ = ["HistoryStore", "StoredMessage", "conversation_key"]


def conversation_key(a: str, b: str) -> str:
    """The history key of the private conversation between nicks ``a`` and ``b`` (any order)."""
    x, y = sorted((irc_lower(a), irc_lower(b)))
    return f"{x} {y}"  # a space cannot occur in a nick, so the key is unambiguous


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One relayed PRIVMSG, NOTICE or TAGMSG, as kept in history.

    Attributes:
        msgid: its message id (the same one every recipient saw).
        time: when the server relayed it (epoch seconds).
        key: the folded channel name, or :func:`conversation_key` for a private message.
        source: the sender's ``nick!user@host``.
        account: the sender's account, if logged in.
        command: ``PRIVMSG``, ``NOTICE`` or ``TAGMSG``.
        target: the target as sent (channel name or recipient nick).
        text: the message text ("" for TAGMSG).
        tags: the sender's client-only tags (``+...``).
    """

    msgid: str
    time: float
    key: str
    source: str
    account: str | None
    command: str
    target: str
    text: str
    tags: dict[str, str] = field(default_factory=dict, hash=False)


class HistoryStore(Protocol):
    """What the core needs from a history store (see the module rules)."""

    def append(self, message: StoredMessage) -> None:
        """Buffer ``message`` for the next commit. Never blocks, never raises."""

    def has_pending(self) -> bool:
        """Whether records wait for :meth:`commit_pending`."""

    def commit_pending(self) -> None:
        """Durably write every buffered record. Blocking: the edge runs it in a worker thread."""
