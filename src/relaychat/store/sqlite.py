"""SqliteHistory: the server's history, in one embedded SQLite file (stdlib ``sqlite3``).

The store is three modules: this one buffers, commits and reads messages;
``sqlite_schema.py`` owns the file's layout, its opening and its migrations (and the epochs
of rule 6); ``sqlite_retention.py`` owns retention, counts and checkpoints (rules 5 and 7).

Rules (on top of ``store/base.py``):
1. ``append`` runs on the event loop: it takes a lock, numbers the message and buffers it. No I/O.
2. ``commit_pending`` runs in the edge's single writer thread: the whole buffer goes in one
   ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction (``executemany``), so a busy loop turn costs one
   commit, not one per message (group commit). The commit writes the messages and nothing else:
   one row in the table and one entry in each of its two indexes per message, plus a
   ``conversations`` row the first time a conversation is seen (``INSERT OR IGNORE``, skipped for
   the keys this process already wrote). Per-conversation counts are not maintained there (see 7).
3. Durability: the file is in WAL mode with ``synchronous=NORMAL``. A commit then appends its
   frames to the WAL with ``write()`` and returns; it does not wait for ``fsync``. Once ``write()``
   returned the data is in the operating system's page cache, which belongs to the kernel, not
   to the process: ``kill -9`` (or any crash of the process) cannot lose it, and SQLite recovers
   the WAL on the next open. What ``NORMAL`` can lose is the last commits before a crash of the
   *machine* (power loss, kernel panic), which is the price of not waiting for the disk on every
   message. ``FULL`` would close that gap at one ``fsync`` per group commit.
4. Reads run on the caller's thread (the loop) on their own connection; WAL lets them proceed
   while the writer commits. They add the records still buffered or being committed, so a read
   sees every appended message (``store/base.py`` rule 3).
5. Retention and WAL checkpoints run in a maintenance thread, in short transactions that a
   commit waits for at most one of (``sqlite_retention.py`` rule 1).
6. Positions: ``seq`` is ``epoch << 40 | n``, with a new epoch for every opening of the file
   (``sqlite_schema.py`` rule 3).
7. Counts per conversation (for retention by count) are kept by the retention pass, not by the
   commits (``sqlite_retention.py`` rule 2). A conversation's latest message is read from the
   ``messages`` index.

The schema, and the migration from version 1, are described in ``sqlite_schema.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from relaychat.config import Config
from relaychat.store.base import (
    Conversation,
    Entry,
    Position,
    Reader,
    StoredMessage,
    StoreError,
    is_private,
    select,
)
from relaychat.store.sqlite_retention import CHECKPOINT_EVERY, CHUNK, Retention
from relaychat.store.sqlite_schema import (
    EPOCH_SHIFT,
    SCHEMA_VERSION,
    conversation_row,
    open_connections,
)

__all__ = ["CHECKPOINT_EVERY", "CHUNK", "SCHEMA_VERSION", "SqliteHistory", "open_history"]

log = logging.getLogger("relaychat.store")

#: Most records held for a retry when commits keep failing (the oldest are dropped past it).
MAX_BUFFERED = 100_000
#: Most conversation keys remembered as already in ``conversations`` (forgotten all at once).
KNOWN_KEYS = 65_536

_COLUMNS = "time_ms, seq, msgid, key, source, account, command, target, text, tags, to_account"
_INSERT = (
    "INSERT INTO messages (seq, key, time_ms, msgid, command, source, account, to_account,"
    " target, text, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEW_CONVERSATION = "INSERT OR IGNORE INTO conversations (key, a, b) VALUES (?, ?, ?)"


def open_history(config: Config) -> SqliteHistory:
    """Open (creating it if needed) ``history.db`` in the configured data directory.

    Raises:
        StoreError: the directory cannot be created, or the file cannot be opened as history.
    """
    directory = config.data_path()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StoreError(str(directory), f"cannot create the data directory ({reason})") from None
    hist = config.history
    return SqliteHistory(
        directory / "history.db",
        max_age_days=hist.max_age_days,
        max_per_target=hist.max_per_target,
    )


class SqliteHistory(Retention):
    """History in a SQLite file (see the module rules).

    Args:
        path: the database file (created when missing).
        max_age_days: retention by age (0 keeps every age).
        max_per_target: retention by count per conversation (0 keeps every message).
        maintenance_interval: seconds between retention runs in the maintenance thread, or
            ``None`` for no thread (call :meth:`prune` yourself; SQLite then checkpoints the WAL
            itself, during commits).

    Raises:
        StoreError: the file cannot be opened, is not a database, or has a newer schema.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age_days: float = 0.0,
        max_per_target: int = 0,
        maintenance_interval: float | None = 60.0,
    ) -> None:
        self.path = Path(path)
        self.max_age_days = max_age_days
        self.max_per_target = max_per_target
        self._lock = threading.Lock()  # the buffers and counters; never held during I/O
        self._write_lock = threading.Lock()  # the writer connection
        self._read_lock = threading.Lock()  # the reader connection
        self._maint_lock = threading.Lock()  # one retention pass at a time
        self._pending: list[Entry] = []
        self._inflight: list[Entry] = []
        #: Conversation keys known to have their ``conversations`` row (written by this process).
        self._known: set[str] = set()
        self._closed = False
        #: How many group commits ran, and how many messages they stored.
        self.commits = 0
        self.committed = 0
        conns = open_connections(self.path, maintenance=maintenance_interval is not None)
        self._writer = conns.writer
        self._reader = conns.reader
        self._maint = conns.maint
        self._base = conns.epoch << EPOCH_SHIFT
        self._n = 0
        self._last_ms = conns.last_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if maintenance_interval is not None:
            self._thread = threading.Thread(
                target=self._maintain,
                args=(maintenance_interval,),
                name="relaychat-history-retention",
                daemon=True,
            )
            self._thread.start()

    # --- writing (rules 1-3) ---------------------------------------------------------------

    def append(self, message: StoredMessage) -> None:
        """Buffer ``message`` for the next commit (see :meth:`HistoryStore.append`)."""
        ms = int(message.time * 1000)
        with self._lock:
            if ms < self._last_ms:
                ms = self._last_ms  # the clock went back: keep time order = relay order
            else:
                self._last_ms = ms
            self._n += 1
            self._pending.append(Entry(ms, self._base + self._n, message))

    def has_pending(self) -> bool:
        """Whether records wait for :meth:`commit_pending`."""
        return bool(self._pending)

    def commit_pending(self) -> None:
        """Write every buffered record in one transaction. Blocking (a worker thread's job).

        Raises:
            sqlite3.Error: the write failed; the records stay buffered for the next commit.
        """
        with self._write_lock:
            with self._lock:
                batch = self._pending
                if not batch or self._closed:
                    return
                self._pending = []
                self._inflight = batch
            try:
                self._write(batch)
            except BaseException:
                with self._lock:
                    self._inflight = []
                    self._pending = batch + self._pending
                    excess = len(self._pending) - MAX_BUFFERED
                    if excess > 0:
                        del self._pending[:excess]
                        log.error("history buffer full: %d messages dropped unstored", excess)
                raise
            with self._lock:
                self._inflight = []
                self.commits += 1
                self.committed += len(batch)

    def _write(self, batch: Sequence[Entry]) -> None:
        known = self._known
        rows = [
            (
                seq,
                m.key,
                ms,
                m.msgid,
                m.command,
                m.source,
                m.account,
                m.to_account,
                m.target,
                m.text,
                json.dumps(m.tags, separators=(",", ":")) if m.tags else None,
            )
            for ms, seq, m in batch
        ]
        new = {m.key for _, _, m in batch if m.key not in known}
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, rows)
            if new:
                db.executemany(_NEW_CONVERSATION, [conversation_row(k) for k in new])
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        if new:
            if len(known) + len(new) > KNOWN_KEYS:
                known.clear()
            known.update(new)

    # --- reading (rule 4) ------------------------------------------------------------------

    def _buffered(self, key: str | None = None) -> list[Entry]:
        """Records appended but not known committed, oldest first (take before reading)."""
        with self._lock:
            both = self._inflight + self._pending
        if key is None:
            return both
        return [e for e in both if e.message.key == key]

    def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(sql, tuple(params)).fetchall()

    def find(self, key: str, msgid: str) -> Position | None:
        """The position of ``msgid`` in ``key`` (see :meth:`HistoryStore.find`)."""
        for entry in self._buffered(key):
            if entry.message.msgid == msgid:
                return entry.position
        rows = self._read(
            "SELECT time_ms, seq FROM messages WHERE msgid = ? AND key = ? LIMIT 1", (msgid, key)
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

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
        """Messages of ``key`` between two positions (see :meth:`HistoryStore.query`)."""
        if limit <= 0:
            return []
        buffered = self._buffered(key)  # before the database: nothing slips between the two
        sql = f"SELECT {_COLUMNS} FROM messages WHERE key = ? AND command != 'TAGMSG'"
        params: list[Any] = [key]
        if after is not None:
            sql += " AND (time_ms, seq) > (?, ?)"
            params += after
        if before is not None:
            sql += " AND (time_ms, seq) < (?, ?)"
            params += before
        if reader is not None and is_private(key):
            sql += " AND (time_ms >= ? OR account = ? OR to_account = ?)"
            params += (reader.since_ms, reader.account, reader.account)
        order = "DESC" if latest else "ASC"
        sql += f" ORDER BY time_ms {order}, seq {order} LIMIT ?"
        params.append(limit)
        found = [_entry(row) for row in self._read(sql, params)]
        if latest:
            found.reverse()
        if not buffered:
            return found
        more = select(
            buffered, after=after, before=before, limit=limit, latest=latest, reader=reader
        )
        if not more:
            return found
        merged = {e.seq: e for e in found}
        merged.update((e.seq, e) for e in more)  # a record committed meanwhile is in both
        out = sorted(merged.values(), key=_position)
        return out[-limit:] if latest else out[:limit]

    def conversation(self, key: str) -> Conversation | None:
        """What is known of ``key`` (see :meth:`HistoryStore.conversation`)."""
        buffered = self._buffered(key)
        rows = self._read("SELECT trimmed_ms, trimmed_seq FROM conversations WHERE key = ?", (key,))
        latest: Entry | None = buffered[-1] if buffered else None
        trimmed: Position | None = None
        if rows:
            trimmed_ms, trimmed_seq = rows[0]
            if trimmed_ms is not None:
                trimmed = (int(trimmed_ms), int(trimmed_seq))
            if latest is None:
                found = self._read(
                    f"SELECT {_COLUMNS} FROM messages WHERE key = ?"
                    " ORDER BY time_ms DESC, seq DESC LIMIT 1",
                    (key,),
                )
                latest = _entry(found[0]) if found else None
        elif latest is None:
            return None
        return Conversation(key, latest, trimmed)

    def conversations_of(self, nick: str) -> list[Conversation]:
        """Every private conversation of ``nick`` (see :meth:`HistoryStore.conversations_of`)."""
        keys = {
            row[0]
            for row in self._read(
                "SELECT key FROM conversations WHERE a = ? UNION SELECT key FROM conversations"
                " WHERE b = ?",
                (nick, nick),
            )
        }
        keys.update(
            e.message.key
            for e in self._buffered()
            if is_private(e.message.key) and nick in e.message.key.split(" ")
        )
        return [c for k in sorted(keys) if (c := self.conversation(k)) is not None]

    # --- closing (retention, rules 5 and 7, is inherited from sqlite_retention.Retention) --

    def close(self) -> None:
        """Stop the maintenance thread, commit what is pending, close the file. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.commit_pending()
        except sqlite3.Error as exc:
            log.error("history: %d messages could not be stored: %s", len(self._pending), exc)
        with self._write_lock, self._read_lock:
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA optimize")
            self._reader.close()
            if self._maint is not None:
                self._maint.close()
            self._writer.close()  # the last connection: checkpoints and removes the WAL
        if self.commits:
            log.info(
                "history closed: %d messages stored in %d group commits (%.1f per commit)",
                self.committed,
                self.commits,
                self.committed / self.commits,
            )


def _entry(row: Sequence[Any]) -> Entry:
    ms, seq, msgid, key, source, account, command, target, text, tags, to_account = row
    message = StoredMessage(
        msgid=msgid,
        time=ms / 1000,
        key=key,
        source=source,
        account=account,
        command=command,
        target=target,
        text=text,
        tags=json.loads(tags) if tags else {},
        to_account=to_account,
    )
    return Entry(int(ms), int(seq), message)


def _position(entry: Entry) -> Position:
    return (entry.time_ms, entry.seq)
