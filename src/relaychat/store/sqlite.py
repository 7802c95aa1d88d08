"""SqliteHistory: the server's history, in one embedded SQLite file (stdlib ``sqlite3``).

The store is six modules: this one buffers and commits messages; ``sqlite_reads.py`` reads them;
``sqlite_schema.py`` owns the file's layout, its opening and its migrations (and the epochs
of rule 6); ``sqlite_retention.py`` owns retention, counts and checkpoints (rules 5 and 7);
``sqlite_keys.py`` owns the idempotency keys, which the group commit writes with the messages;
``sqlite_targets.py`` answers CHATHISTORY TARGETS in one indexed query.

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
8. Redactions and read markers (``store/base.py`` rules 7 and 8) are buffered and committed with
   the messages, in the order they came: a ``REDACT`` record is a row of its own and clears the
   redacted row in the same transaction; read markers are upserted (never backwards) and each
   owner touched is trimmed to ``max_read_markers``. Reads apply what is still buffered.

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
    Entry,
    Position,
    StoredMessage,
    StoreError,
)
from relaychat.store.keys import KeyRecord
from relaychat.store.sqlite_keys import KeyTable
from relaychat.store.sqlite_latest import Latest
from relaychat.store.sqlite_reads import Reads
from relaychat.store.sqlite_retention import CHECKPOINT_EVERY, CHUNK, Retention
from relaychat.store.sqlite_schema import (
    EPOCH_SHIFT,
    SCHEMA_VERSION,
    open_connections,
)
from relaychat.store.sqlite_targets import Targets

__all__ = ["CHECKPOINT_EVERY", "CHUNK", "SCHEMA_VERSION", "SqliteHistory", "open_history"]

log = logging.getLogger("relaychat.store")

#: Most records held for a retry when commits keep failing (the oldest are dropped past it).
MAX_BUFFERED = 100_000

_INSERT = (
    "INSERT INTO messages (seq, key, time_ms, msgid, command, source, account, to_account,"
    " target, text, tags, lines, redacts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REDACT = (
    "UPDATE messages SET redacted = 1, text = '', tags = NULL, lines = NULL"
    " WHERE key = ? AND msgid = ? AND redacts IS NULL"
)
_SET_MARKER = (
    "INSERT INTO read_markers (owner, target, time_ms) VALUES (?, ?, ?)"
    " ON CONFLICT (owner, target) DO UPDATE SET time_ms = max(time_ms, excluded.time_ms)"
)
_TRIM_MARKERS = (
    "DELETE FROM read_markers WHERE owner = ? AND target IN (SELECT target FROM read_markers"
    " WHERE owner = ? ORDER BY time_ms, target LIMIT ?)"
)
#: json.dumps(..., separators=(",", ":")) without building an encoder per call (hot: commits).
_encode_tags = json.JSONEncoder(separators=(",", ":")).encode


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
        max_read_markers=hist.max_read_markers,
        key_window=config.idempotency.window,
    )


class SqliteHistory(KeyTable, Retention, Latest, Targets, Reads):
    """History in a SQLite file (see the module rules).

    Args:
        path: the database file (created when missing).
        max_age_days: retention by age (0 keeps every age).
        max_per_target: retention by count per conversation (0 keeps every message).
        max_read_markers: read markers kept per owner (the oldest forgotten first).
        maintenance_interval: seconds between retention runs in the maintenance thread, or
            ``None`` for no thread (call :meth:`prune` yourself; SQLite then checkpoints the WAL
            itself, during commits).
        key_window: seconds idempotency keys are kept (older ones are pruned).

    Raises:
        StoreError: the file cannot be opened, is not a database, or has a newer schema.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_age_days: float = 0.0,
        max_per_target: int = 0,
        max_read_markers: int = 1000,
        maintenance_interval: float | None = 60.0,
        key_window: float = 600.0,
    ) -> None:
        self.path = Path(path)
        self.key_window = key_window
        self.max_age_days = max_age_days
        self.max_per_target = max_per_target
        self.max_read_markers = max_read_markers
        self._lock = threading.Lock()  # the buffers and counters; never held during I/O
        self._write_lock = threading.Lock()  # the writer connection
        self._read_lock = threading.Lock()  # the reader connection
        self._maint_lock = threading.Lock()  # one retention pass at a time
        self._pending: list[Entry] = []
        self._inflight: list[Entry] = []
        #: Read markers waiting for / being written by a commit: (owner, target) -> time_ms.
        self._markers: dict[tuple[str, str], int] = {}
        self._markers_inflight: dict[tuple[str, str], int] = {}
        self._pending_keys: list[KeyRecord] = []  # idempotency keys (sqlite_keys.py)
        self._inflight_keys: list[KeyRecord] = []
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
        self._tip: Position = (-1, -1)  # see tip()
        self._latest_init()
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
        with self._lock:
            self._enqueue(message)

    def _enqueue(self, message: StoredMessage) -> None:
        """Number and buffer ``message`` (the caller holds ``_lock``)."""
        ms = int(message.time * 1000)
        if ms < self._last_ms:
            ms = self._last_ms  # the clock went back: keep time order = relay order
        else:
            self._last_ms = ms
        self._n += 1
        self._pending.append(Entry(ms, self._base + self._n, message))

    def set_read_marker(self, owner: str, target: str, time_ms: int) -> None:
        """Buffer a read marker (see :meth:`HistoryStore.set_read_marker`)."""
        with self._lock:
            if time_ms > self._markers.get((owner, target), -1):
                self._markers[(owner, target)] = time_ms

    def has_pending(self) -> bool:
        """Whether records wait for :meth:`commit_pending`."""
        return bool(self._pending or self._markers or self._pending_keys)

    def commit_pending(self) -> None:
        """Write every buffered record in one transaction. Blocking (a worker thread's job).

        Raises:
            sqlite3.Error: the write failed; the records stay buffered for the next commit.
        """
        with self._write_lock:
            self._commit_locked()

    def try_commit(self) -> bool:
        """:meth:`commit_pending` on the caller's thread (the event loop's), unless that could
        block: returns ``False`` at once, having done nothing, while the maintenance thread
        holds the writer (a retention chunk); the caller then commits in its writer thread.

        In WAL mode with ``synchronous=NORMAL`` a commit is ``write()`` calls into the page
        cache, no ``fsync`` (rule 3): tens of microseconds for a loop turn's messages, cheaper
        on the loop than a hand-off to a thread and back (docs/benchmarks.md, round 2).

        Raises:
            sqlite3.Error: as :meth:`commit_pending`.
        """
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            self._commit_locked()
        finally:
            self._write_lock.release()
        return True

    def _commit_locked(self) -> None:
        """The body of :meth:`commit_pending` (the caller holds ``_write_lock``)."""
        with self._lock:
            batch, markers, keys = self._pending, self._markers, self._pending_keys
            if (not batch and not markers and not keys) or self._closed:
                return
            self._pending, self._markers, self._pending_keys = [], {}, []
            self._inflight, self._markers_inflight = batch, markers
            self._inflight_keys = keys
        try:
            self._write(batch)
        except BaseException:
            with self._lock:
                self._inflight, self._markers_inflight = [], {}
                self._inflight_keys = []
                self._pending = batch + self._pending
                self._pending_keys = keys + self._pending_keys
                for k, ms in markers.items():
                    if ms > self._markers.get(k, -1):
                        self._markers[k] = ms
                excess = len(self._pending) - MAX_BUFFERED
                if excess > 0:
                    del self._pending[:excess]
                    log.error("history buffer full: %d messages dropped unstored", excess)
            raise
        with self._lock:
            self._latest_done()
            self._inflight, self._markers_inflight = [], {}
            self._inflight_keys = []
            self.commits += 1
            self.committed += len(batch)

    def _write(self, batch: Sequence[Entry]) -> None:
        """One transaction: ``batch``, the redactions among it, the read markers, the
        idempotency keys in flight (``sqlite_keys.py``) and, when due, each conversation's
        newest message (``sqlite_latest.py``; :meth:`Latest._latest_done` follows)."""
        markers = self._markers_inflight
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
                _encode_tags(m.tags) if m.tags else None,
                _flags(m.multiline),
                m.redacts,
            )
            for ms, seq, m in batch
        ]
        redactions = [(m.key, m.redacts) for _, _, m in batch if m.redacts is not None]
        # Each conversation's newest message (what CHATHISTORY TARGETS reads), in order, so
        # the last one of each key stays; written lazily (sqlite_latest.py).
        newest: dict[str, Entry] = {}
        for entry in batch:
            if entry.message.command in ("PRIVMSG", "NOTICE"):
                newest[entry.message.key] = entry
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                db.executemany(_INSERT, rows)
            if redactions:  # after the inserts: a message may be redacted in its own commit
                db.executemany(_REDACT, redactions)
            self._latest_write(db, newest)
            if markers:
                db.executemany(_SET_MARKER, [(o, t, ms) for (o, t), ms in markers.items()])
                for owner in {o for o, _ in markers}:
                    (count,) = db.execute(
                        "SELECT count(*) FROM read_markers WHERE owner = ?", (owner,)
                    ).fetchone()
                    if count > self.max_read_markers:
                        excess = count - self.max_read_markers
                        db.execute(_TRIM_MARKERS, (owner, owner, excess))
            self._write_keys(db, self._inflight_keys)
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    # --- reading (rule 4; the queries are sqlite_reads.Reads') ------------------------------

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

    def tip(self) -> Position:
        """The newest position appended (see :meth:`HistoryStore.tip`); the same tuple while
        nothing was appended (every user keeps the tip of its nick: they share it)."""
        with self._lock:
            tip = (self._last_ms, self._base + self._n)
            if tip != self._tip:
                self._tip = tip
            return self._tip

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
            self._flush_latest()
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


def _flags(multiline: tuple[bool, ...] | None) -> str | None:
    """A multiline message's concat flags as stored: ``'0'``/``'1'`` per line."""
    return None if multiline is None else "".join("1" if f else "0" for f in multiline)
