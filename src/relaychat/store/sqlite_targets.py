"""CHATHISTORY TARGETS for :class:`~relaychat.store.sqlite.SqliteHistory` (issue 17 item 5).

Rules:
1. One SQL statement answers a request, whatever the number of conversations a nick ever had:
   for each side of the nick an index range on ``conversations (a|b, latest_ms)`` (schema step
   3) with the time window and the limit in SQL, one more for what the reader's account sent or
   received before it took the nick, and the rows of the reader's channels; joined to the newest
   messages by ``seq``. Its cost is the limit.
2. Records not committed yet are the newest of their conversations: they are merged in after the
   query (``store/base.py`` rule 3), with :func:`~relaychat.store.base.select_targets`; so are
   the committed newest messages not written to their row yet (``sqlite_latest.py``).

:class:`Targets` is a mixin: it holds no state and works through the host's ``_buffered``,
``_unlisted`` and ``_read``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from relaychat.store.base import Entry, Reader, involves, is_private, select_targets
from relaychat.store.sqlite_reads import COLUMNS, row_entry

__all__ = ["Targets", "targets_sql"]


class Targets:
    """:meth:`HistoryStore.targets` on the SQLite file (see the module rules)."""

    def _buffered(self, key: str | None = None) -> list[Entry]:  # the host's
        raise NotImplementedError

    def _unlisted(self, buffered: list[Entry]) -> list[Entry]:  # the host's (sqlite_latest.py)
        raise NotImplementedError

    def _read(self, sql: str, params: Iterable[Any]) -> list[Any]:  # the host's
        raise NotImplementedError

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
        """Conversations active in a window, in one indexed query (see
        :meth:`HistoryStore.targets`): each part is an index range on ``(a|b, latest_ms)`` or a
        channel's row, with the window and the limit applied in SQL."""
        if limit <= 0:
            return []
        chans = [k for k in channels if not is_private(k)]
        buffered = [
            e
            for e in self._unlisted(self._buffered())
            if e.message.key in chans or involves(e.message.key, nick)
        ]
        sql, params = targets_sql(
            nick, chans, after_ms, before_ms, limit + len(buffered), newest, reader, COLUMNS
        )
        found = {e.message.key: e for e in map(row_entry, self._read(sql, params))}
        if not buffered:
            out = sorted(found.values(), key=lambda e: (e.time_ms, e.seq))
            return out[-limit:] if newest else out[:limit]
        # Records not committed yet are newer than anything in the table: they are the newest
        # message of their conversation (and a key whose newest is buffered may have been left
        # out of the query, or be in it with an older message).
        for entry in buffered:
            found[entry.message.key] = entry
        return select_targets(
            list(found.values()),
            after_ms=after_ms,
            before_ms=before_ms,
            limit=limit,
            newest=newest,
            reader=reader,
        )


def targets_sql(
    nick: str,
    channels: Sequence[str],
    after_ms: int,
    before_ms: int,
    limit: int,
    newest: bool,
    reader: Reader,
    columns: str,
) -> tuple[str, list[Any]]:
    """The one query of :meth:`Targets.targets` and its parameters (``columns``: what to
    select of each newest message).

    Parts (``UNION``, each an index range with its own ``LIMIT``): the nick's conversations
    whose newest message came after the reader took the nick; with an account, those whose
    newest message is the account's from before; the channels' rows.
    """
    order = "DESC" if newest else "ASC"
    window = "c.latest_ms > ? AND c.latest_ms < ?"
    parts: list[str] = []
    params: list[Any] = []
    for side in ("a", "b"):
        parts.append(
            f"SELECT * FROM (SELECT c.key, c.latest_ms, c.latest_seq FROM conversations c"
            f" WHERE c.{side} = ? AND {window} AND c.latest_ms >= ?"
            f" AND (c.latest_ms, c.latest_seq) > (?, ?)"
            f" ORDER BY c.latest_ms {order} LIMIT ?)"
        )
        params += [nick, after_ms, before_ms, reader.since_ms, *reader.since, limit]
        if reader.account is not None:
            parts.append(
                f"SELECT * FROM (SELECT c.key, c.latest_ms, c.latest_seq FROM conversations c"
                f" JOIN messages m ON m.seq = c.latest_seq"
                f" WHERE c.{side} = ? AND {window} AND c.latest_ms <= ?"
                f" AND (m.account = ? OR m.to_account = ?)"
                f" ORDER BY c.latest_ms {order} LIMIT ?)"
            )
            params += [nick, after_ms, before_ms, reader.since_ms, reader.account]
            params += [reader.account, limit]
    if channels:
        marks = ",".join("?" * len(channels))
        parts.append(
            f"SELECT c.key, c.latest_ms, c.latest_seq FROM conversations c"
            f" WHERE c.key IN ({marks}) AND {window}"
        )
        params += [*channels, after_ms, before_ms]
    cols = ", ".join(f"m.{c.strip()}" for c in columns.split(","))
    sql = (
        f"WITH picked (key, ms, seq) AS ({' UNION '.join(parts)})"
        f" SELECT {cols} FROM picked p JOIN messages m ON m.seq = p.seq"
        f" ORDER BY p.ms {order}, p.seq {order} LIMIT ?"
    )
    params.append(limit)
    return sql, params
