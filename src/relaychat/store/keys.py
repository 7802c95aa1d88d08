"""Idempotency keys kept with history: what the server relayed for a sender's key.

A client that sends a message with an idempotency key (the client-only tag
``+relaychat.dev/idem``) may send it again after a connection drop; the server must then not
relay it again but answer with what it relayed the first time. The server's index
(``server/idempotency.py``) keeps the recent keys in memory; the store is the source of truth,
so a restart does not forget them.

Rules:
1. :meth:`KeyStore.append_keyed` buffers a key's record *and* the messages it relayed in one
   step, so one group commit writes both or neither: after a crash, a message is in history if
   and only if its key is (else a message anyone could read from history would be relayed
   again, or a key would stand for a message nobody ever received).
2. A record is found by ``(sender, key)`` while it is younger than the window the caller gives;
   :meth:`KeyStore.prune_keys` deletes older ones (the SQLite store does so in its maintenance
   thread).
3. Reads see every record appended, committed or not (as for messages, ``store/base.py``
   rule 3): the bytes that answer a repeat wait for the same group commit as the original.
4. The store keeps the server's token secret (:meth:`KeyStore.key_secret`), so tokens it issued
   stay valid across restarts, and only as long as the keys they identify are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from relaychat.store.base import StoredMessage

__all__ = ["KeyRecord", "KeyStore", "join_sent", "split_sent"]


class KeyRecord(NamedTuple):
    """What one keyed PRIVMSG, NOTICE or TAGMSG became (a tuple: made for every keyed message).

    Attributes:
        sender: who sent it: ``a:<account>`` when logged in, else ``t:<token id>``.
        key: the idempotency key, as sent.
        time: when it was relayed (epoch seconds; the ``time`` tag of every copy).
        source: the sender's ``nick!user@host`` then.
        command: ``PRIVMSG``, ``NOTICE`` or ``TAGMSG``.
        text: the text relayed ("" for TAGMSG), after any cut to fit a line.
        tags: the sender's client-only tags, the key among them.
        sent: ``(target as relayed, msgid)`` for every copy relayed, in order.
    """

    sender: str
    key: str
    time: float
    source: str
    command: str
    text: str
    tags: dict[str, str]
    sent: tuple[tuple[str, str], ...]


def join_sent(sent: Sequence[tuple[str, str]]) -> str:
    """``sent`` as one column: ``target msgid target msgid ...`` (neither holds a space)."""
    return " ".join(f"{target} {msgid}" for target, msgid in sent)


def split_sent(text: str) -> tuple[tuple[str, str], ...]:
    """The inverse of :func:`join_sent`."""
    words = text.split()
    return tuple(zip(words[0::2], words[1::2], strict=True))


class KeyStore(Protocol):
    """What the server's idempotency index needs from a store (see the module rules).

    ``store/sqlite.py`` and ``store/memory.py`` implement it next to :class:`HistoryStore`.
    """

    def key_secret(self) -> bytes:
        """The secret the server signs identity tokens with (made once, kept)."""
        ...

    def append_keyed(self, record: KeyRecord, messages: Sequence[StoredMessage]) -> None:
        """Buffer ``record`` and the ``messages`` it relayed for the next commit, in one step.

        Never blocks, never raises (as :meth:`HistoryStore.append`).
        """

    def recall_key(self, sender: str, key: str, since: float) -> KeyRecord | None:
        """The record of ``(sender, key)`` relayed at ``since`` or later, or ``None``."""
        ...

    def recent_keys(self, since: float, limit: int) -> list[tuple[str, str, float]]:
        """``(sender, key, time)`` of the records relayed at ``since`` or later, newest first,
        at most ``limit`` (the server's index is filled from it after a restart)."""
        ...

    def prune_keys(self, before: float) -> int:
        """Delete the records relayed before ``before``; returns how many were deleted."""
        ...
