"""SqliteHistory: the server's history, in one embedded SQLite file (stdlib ``sqlite3``).

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
5. Retention runs in a maintenance thread every ``maintenance_interval`` seconds, in chunks of
   at most :data:`CHUNK` rows, each its own short transaction: a commit waits at most one chunk.
   The same thread checkpoints the WAL into the database file every :data:`CHECKPOINT_EVERY`
   seconds on its own connection (``PASSIVE``: writers go on meanwhile), so the ``fsync`` calls a
   checkpoint makes never land on a group commit, as SQLite's automatic checkpoint would.
6. Positions: ``seq`` is ``epoch << 40 | n``, where every opening of the file takes a new epoch
   from the ``instances`` table, so two servers wrongly sharing a file never collide, and a
   restarted server's messages sort after the previous run's.
7. Counts per conversation (for retention by count) are kept by the retention pass, not by the
   commits: ``conversations.count`` is exact for the messages with ``seq <= counted.seq``, and
   :meth:`SqliteHistory.prune` first adds the messages committed since (one range scan of the
   table by ``seq``, then one short transaction), so a crash never leaves a count wrong. A
   conversation's latest message is read from the ``messages`` index.

Schema (version :data:`SCHEMA_VERSION`, in the ``schema_version`` table)::

    messages(seq PK, key, time_ms, msgid, command, source, account, to_account, target, text,
             tags)                        index (key, time_ms [, seq]), index (msgid)
    conversations(key PK, a, b, count, trimmed_ms, trimmed_seq)
                                          a, b: the two folded nicks of a private conversation
    counted(seq)                          ``count`` covers the messages up to this seq
    instances(epoch PK autoincrement, opened_ms)

Version 1 (``conversations.latest_seq``, counts kept by every commit, no
``counted``) is migrated in place when opened: one small transaction, no rows rewritten.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
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

__all__ = ["CHECKPOINT_EVERY", "CHUNK", "SCHEMA_VERSION", "SqliteHistory", "open_history"]

log = logging.getLogger("relaychat.store")

SCHEMA_VERSION = 2
#: Most rows one retention transaction deletes.
CHUNK = 2000
#: Seconds between WAL checkpoints by the maintenance thread.
CHECKPOINT_EVERY = 1.0
#: Most records held for a retry when commits keep failing (the oldest are dropped past it).
MAX_BUFFERED = 100_000
_EPOCH_SHIFT = 40
#: Most conversation keys remembered as already in ``conversations`` (forgotten all at once).
KNOWN_KEYS = 65_536

_SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE instances (epoch INTEGER PRIMARY KEY AUTOINCREMENT, opened_ms INTEGER NOT NULL)",
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        msgid TEXT NOT NULL,
        command TEXT NOT NULL,
        source TEXT NOT NULL,
        account TEXT,
        to_account TEXT,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        tags TEXT
    )""",
    # The rowid (seq) is the implicit last column: the index orders by (key, time_ms, seq).
    "CREATE INDEX messages_by_key ON messages (key, time_ms)",
    "CREATE INDEX messages_by_msgid ON messages (msgid)",
    """CREATE TABLE conversations (
        key TEXT PRIMARY KEY,
        a TEXT,
        b TEXT,
        count INTEGER NOT NULL DEFAULT 0,
        trimmed_ms INTEGER,
        trimmed_seq INTEGER
    ) WITHOUT ROWID""",
    "CREATE INDEX conversations_by_a ON conversations (a) WHERE a IS NOT NULL",
    "CREATE INDEX conversations_by_b ON conversations (b) WHERE b IS NOT NULL",
    "CREATE TABLE counted (seq INTEGER NOT NULL)",
)

