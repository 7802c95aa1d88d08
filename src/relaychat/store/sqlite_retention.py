"""Retention and WAL checkpoints for :class:`~relaychat.store.sqlite.SqliteHistory`.

Rules:
1. Retention runs in a maintenance thread every ``maintenance_interval`` seconds, in chunks of
   at most :data:`CHUNK` rows, each its own short transaction: a commit waits at most one chunk.
   The same thread checkpoints the WAL into the database file every :data:`CHECKPOINT_EVERY`
   seconds on its own connection (``PASSIVE``: writers go on meanwhile), so the ``fsync`` calls a
   checkpoint makes never land on a group commit, as SQLite's automatic checkpoint would.
2. Counts per conversation (for retention by count) are kept by the retention pass, not by the
   commits: ``conversations.count`` is exact for the messages with ``seq <= counted.seq``, and
   :meth:`Retention.prune` first adds the messages committed since (one range scan of the
   table by ``seq``, then one short transaction), so a crash never leaves a count wrong. A
   conversation's row is dropped once retention deleted all its messages.
3. Every write here takes the store's ``_write_lock`` and gives up once the store is closed;
   one retention pass runs at a time (``_maint_lock``, which also guards the maintenance
   connection).

:class:`Retention` is a mixin: it holds no state of its own and works on the attributes that
:class:`~relaychat.store.sqlite.SqliteHistory` declares below.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from relaychat.store.sqlite_schema import conversation_row

__all__ = ["CHECKPOINT_EVERY", "CHUNK", "Retention"]

log = logging.getLogger("relaychat.store")

#: Most rows one retention transaction deletes.
CHUNK = 2000
#: Seconds between WAL checkpoints by the maintenance thread.
CHECKPOINT_EVERY = 1.0

_ADD_COUNTS = (
    "INSERT INTO conversations (key, a, b, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET count = count + excluded.count"
)


class Retention:
    """Retention by age and by count, and the maintenance thread (see the module rules)."""

    # Set by the host class (SqliteHistory).
    max_age_days: float
    max_per_target: int
    _writer: sqlite3.Connection
    _maint: sqlite3.Connection | None
    _write_lock: threading.Lock
    _maint_lock: threading.Lock
    _stop: threading.Event
    _closed: bool
    _latest_pruned: Callable[[dict[str, list[int]]], None]  # the host's (sqlite_latest.py)
    prune_keys: Callable[[], int]  # expired idempotency keys (sqlite_keys.py)

    def prune(self, now: float | None = None) -> int:
        """Apply retention until nothing more is due (see :meth:`HistoryStore.prune`).

        Each chunk is one transaction of at most :data:`CHUNK` rows; commits interleave.
        """
        now = time.time() if now is None else now
        cutoff = int((now - self.max_age_days * 86400) * 1000) if self.max_age_days else None
        total = 0
        with self._maint_lock:
            if self.max_per_target and not (self._closed or self._stop.is_set()):
                self._recount()
            while not (self._closed or self._stop.is_set()):
                deleted = self._prune_chunk(cutoff)
                total += deleted
                if not deleted:
                    break
        if total:
            log.info("history retention deleted %d messages", total)
        return total

    def _recount(self) -> None:
        """Add the messages committed since the last recount to ``conversations.count``.

        The scan runs outside the write lock on the maintenance connection (a WAL snapshot;
        commits go on), bounded by the newest ``seq`` it saw; only the update of the counts and
        of ``counted`` takes the writer, for one short transaction.
        """
        scan = self._maint
        lock = self._write_lock if scan is None else contextlib.nullcontext()
        with lock:
            if self._closed:
                return
            conn = self._writer if scan is None else scan
            conn.execute("BEGIN")  # one snapshot for both statements
            try:
                since = int(conn.execute("SELECT seq FROM counted").fetchone()[0])
                upto = int(conn.execute("SELECT ifnull(max(seq), 0) FROM messages").fetchone()[0])
                added = conn.execute(
                    "SELECT key, count(*) FROM messages WHERE seq > ? AND seq <= ? GROUP BY key",
                    (since, upto),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        if upto <= since:
            return
        with self._write_lock:
            if self._closed:
                return
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                now = db.execute("SELECT seq FROM counted").fetchone()[0]
                if int(now) == since:  # nobody counted meanwhile
                    db.executemany(_ADD_COUNTS, [(*conversation_row(key), n) for key, n in added])
                    db.execute("UPDATE counted SET seq = ?", (upto,))
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise

    def _prune_chunk(self, cutoff: int | None) -> int:
        gone: dict[str, list[int]] = {}  # key -> [counted deleted, newest time_ms, newest seq]
        deleted = 0
        with self._write_lock:
            if self._closed:
                return 0
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                counted = int(db.execute("SELECT seq FROM counted").fetchone()[0])
                if cutoff is not None:
                    last = None
                    rows = db.execute(
                        "SELECT seq, key, time_ms FROM messages ORDER BY seq LIMIT ?", (CHUNK,)
                    ).fetchall()
                    for seq, key, ms in rows:
                        if ms >= cutoff:
                            break
                        last = seq
                        _note(gone, key, 1 if seq <= counted else 0, ms, seq)
                        deleted += 1
                    if last is not None:
                        db.execute("DELETE FROM messages WHERE seq <= ?", (last,))
                if not gone and self.max_per_target:
                    budget = CHUNK
                    over = db.execute(
                        "SELECT key, count FROM conversations WHERE count > ? LIMIT 64",
                        (self.max_per_target,),
                    ).fetchall()
                    for key, count in over:
                        excess = min(int(count) - self.max_per_target, budget)
                        if excess <= 0:
                            break
                        edge = db.execute(
                            "SELECT time_ms, seq FROM messages WHERE key = ?"
                            " ORDER BY time_ms, seq LIMIT 1 OFFSET ?",
                            (key, excess - 1),
                        ).fetchone()
                        if edge is None or edge[1] > counted:  # the count drifted: recount
                            db.execute(
                                "UPDATE conversations SET count = (SELECT count(*) FROM messages"
                                " WHERE key = ? AND seq <= ?) WHERE key = ?",
                                (key, counted, key),
                            )
                            continue
                        cur = db.execute(
                            "DELETE FROM messages WHERE key = ? AND (time_ms, seq) <= (?, ?)",
                            (key, edge[0], edge[1]),
                        )
                        _note(gone, key, cur.rowcount, edge[0], edge[1])
                        deleted += cur.rowcount
                        budget -= cur.rowcount
                db.executemany(
                    "UPDATE conversations SET count = max(count - ?, 0), trimmed_ms = ?,"
                    " trimmed_seq = ? WHERE key = ?",
                    [(n, ms, seq, key) for key, (n, ms, seq) in gone.items()],
                )
                # A conversation with nothing left is forgotten (base rule 5): rows of
                # conversations long over must not pile up (nor cost CHATHISTORY TARGETS).
                db.executemany(
                    "DELETE FROM conversations WHERE key = ?"
                    " AND NOT EXISTS (SELECT 1 FROM messages WHERE key = ?)",
                    [(key, key) for key in gone],
                )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
            if gone:
                self._latest_pruned(gone)
        return deleted

    def _maintain(self, interval: float) -> None:
        """The maintenance thread: retention every ``interval`` s, checkpoints in between."""
        retain = bool(self.max_age_days or self.max_per_target)
        next_prune = time.monotonic()  # once at start, then every interval
        while True:
            if time.monotonic() >= next_prune:
                try:
                    if retain:
                        self.prune()
                    self.prune_keys()
                except Exception:  # keep serving; try again next time
                    log.exception("history retention failed")
                next_prune = time.monotonic() + interval
            try:
                assert self._maint is not None
                with self._maint_lock:  # prune() may be using the connection
                    self._maint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:
                log.warning("history checkpoint failed: %s", exc)
            if self._stop.wait(min(CHECKPOINT_EVERY, interval)):
                return


def _note(gone: dict[str, list[int]], key: str, n: int, ms: int, seq: int) -> None:
    seen = gone.get(key)
    if seen is None:
        gone[key] = [n, ms, seq]
    else:
        seen[0] += n
        if (ms, seq) > (seen[1], seen[2]):
            seen[1], seen[2] = ms, seq
