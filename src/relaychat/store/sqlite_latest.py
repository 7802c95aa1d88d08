"""Each conversation's newest message (``conversations.latest_*``), kept lazily for
:class:`~relaychat.store.sqlite.SqliteHistory`.

CHATHISTORY TARGETS reads ``conversations (a|b, latest_ms)`` (``sqlite_targets.py``). Updating
that row and its two indexes in every group commit made them the most written pages of the
file: with many small conversations (W4 in docs/benchmarks.md) nearly every message of a commit
dirtied a ``conversations`` page and two index pages, each written whole to the WAL — a third of
the cost of storing a message. So:

1. A commit inserts the ``conversations`` row of a conversation this process has not written yet
   (``INSERT OR IGNORE``, latest left as it is), and remembers each conversation's newest
   committed message in memory (:attr:`Latest._newest`).
2. At most every :data:`LATEST_EVERY` seconds, or when :data:`LATEST_MAX` conversations wait,
   the commit also upserts every remembered newest message, in the same transaction, and forgets
   them. Closing the store writes them too.
3. Readers merge the remembered entries in, as they merge the records not committed yet (they
   are newer than the table's ``latest`` of their conversation): :meth:`Latest._unlisted`.
4. After a crash the remembered entries are gone, but not the messages: opening the file sets
   ``latest`` from the messages newer than the newest ``latest_seq`` in the table (every message
   up to it was covered by a write of rule 2), an index range on ``messages``' primary key.

Durability is unchanged: the messages themselves are in the commit that precedes their delivery;
``latest`` is an index of them that can always be rebuilt.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable

from relaychat.store.base import Entry
from relaychat.store.sqlite_schema import conversation_row

__all__ = ["LATEST", "LATEST_EVERY", "LATEST_MAX", "Latest"]

#: Seconds between the writes of the remembered newest messages (rule 2).
LATEST_EVERY = 1.0
#: Conversations remembered at most before they are written (rule 2), and conversation keys
#: known to have a row (rule 1) before that set is forgotten and rebuilt.
LATEST_MAX = 4096
_KNOWN_MAX = 65_536

LATEST = (
    "INSERT INTO conversations (key, a, b, latest_ms, latest_seq) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET latest_ms = excluded.latest_ms,"
    " latest_seq = excluded.latest_seq"
)
_NEW = "INSERT OR IGNORE INTO conversations (key, a, b) VALUES (?, ?, ?)"
_RECOVER = (
    "SELECT m.key, m.time_ms, m.seq FROM messages m JOIN (SELECT key, max(seq) AS s FROM messages"
    " WHERE seq > ? AND command IN ('PRIVMSG', 'NOTICE') GROUP BY key) t ON m.seq = t.s"
)


class Latest:
    """The lazy ``conversations.latest_*`` (see the module rules). A mixin: the host calls
    :meth:`_latest_init` and holds ``_lock`` (its buffers' lock) and ``_write_lock``."""

    _lock: threading.Lock
    _write_lock: threading.Lock
    _writer: sqlite3.Connection
    _closed: bool

    def _latest_init(self) -> None:
        #: Committed newest message per conversation not written to its row yet (rule 1).
        self._newest: dict[str, Entry] = {}
        self._known: set[str] = set()  # conversation keys with a row (rule 1)
        self._latest_due = time.monotonic() + LATEST_EVERY
        #: The commit's newest messages, its new conversations, whether all were written.
        self._latest_batch: tuple[dict[str, Entry], list[str], bool] = ({}, [], False)
        self._recover_latest()

    def _latest_write(self, db: sqlite3.Connection, newest: dict[str, Entry]) -> None:
        """Inside a commit's transaction: insert the new conversations of ``newest`` (this
        batch's newest message per conversation), and upsert every remembered newest message
        when due (rule 2). :meth:`_latest_done` follows once the commit returned."""
        due = time.monotonic() >= self._latest_due or len(self._newest) >= LATEST_MAX
        known = self._known
        new = [k for k in newest if k not in known]
        if due:
            self._latest_write_all(db, {**self._newest, **newest}.items())
        elif new:
            db.executemany(_NEW, [conversation_row(k) for k in new])
        self._latest_batch = (newest, new, due)

    def _latest_done(self) -> None:
        """After the commit of :meth:`_latest_write` returned (the caller holds ``_lock``)."""
        newest, new, written = self._latest_batch
        self._latest_batch = ({}, [], False)
        if new:
            known = self._known
            if len(known) + len(new) > _KNOWN_MAX:
                known.clear()
            known.update(new)
        if written:
            self._newest = {}
            self._latest_due = time.monotonic() + LATEST_EVERY
        else:
            self._newest.update(newest)

    def _latest_pruned(self, gone: dict[str, list[int]]) -> None:
        """Retention deleted the messages of each key of ``gone`` up to ``[_, ms, seq]``:
        forget a remembered newest message among them (the caller holds ``_write_lock``)."""
        with self._lock:
            for key, (_, ms, seq) in gone.items():
                entry = self._newest.get(key)
                if entry is not None and (entry.time_ms, entry.seq) <= (ms, seq):
                    del self._newest[key]
            self._known.difference_update(gone)

    def _unlisted(self, buffered: list[Entry]) -> list[Entry]:
        """The entries newer than their conversation's ``latest`` in the table: the remembered
        ones, then ``buffered`` (records not committed yet, newer still)."""
        with self._lock:
            remembered = list(self._newest.values())
        return remembered + buffered if remembered else buffered

    def _flush_latest(self) -> None:
        """Write the remembered newest messages now (closing), in a transaction of their own."""
        with self._write_lock:
            if self._closed or not self._newest:
                return
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                self._latest_write_all(db, self._newest.items())
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            with self._lock:
                self._newest = {}

    @staticmethod
    def _latest_write_all(db: sqlite3.Connection, items: Iterable[tuple[str, Entry]]) -> None:
        db.executemany(LATEST, [(*conversation_row(k), e.time_ms, e.seq) for k, e in items])

    def _recover_latest(self) -> None:
        """Rule 4: set ``latest`` from the messages no write of rule 2 covered (a crash)."""
        db = self._writer
        (upto,) = db.execute("SELECT ifnull(max(latest_seq), 0) FROM conversations").fetchone()
        rows = db.execute(_RECOVER, (int(upto),)).fetchall()
        if not rows:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                LATEST, [(*conversation_row(k), int(ms), int(seq)) for k, ms, seq in rows]
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
