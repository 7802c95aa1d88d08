"""Reading the history file, for :class:`~relaychat.store.sqlite.SqliteHistory` (its rules 4
and 8).

Rules:
1. Reads run on the caller's thread (the loop) on the reader connection; WAL lets them proceed
   while the writer commits.
2. Every read takes the records still buffered or being committed first (the host's
   ``_buffered``), then the database, and merges them, so a read sees every appended message
   (``store/base.py`` rule 3); a record committed meanwhile is in both and kept once.
3. Redactions and read markers still buffered are applied to what the database returns.

:class:`Reads` is a mixin: it holds no state and works through the host's ``_buffered``,
``_read``, ``_unlisted`` (``sqlite_latest.py``), ``_lock``, ``_markers``,
``_markers_inflight`` and ``_newest``. It comes after the other mixins among the host's bases,
so their own declarations of those helpers are the host's, not its stubs.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from relaychat.store.base import (
    Conversation,
    Entry,
    Position,
    Reader,
    StoredMessage,
    involves,
    is_private,
    merge,
    redaction_span,
    select,
    select_redactions,
)

__all__ = ["COLUMNS", "Reads", "row_entry"]

#: The message columns the SELECTs read, in the order :func:`row_entry` takes them.
COLUMNS = (
    "time_ms, seq, msgid, key, source, account, command, target, text, tags, to_account,"
    " lines, redacts, redacted"
)
#: Only these are what ``query`` returns (``store/base.py``); REDACT and TAGMSG rows are not.
_READABLE = "command IN ('PRIVMSG', 'NOTICE') AND redacted IS NULL"


class Reads:
    """The queries of :class:`~relaychat.store.base.HistoryStore` on the SQLite file (see the
    module rules)."""

    # Set by the host class (SqliteHistory).
    _lock: threading.Lock
    _markers: dict[tuple[str, str], int]
    _markers_inflight: dict[tuple[str, str], int]
    _newest: dict[str, Entry]  # sqlite_latest.py

    def _buffered(self, key: str | None = None) -> list[Entry]:  # the host's
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:  # the host's
        raise NotImplementedError

    def _unlisted(self, buffered: list[Entry]) -> list[Entry]:  # the host's (sqlite_latest.py)
        raise NotImplementedError

    def message(self, key: str, msgid: str) -> Entry | None:
        """The message ``msgid`` of ``key`` (see :meth:`HistoryStore.message`)."""
        buffered = self._buffered(key)
        found: Entry | None = None
        for entry in buffered:
            if entry.message.msgid == msgid:
                found = entry
                break
        if found is None:
            rows = self._read(
                f"SELECT {COLUMNS} FROM messages WHERE msgid = ? AND key = ? LIMIT 1",
                (msgid, key),
            )
            if not rows:
                return None
            found = row_entry(rows[0])
        if not found.message.redacted and msgid in _redacted_by(buffered):
            found = _as_redacted(found)
        return found

    def read_marker(self, owner: str, target: str) -> int | None:
        """``owner``'s read marker for ``target`` (see :meth:`HistoryStore.read_marker`)."""
        k = (owner, target)
        with self._lock:
            buffered = max(self._markers.get(k, -1), self._markers_inflight.get(k, -1))
        rows = self._read(
            "SELECT time_ms FROM read_markers WHERE owner = ? AND target = ?", (owner, target)
        )
        stored = int(rows[0][0]) if rows else -1
        best = max(buffered, stored)
        return None if best < 0 else best

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
        redactions: bool = False,
    ) -> list[Entry]:
        """Messages of ``key`` between two positions (see :meth:`HistoryStore.query`)."""
        if limit <= 0:
            return []
        buffered = self._buffered(key)  # before the database: nothing slips between the two
        gone = _redacted_by(buffered)  # redactions not committed yet (rule 8)
        page = self._page(key, buffered, gone, after, before, limit, latest, reader)
        if not redactions:
            return page
        lo, hi = redaction_span(after, before, page, limit=limit, latest=latest)
        sql = f"SELECT {COLUMNS} FROM messages WHERE key = ? AND redacts IS NOT NULL"
        params: list[Any] = [key]
        sql, params = _bounded(sql, params, key, lo, hi, reader)
        sql += " ORDER BY time_ms, seq LIMIT ?"
        params.append(limit)
        found = [row_entry(row) for row in self._read(sql, params)]
        more = select_redactions(buffered, after=lo, before=hi, limit=limit, reader=reader)
        if more:
            both = {e.seq: e for e in found}
            both.update((e.seq, e) for e in more)
            found = sorted(both.values(), key=_position)[:limit]
        return merge(page, found)

    def _page(
        self,
        key: str,
        buffered: list[Entry],
        gone: set[str],
        after: Position | None,
        before: Position | None,
        limit: int,
        latest: bool,
        reader: Reader | None,
    ) -> list[Entry]:
        """The messages of :meth:`query`, without the REDACT records."""
        sql = f"SELECT {COLUMNS} FROM messages WHERE key = ? AND {_READABLE}"
        params: list[Any] = [key]
        sql, params = _bounded(sql, params, key, after, before, reader)
        order = "DESC" if latest else "ASC"
        sql += f" ORDER BY time_ms {order}, seq {order} LIMIT ?"
        params.append(limit + len(gone))  # room for the rows redacted but not committed so
        found = [row_entry(row) for row in self._read(sql, params)]
        if latest:
            found.reverse()
        if gone:
            found = [e for e in found if e.message.msgid not in gone]
            found = found[-limit:] if latest else found[:limit]
        if not buffered:
            return found
        more = select(
            buffered,
            after=after,
            before=before,
            limit=limit + len(gone),
            latest=latest,
            reader=reader,
        )
        more = [e for e in more if e.message.msgid not in gone]
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
                    f"SELECT {COLUMNS} FROM messages WHERE key = ?"
                    " ORDER BY time_ms DESC, seq DESC LIMIT 1",
                    (key,),
                )
                latest = row_entry(found[0]) if found else None
        elif latest is None:
            # No row: none yet, or retention removed it before this message (its row is
            # written with its newest message, sqlite_latest.py).
            with self._lock:
                latest = self._newest.get(key)
            if latest is None:
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
            e.message.key for e in self._unlisted(self._buffered()) if involves(e.message.key, nick)
        )
        return [c for k in sorted(keys) if (c := self.conversation(k)) is not None]


