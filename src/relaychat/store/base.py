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
   so a reader can tell "nothing happened" from "it happened and was not kept". A conversation
   whose messages are all gone is forgotten entirely.
6. A ``draft/multiline`` message is one record: its lines joined by ``\n`` in ``text`` and one
   concat flag per line in :attr:`StoredMessage.multiline`.
7. A redaction (``draft/message-redaction``) is a record of its own, command ``REDACT``, naming
   the message it redacts in :attr:`StoredMessage.redacts`; appending it marks that message
   redacted (its text and tags are dropped). :meth:`HistoryStore.query` never returns a
   redacted message, and returns the ``REDACT`` records only when asked (``redactions=True``),
   for the span of positions the page covers (:func:`redaction_span`), not counted in ``limit``.
   :meth:`HistoryStore.find` still knows a redacted message's position, so a client can resume
   after it.
8. Read markers (``draft/read-marker``) are a time per (owner, target), written with the same
   group commit as the messages and never moving backwards; at most ``max_read_markers`` per
   owner are kept, the oldest forgotten first.
9. Private history belongs to whoever held the nick: a :class:`Reader` sees what was relayed
   after it took its current nick (a position, :meth:`HistoryStore.tip` at that moment), plus
   what its account sent or received. :meth:`HistoryStore.targets` answers CHATHISTORY TARGETS
   with one bounded, indexed read, whatever the number of conversations a nick ever had.

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
    "involves",
    "is_private",
    "merge",
    "redaction_span",
    "select",
    "select_redactions",
    "select_targets",
    "stored_tags",
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


def stored_tags(client_tags: dict[str, str] | None, *, bot: bool = False) -> dict[str, str]:
    """The tags kept with a message: the sender's client-only tags, with ``bot`` first when
    the sender was in bot mode (so a replay tags it as the live message was)."""
    if bot:
        return {"bot": "", **(client_tags or {})}
    return client_tags or {}  # (shared with the relayed event: neither is ever changed)


def is_private(key: str) -> bool:
    """Whether ``key`` is a private conversation's (a channel's key has no space)."""
    return " " in key


def involves(key: str, nick: str) -> bool:
    """Whether ``key`` is a private conversation of the folded ``nick``."""
    return is_private(key) and nick in key.split(" ")


# Not ``frozen``: one is built for every relayed message, and a frozen dataclass's __init__
# (object.__setattr__ per field) costs three times as much (1.6 vs 0.5 µs). Treat it as
# immutable all the same: it is shared by the store's buffers, readers and threads.
@dataclass(slots=True)
class StoredMessage:
    """One relayed PRIVMSG, NOTICE, TAGMSG or REDACT, as kept in history.

    Attributes:
        msgid: its message id (the same one every recipient saw).
        time: when the server relayed it (epoch seconds).
        key: the folded channel name, or :func:`conversation_key` for a private message.
        source: the sender's ``nick!user@host``.
        account: the sender's account, if logged in.
        command: ``PRIVMSG``, ``NOTICE``, ``TAGMSG`` or ``REDACT``.
        target: the target as sent (channel name or recipient nick).
        text: the message text ("" for TAGMSG; the reason for REDACT).
        tags: the sender's client-only tags (``+...``), and ``bot`` (empty value) when the
            sender was in bot mode (https://ircv3.net/specs/extensions/bot-mode): replayed
            as they were relayed (see :func:`stored_tags`).
        to_account: the recipient's account, for a private message to a logged-in user.
        multiline: for a ``draft/multiline`` message, one flag per line of ``text.split("\n")``:
            whether that line continues the previous one (``draft/multiline-concat``);
            ``None`` for a one-line message.
        redacts: for a ``REDACT`` record, the msgid of the message it redacts.
        redacted: the message was redacted (its text and tags are gone).
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
    multiline: tuple[bool, ...] | None = None
    redacts: str | None = None
    redacted: bool = False


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
    owner's private messages. So a reader sees the private messages relayed after the position
    ``(since_ms, since_seq)`` (when it took its current nick: what it received live) and, when
    logged in, those it sent or received under its ``account``. Channel history is not filtered
    (members read it all).

    Attributes:
        since_ms: when the reader took its nick, in milliseconds (the store's time then).
        account: the reader's account, or ``None``.
        since_seq: the store's newest ``seq`` then (``0``: everything from ``since_ms`` on).
    """

    since_ms: int
    account: str | None = None
    since_seq: int = 0

    @property
    def since(self) -> Position:
        """The position after which private messages are the reader's."""
        return (self.since_ms, self.since_seq)


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
    if reader is None or (entry.time_ms, entry.seq) > (reader.since_ms, reader.since_seq):
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
        m = entry.message
        if m.command in _READABLE and not m.redacted and visible(entry, reader):
            out.append(entry)
            if len(out) >= limit:
                break
    if latest:
        out.reverse()
    return out


#: What :func:`select` returns: REDACT and TAGMSG records are kept for positions only.
_READABLE = frozenset({"PRIVMSG", "NOTICE"})