_COLUMNS = "time_ms, seq, msgid, key, source, account, command, target, text, tags, to_account"
_INSERT = (
    "INSERT INTO messages (seq, key, time_ms, msgid, command, source, account, to_account,"
    " target, text, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_NEW_CONVERSATION = "INSERT OR IGNORE INTO conversations (key, a, b) VALUES (?, ?, ?)"
_ADD_COUNTS = (
    "INSERT INTO conversations (key, a, b, count) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET count = count + excluded.count"
)


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


class SqliteHistory:
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
        try:
            self._writer = self._connect()
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                log.warning("%s: WAL mode unavailable (journal mode %s)", self.path, mode)
            self._writer.execute("PRAGMA synchronous=NORMAL")
            self._writer.execute("PRAGMA cache_size=-16384")  # 16 MiB: index pages stay cached
            epoch, last_ms = self._migrate()
            self._reader = self._connect()
            self._reader.execute("PRAGMA query_only=ON")
            self._maint: sqlite3.Connection | None = None
            if maintenance_interval is not None:
                self._maint = self._connect()  # checkpoints, off the writer's path
                self._writer.execute("PRAGMA wal_autocheckpoint=0")
                self._writer.execute("PRAGMA journal_size_limit=67108864")
        except (sqlite3.Error, StoreError) as exc:
            with contextlib.suppress(Exception):
                self._writer.close()
            if isinstance(exc, StoreError):
                raise
            raise StoreError(str(self.path), _describe(exc)) from None
        self._base = epoch << _EPOCH_SHIFT
        self._n = 0
        self._last_ms = last_ms
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

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        db.execute("PRAGMA busy_timeout=30000")
        return db

    def _migrate(self) -> tuple[int, int]:
        """Create or check the schema; take a new epoch. Returns (epoch, newest time_ms)."""
        db = self._writer
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if found is None:
                for statement in _SCHEMA:
                    db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                db.execute("INSERT INTO counted (seq) VALUES (0)")
            else:
                row = db.execute("SELECT version FROM schema_version").fetchone()
                version = int(row[0]) if row else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        str(self.path),
                        f"schema version {version} is newer than this relaychat understands "
                        f"({SCHEMA_VERSION}); upgrade relaychat or use another --data-dir",
                    )
                if version < 1:
                    raise StoreError(str(self.path), "schema_version table is empty or damaged")
                if version == 1:
                    _migrate_v1(db)
            cur = db.execute(
                "INSERT INTO instances (opened_ms) VALUES (?)", (int(time.time() * 1000),)
            )
            epoch = int(cur.lastrowid or 0)
            row = db.execute("SELECT time_ms FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return epoch, int(row[0]) if row else 0

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
                db.executemany(_NEW_CONVERSATION, [_conversation_row(k) for k in new])
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

    # --- retention (rule 5) ----------------------------------------------------------------

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
                    db.executemany(_ADD_COUNTS, [(*_conversation_row(key), n) for key, n in added])
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
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        return deleted

    def _maintain(self, interval: float) -> None:
        """The maintenance thread: retention every ``interval`` s, checkpoints in between."""
        retain = bool(self.max_age_days or self.max_per_target)
        next_prune = time.monotonic()  # once at start, then every interval
        while True:
            if retain and time.monotonic() >= next_prune:
                try:
                    self.prune()
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


def _conversation_row(key: str) -> tuple[str, str | None, str | None]:
    """``(key, a, b)`` for the ``conversations`` table: a private conversation's two nicks."""
    if is_private(key):
        a, b = key.split(" ", 1)
        return key, a, b
    return key, None, None


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Version 1 -> 2, inside the opening transaction: counts were exact for every message
    (every commit kept them), so ``counted`` starts at the newest message; ``latest_seq`` stays
    in the table, unused."""
    db.execute(_SCHEMA[-1])
    db.execute("INSERT INTO counted (seq) SELECT ifnull(max(seq), 0) FROM messages")
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
    log.info("history store migrated from schema version 1 to %d", SCHEMA_VERSION)


def _note(gone: dict[str, list[int]], key: str, n: int, ms: int, seq: int) -> None:
    seen = gone.get(key)
    if seen is None:
        gone[key] = [n, ms, seq]
    else:
        seen[0] += n
        if (ms, seq) > (seen[1], seen[2]):
            seen[1], seen[2] = ms, seq


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


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "unable to open" in text:
        return "cannot open the file (check the data directory's permissions)"
    if "not a database" in text:
        return "the file is not a SQLite database"
    return text