def _bounded(
    sql: str,
    params: list[Any],
    key: str,
    after: Position | None,
    before: Position | None,
    reader: Reader | None,
) -> tuple[str, list[Any]]:
    """``sql`` with the position bounds and the private reader's filter added."""
    if after is not None:
        sql += " AND (time_ms, seq) > (?, ?)"
        params += after
    if before is not None:
        sql += " AND (time_ms, seq) < (?, ?)"
        params += before
    if reader is not None and is_private(key):
        sql += " AND ((time_ms, seq) > (?, ?) OR account = ? OR to_account = ?)"
        params += (*reader.since, reader.account, reader.account)
    return sql, params


def _redacted_by(entries: Iterable[Entry]) -> set[str]:
    """The msgids that the REDACT records among ``entries`` redact."""
    return {e.message.redacts for e in entries if e.message.redacts is not None}


def _as_redacted(entry: Entry) -> Entry:
    m = entry.message
    gone = StoredMessage(
        msgid=m.msgid,
        time=m.time,
        key=m.key,
        source=m.source,
        account=m.account,
        command=m.command,
        target=m.target,
        text="",
        to_account=m.to_account,
        redacted=True,
    )
    return entry._replace(message=gone)


def row_entry(row: Sequence[Any]) -> Entry:
    """A row of :data:`COLUMNS` as an entry."""
    (ms, seq, msgid, key, source, account, command, target, text, tags, to_account) = row[:11]
    lines, redacts, redacted = row[11:14]
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
        multiline=None if lines is None else tuple(c == "1" for c in lines),
        redacts=redacts,
        redacted=bool(redacted),
    )
    return Entry(int(ms), int(seq), message)


def _position(entry: Entry) -> Position:
    return (entry.time_ms, entry.seq)
