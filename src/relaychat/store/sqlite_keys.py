"""Idempotency keys in the SQLite history file (``store/keys.py``), for
:class:`~relaychat.store.sqlite.SqliteHistory`.

Rules (on top of ``store/keys.py``):
1. :meth:`KeyTable.append_keyed` runs on the event loop: under the store's ``_lock`` it buffers
   the key's record next to its messages, so the next group commit (``sqlite.py`` rule 2) takes
   both from one swap of the buffers and writes them in one transaction.
2. A record is one row of ``idem_keys`` (schema step 5 in ``sqlite_schema.py``), keyed by
   ``(sender, key)``; a key used again after its window replaces the old row.
3. Lookups run on the caller's thread on the reader connection, after the buffered records.
4. Expired rows are deleted by the maintenance thread (:meth:`KeyTable.prune_keys`, every pass),
   in short transactions like retention (``sqlite_retention.py`` rule 1).

:class:`KeyTable` is a mixin: it works on the attributes ``SqliteHistory`` declares below.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from relaychat.store.base import Entry, StoredMessage
from relaychat.store.keys import KeyRecord, join_sent, split_sent

__all__ = ["KeyTable"]

_INSERT_KEY = (
    "INSERT OR REPLACE INTO idem_keys (sender, key, time_ms, source, command, text, tags, sent)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_KEY_COLUMNS = "sender, key, time_ms, source, command, text, tags, sent"
_encode = json.JSONEncoder(separators=(",", ":")).encode
#: Most rows one pruning transaction deletes.
KEY_CHUNK = 5000


class KeyTable:
    """Idempotency keys next to the messages (see the module rules)."""

    # Set by the host class (SqliteHistory).
    key_window: float
    _lock: threading.Lock
    _write_lock: threading.Lock
    _writer: sqlite3.Connection
    _closed: bool
    _pending: list[Entry]
    _pending_keys: list[KeyRecord]
    _inflight_keys: list[KeyRecord]

    def _enqueue(self, message: StoredMessage) -> None:  # pragma: no cover - SqliteHistory's
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    def key_secret(self) -> bytes:
        """The token secret made by schema step 5 (see :meth:`KeyStore.key_secret`)."""
        rows = self._read("SELECT secret FROM idem_secret LIMIT 1", ())
        return bytes(rows[0][0])

    def append_keyed(self, record: KeyRecord, messages: Sequence[StoredMessage]) -> None:
        """Buffer ``record`` and its ``messages`` together (rule 1)."""
        with self._lock:
            for message in messages:
                self._enqueue(message)
            self._pending_keys.append(record)

    def _key_rows(self, records: Sequence[KeyRecord]) -> list[tuple[Any, ...]]:
        return [
            (
                r.sender,
                r.key,
                int(r.time * 1000),
                r.source,
                r.command,
                r.text,
                _encode(r.tags) if r.tags else None,
                join_sent(r.sent),
            )
            for r in records
        ]

    def _write_keys(self, db: sqlite3.Connection, records: Sequence[KeyRecord]) -> None:
        """Insert ``records`` inside the group commit's open transaction."""
        if records:
            db.executemany(_INSERT_KEY, self._key_rows(records))

    def recall_key(self, sender: str, key: str, since: float) -> KeyRecord | None:
        """The record of ``(sender, key)`` from ``since`` on (rule 3)."""
        with self._lock:
            buffered = self._inflight_keys + self._pending_keys
        for record in reversed(buffered):
            if record.sender == sender and record.key == key:
                return record if record.time >= since else None
        rows = self._read(
            f"SELECT {_KEY_COLUMNS} FROM idem_keys WHERE sender = ? AND key = ? AND time_ms >= ?",
            (sender, key, int(since * 1000)),
        )
        return _record(rows[0]) if rows else None

    def recent_keys(self, since: float, limit: int) -> list[tuple[str, str, float]]:
        """The newest records from ``since`` on (see :meth:`KeyStore.recent_keys`)."""
        with self._lock:
            buffered = self._inflight_keys + self._pending_keys
        rows = self._read(
            "SELECT sender, key, time_ms FROM idem_keys WHERE time_ms >= ?"
            " ORDER BY time_ms DESC LIMIT ?",
            (int(since * 1000), limit),
        )
        found = {(s, k): ms / 1000 for s, k, ms in rows}
        for r in buffered:
            if r.time >= since:
                found[(r.sender, r.key)] = r.time
        newest = sorted(found.items(), key=lambda item: item[1], reverse=True)[:limit]
        return [(s, k, t) for (s, k), t in newest]

    def prune_keys(self, before: float | None = None) -> int:
        """Delete the rows older than ``before`` (default: now minus ``key_window``)."""
        cutoff = int(((time.time() - self.key_window) if before is None else before) * 1000)
        total = 0
        while True:
            with self._write_lock:
                if self._closed:
                    return total
                db = self._writer
                db.execute("BEGIN IMMEDIATE")
                try:
                    cur = db.execute(
                        "DELETE FROM idem_keys WHERE (sender, key) IN (SELECT sender, key"
                        " FROM idem_keys WHERE time_ms < ? LIMIT ?)",
                        (cutoff, KEY_CHUNK),
                    )
                    db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
            total += cur.rowcount
            if cur.rowcount < KEY_CHUNK:
                return total


def _record(row: Sequence[Any]) -> KeyRecord:
    sender, key, ms, source, command, text, tags, sent = row
    return KeyRecord(
        sender=sender,
        key=key,
        time=ms / 1000,
        source=source,
        command=command,
        text=text,
        tags=json.loads(tags) if tags else {},
        sent=split_sent(sent),
    )
