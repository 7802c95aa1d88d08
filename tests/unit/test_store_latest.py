"""Each conversation's newest message, kept lazily by the SQLite store (``sqlite_latest.py``):
remembered after its commit, written at most once a second, merged into CHATHISTORY TARGETS
meanwhile, and rebuilt from the messages after a crash."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from relaychat.store import Reader, StoredMessage, sqlite_latest
from relaychat.store.base import conversation_key
from relaychat.store.sqlite import SqliteHistory

T0 = 1_700_000_000.0


def msg(n: int, key: str) -> StoredMessage:
    return StoredMessage(
        msgid=f"id{n}",
        time=T0 + n,
        key=key,
        source="alice!~a@h",
        account=None,
        command="PRIVMSG",
        target=key,
        text=f"text {n}",
        tags={},
    )


def listed(store: SqliteHistory, nick: str = "alice") -> list[tuple[str, str]]:
    got = store.targets(
        nick, ["#c"], after_ms=0, before_ms=10**15, limit=10, newest=False, reader=Reader(0)
    )
    return [(e.message.key, e.message.msgid) for e in got]


def rows(path: Path) -> dict[str, int | None]:
    """``conversations``: key -> latest_seq, as another connection reads the file."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, latest_seq FROM conversations").fetchall())
    finally:
        db.close()


AB = conversation_key("alice", "bob")
AD = conversation_key("alice", "dave")


def test_remembered_until_due_and_listed_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        store.append(msg(1, AB))
        store.append(msg(2, "#c"))
        store.commit_pending()
        # The rows exist (new conversations are inserted at once), their latest not yet ...
        assert rows(path) == {AB: None, "#c": None}
        # ... and TARGETS lists them all the same, with the newest message of each.
        assert listed(store) == [(AB, "id1"), ("#c", "id2")]
        store.append(msg(3, AD))
        store.append(msg(4, AB))
        store._latest_due = 0.0  # a second has passed
        store.commit_pending()
        found = rows(path)
        assert found[AB] is not None and found[AD] is not None and found["#c"] is not None
        assert listed(store) == [("#c", "id2"), (AD, "id3"), (AB, "id4")]
        assert store._newest == {}
    finally:
        store.close()


def test_too_many_waiting_are_written_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_latest, "LATEST_MAX", 3)
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        for n in range(3):
            store.append(msg(n, conversation_key("alice", f"u{n}")))
        store.commit_pending()
        assert len(store._newest) == 3
        store.append(msg(9, AB))
        store.commit_pending()  # 3 waiting: this commit writes them all
        assert store._newest == {}
        assert all(seq is not None for seq in rows(path).values())
    finally:
        store.close()


def test_closing_writes_what_is_remembered(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    store.append(msg(1, AB))
    store.commit_pending()
    store.close()
    assert rows(path)[AB] is not None


def test_a_crash_loses_nothing_the_messages_are_reread(tmp_path: Path) -> None:
    """The process dies with newest messages remembered but not written: the next opening
    sets them from the messages (rule 4), so TARGETS after the restart is complete."""
    path = tmp_path / "h.db"
    dead = SqliteHistory(path, maintenance_interval=None)
    dead.append(msg(1, AB))
    dead._latest_due = 0.0
    dead.commit_pending()  # AB written with id1
    dead.append(msg(2, AB))
    dead.append(msg(3, AD))
    dead.append(msg(4, "#c"))
    dead.commit_pending()  # committed, newest only remembered
    assert len(dead._newest) == 3
    # No close(): what a kill -9 leaves (the WAL holds the commits).
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        assert store._newest == {}
        assert listed(store) == [(AB, "id2"), (AD, "id3"), ("#c", "id4")]
        assert all(seq is not None for seq in rows(path).values())
    finally:
        store.close()
        dead._closed = True  # its connections go with the test process


def test_retention_forgets_a_remembered_message_it_deleted(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, max_age_days=1, maintenance_interval=None)
    try:
        store.append(msg(1, AD))
        store.commit_pending()
        assert store.prune(T0 + 2 * 86400) == 1
        assert store.conversation(AD) is None
        assert listed(store) == []
    finally:
        store.close()


def test_the_tip_is_one_shared_tuple_while_nothing_is_appended(tmp_path: Path) -> None:
    """Every user keeps the tip of its nick (W2: 10,000 of them): equal tips are one object."""
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        first = store.tip()
        assert store.tip() is first
        store.append(msg(1, AB))
        moved = store.tip()
        assert moved != first and moved[1] == first[1] + 1
        assert store.tip() is moved
    finally:
        store.close()
