"""The history interface the server core writes to and CHATHISTORY reads from.

Rules:
1. The core calls :meth:`HistoryStore.append` for every message it relays, *before* the edge
   writes the relayed bytes; ``append`` only buffers (no I/O, never blocks).
2. The edge (``server/listeners.py``) calls :meth:`HistoryStore.commit_pending` off the event
   loop and writes the relayed bytes out only after the records they carry are committed (group
   commit), so whatever anyone has received survives a crash of the process.
3. Reads (CHATHISTORY, replay on join) may run on the loop: they are indexed and bounded. A read
   sees every appended message, committed or not: the bytes that carry its answer wait for the
   same group commit as the messages themselves, so an answer never shows what a crash could
   lose, and never misses what was relayed a moment before.
4. Every message gets its :data:`Position` when it is appended: ``(time_ms, seq)``, ordered as the
   core relayed them. Times never go backwards in a store (a clock stepped back is clamped to the
   last time stored), so time order and relay order agree, and a timestamp bound is a position.
5. Retention (by age and by count per conversation) deletes the oldest messages first and
   remembers, per conversation, the newest position it deleted (:attr:`Conversation.trimmed`),
   so a reader can tell "nothing happened" from "it happened and was not kept".

:func:`select` is the reference meaning of :meth:`HistoryStore.query` on a sorted list of entries;
the memory store answers with it, the SQLite store uses it for records not yet committed.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from relaychat.errors import RelaychatError
from relaychat.protocol.casemap import irc_lower

__all__ = [
    "MAX_SEQ",
    "Conversation",
    "Entry",
    "HistoryStore",
    "Position",
    "Reader",
    "StoreError",
    "StoredMessage",
    "conversation_key",
    "is_private",
    "select",
    "visible",
]

#: ``(time_ms, seq)``: where a message sits in its store's order (rule 4).
Position = tuple[int, int]

#: Larger than any ``seq``: ``(t, MAX_SEQ)`` as an exclusive lower bound means "after time t".
MAX_SEQ = (1 << 63) - 1


class StoreError(RelaychatError):
    """The history store cannot be opened or used (path, permissions, a newer schema).

    Attributes:
        path: the file or directory concerned.
        reason: what went wrong, for the operator.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"history store {path}: {reason}")
        self.path = path
        self.reason = reason


def conversation_key(a: str, b: str) -> str:
    """The history key of the private conversation between nicks ``a`` and ``b`` (any order)."""
    x, y = sorted((irc_lower(a), irc_lower(b)))
    return f"{x} {y}"  # a space cannot occur in a nick, so the key is unambiguous


def is_private(key: str) -> bool:
    """Whether ``key`` is a private conversation's (a channel's key has no space)."""
    return " " in key


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
        to_account: the recipient's account, for a private message to a logged-in user.
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
    to_account: str | None = None


class Entry(NamedTuple):
    """A stored message and its position.

    Attributes:
        time_ms: the stored time in milliseconds (what ``time`` tags show; see rule 4).
        seq: the order of relaying within the store, unique.
        message: the message.
    """

    time_ms: int
    seq: int
    message: StoredMessage

    @property
    def position(self) -> Position:
        """``(time_ms, seq)``."""
        return (self.time_ms, self.seq)


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads a *private* conversation, which decides what it may see.

    A nick is not an identity: whoever holds it after its owner left would otherwise read the
    owner's private messages. So a reader sees the private messages relayed since ``since_ms``
    (its current connection, which received them live) and, when logged in, those it sent or
    received under its ``account``. Channel history is not filtered (members read it all).

    Attributes:
        since_ms: the start of the reader's connection, in milliseconds.
        account: the reader's account, or ``None``.
    """

    since_ms: int
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """What a store knows of one conversation (channel or private).

    Attributes:
        key: the conversation's key.
        latest: its newest kept message, or ``None`` when retention deleted them all.
        trimmed: the newest position retention deleted, or ``None`` when nothing was.
    """

    key: str
    latest: Entry | None
    trimmed: Position | None


def visible(entry: Entry, reader: Reader | None) -> bool:
    """Whether ``reader`` may see ``entry`` (see :class:`Reader`; ``None`` sees everything)."""
    if reader is None or entry.time_ms >= reader.since_ms:
        return True
    acct = reader.account
    msg = entry.message
    return acct is not None and (msg.account == acct or msg.to_account == acct)


def select(
    entries: Sequence[Entry],
    *,
    after: Position | None,
    before: Position | None,
    limit: int,
    latest: bool,
    reader: Reader | None,
) -> list[Entry]:
    """The meaning of :meth:`HistoryStore.query` on ``entries`` (one conversation, sorted).

    Returns:
        At most ``limit`` PRIVMSG/NOTICE entries strictly between ``after`` and ``before``,
        visible to ``reader``: the oldest ones, or the newest with ``latest``; oldest first.
    """
    lo = 0 if after is None else bisect.bisect_right(entries, after, key=_pos)
    hi = len(entries) if before is None else bisect.bisect_left(entries, before, key=_pos)
    out: list[Entry] = []
    if limit <= 0 or lo >= hi:
        return out
    span = range(hi - 1, lo - 1, -1) if latest else range(lo, hi)
    for i in span:
        entry = entries[i]
        if entry.message.command != "TAGMSG" and visible(entry, reader):
            out.append(entry)
            if len(out) >= limit:
                break
    if latest:
        out.reverse()
    return out


def _pos(entry: Entry) -> Position:
    return (entry.time_ms, entry.seq)


class HistoryStore(Protocol):
    """What the core needs from a history store (see the module rules).

    Two implementations: ``store/sqlite.py`` (the server's) and ``store/memory.py`` (tests). A
    third database needs these methods and nothing else.
    """

    def append(self, message: StoredMessage) -> None:
        """Buffer ``message`` for the next commit. Never blocks, never raises."""

    def has_pending(self) -> bool:
        """Whether records wait for :meth:`commit_pending`."""

    def commit_pending(self) -> None:
        """Durably write every buffered record. Blocking: the edge runs it in a worker thread."""

    def find(self, key: str, msgid: str) -> Position | None:
        """The position of the message ``msgid`` in conversation ``key``.

        Returns:
            Its position, or ``None`` when no kept message of ``key`` has that id (never
            relayed there, or deleted by retention).
        """

    def query(
        self,
        key: str,
        *,
        after: Position | None = None,
        before: Position | None = None,
        limit: int,
        latest: bool = False,
        reader: Reader | None = None,
    ) -> list[Entry]:
        """Messages of conversation ``key`` strictly between two positions (see :func:`select`).

        Args:
            after: exclusive lower bound, or ``None`` for the oldest kept.
            before: exclusive upper bound, or ``None`` for the newest.
            limit: at most this many.
            latest: take the newest ``limit`` in the range instead of the oldest.
            reader: filter a private conversation for this reader (see :class:`Reader`).

        Returns:
            PRIVMSG and NOTICE entries, oldest first (TAGMSG is kept for positions only).
        """
        ...

    def conversation(self, key: str) -> Conversation | None:
        """What is known of conversation ``key``, or ``None`` when it never had a message."""

    def conversations_of(self, nick: str) -> list[Conversation]:
        """Every private conversation of the folded ``nick`` (for CHATHISTORY TARGETS)."""
        ...

    def prune(self, now: float | None = None) -> int:
        """Apply retention (age and count per conversation) once, as of ``now`` (default: the
        current time).

        Blocking; the SQLite store also runs it periodically in its own thread.

        Returns:
            How many messages were deleted.
        """
        ...

    def close(self) -> None:
        """Commit what is pending and release the store; it is unusable afterwards."""