def redaction_span(
    after: Position | None,
    before: Position | None,
    page: Sequence[Entry],
    *,
    limit: int,
    latest: bool,
) -> tuple[Position | None, Position | None]:
    """The exclusive bounds of the positions a page of :meth:`HistoryStore.query` covers.

    A full page stops at its last message (its first with ``latest``); otherwise it covers the
    whole range asked for. The ``REDACT`` records in that span go with the page (rule 7), so
    paging on never shows one twice nor skips one.
    """
    if page and len(page) >= limit:
        if latest:
            first = page[0]
            after = (first.time_ms, first.seq - 1)
        else:
            last = page[-1]
            before = (last.time_ms, last.seq + 1)
    return after, before


def select_redactions(
    entries: Sequence[Entry],
    *,
    after: Position | None,
    before: Position | None,
    limit: int,
    reader: Reader | None,
) -> list[Entry]:
    """The ``REDACT`` records of ``entries`` (one conversation, sorted) strictly between
    ``after`` and ``before``, visible to ``reader``: at most ``limit``, oldest first."""
    lo = 0 if after is None else bisect.bisect_right(entries, after, key=_pos)
    hi = len(entries) if before is None else bisect.bisect_left(entries, before, key=_pos)
    out: list[Entry] = []
    if limit <= 0:
        return out
    for i in range(lo, hi):
        entry = entries[i]
        if entry.message.redacts is not None and visible(entry, reader):
            out.append(entry)
            if len(out) >= limit:
                break
    return out


def merge(page: list[Entry], extra: list[Entry]) -> list[Entry]:
    """``page`` and ``extra`` (each sorted, disjoint) as one list in position order."""
    if not extra:
        return page
    return sorted([*page, *extra], key=_pos)


def _pos(entry: Entry) -> Position:
    return (entry.time_ms, entry.seq)


def select_targets(
    latest: Sequence[Entry],
    *,
    after_ms: int,
    before_ms: int,
    limit: int,
    newest: bool,
    reader: Reader,
) -> list[Entry]:
    """The meaning of :meth:`HistoryStore.targets` on the newest entry of each conversation.

    Returns:
        The entries whose time is strictly between ``after_ms`` and ``before_ms`` (private ones
        only when visible to ``reader``): the oldest ``limit`` of them, or with ``newest`` the
        newest; oldest first.
    """
    found = sorted(
        (
            e
            for e in latest
            if after_ms < e.time_ms < before_ms
            and (not is_private(e.message.key) or visible(e, reader))
        ),
        key=_pos,
    )
    if limit <= 0:
        return []
    return found[-limit:] if newest else found[:limit]


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
        redactions: bool = False,
    ) -> list[Entry]:
        """Messages of conversation ``key`` strictly between two positions (see :func:`select`).

        Args:
            after: exclusive lower bound, or ``None`` for the oldest kept.
            before: exclusive upper bound, or ``None`` for the newest.
            limit: at most this many.
            latest: take the newest ``limit`` in the range instead of the oldest.
            reader: filter a private conversation for this reader (see :class:`Reader`).
            redactions: also return the ``REDACT`` records in the span the page covers
                (:func:`redaction_span`; at most ``limit`` more, not counted in ``limit``).

        Returns:
            PRIVMSG and NOTICE entries that were not redacted, oldest first (TAGMSG is kept for
            positions only), with the ``REDACT`` records in place when asked for.
        """
        ...

    def message(self, key: str, msgid: str) -> Entry | None:
        """The kept message ``msgid`` of conversation ``key`` (redacted or not), or ``None``."""

    def set_read_marker(self, owner: str, target: str, time_ms: int) -> None:
        """Buffer ``owner``'s read marker for ``target`` for the next commit (rule 8).

        Never blocks; a time not after the one kept is ignored. ``owner`` and ``target`` are
        folded names (the account; the channel or the other nick).
        """

    def read_marker(self, owner: str, target: str) -> int | None:
        """``owner``'s read marker for ``target`` (ms), buffered or committed, or ``None``."""

    def conversation(self, key: str) -> Conversation | None:
        """What is known of conversation ``key``, or ``None`` when it never had a message."""

    def conversations_of(self, nick: str) -> list[Conversation]:
        """Every private conversation of the folded ``nick``."""
        ...

    def tip(self) -> Position:
        """The position of the newest message appended (``(0, 0)`` or older when none): a
        :class:`Reader` that takes its nick now sees only what comes after it."""
        ...

    def targets(
        self,
        nick: str,
        channels: Sequence[str],
        *,
        after_ms: int,
        before_ms: int,
        limit: int,
        newest: bool,
        reader: Reader,
    ) -> list[Entry]:
        """CHATHISTORY TARGETS: the newest message of each conversation active in a window.

        Args:
            nick: the reader's folded nick: its private conversations are candidates.
            channels: folded channel names that are candidates too (the reader's channels).
            after_ms: exclusive lower bound of the newest message's time.
            before_ms: exclusive upper bound.
            limit: at most this many conversations.
            newest: the newest ``limit`` conversations instead of the oldest.
            reader: private conversations count only when their newest message is visible to
                it (see :class:`Reader`).

        Returns:
            One entry per conversation, its newest message, oldest first (see
            :func:`select_targets`). Bounded work: an index range per nick and channel.
        """
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
