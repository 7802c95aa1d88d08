"""Multiline messages, redactions and read markers in the history stores (store/base.py rules
6-8), through one suite for MemoryHistory and SqliteHistory, then what only the file has:
reopening (they persist), schema step 4 and its migration, a failed commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relaychat.store import MemoryHistory, Reader, StoredMessage
from relaychat.store.base import HistoryStore
from relaychat.store.sqlite import SCHEMA_VERSION, SqliteHistory
from relaychat.store.sqlite_schema import SCHEMA

T0 = 1_700_000_000.0
Factory = Callable[..., HistoryStore]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[HistoryStore] = []

    def factory(**options: Any) -> HistoryStore:
        store: HistoryStore
        if request.param == "memory":
            store = MemoryHistory(**options)
        else:
            store = SqliteHistory(
                tmp_path / f"h{len(opened)}.db", maintenance_interval=None, **options
            )
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def msg(n: int, key: str = "#c", **fields: Any) -> StoredMessage:
    base = StoredMessage(
        msgid=f"id{n}",
        time=T0 + n,
        key=key,
        source="alice!~a@h",
        account=None,
        command="PRIVMSG",
        target="#c" if key.startswith("#") else key.split(" ")[1],
        text=f"text {n}",
    )
    return replace(base, **fields)


def redact(n: int, of: int, key: str = "#c", **fields: Any) -> StoredMessage:
    return msg(n, key, command="REDACT", text="reason", redacts=f"id{of}", **fields)


def ids(entries: list[Any]) -> list[str]:
    return [e.message.msgid for e in entries]


class TestMultiline:
    def test_one_record_with_its_flags(self, make: Factory) -> None:
        store = make()
        store.append(
            msg(1, text="hello\n\nhow is \neveryone?", multiline=(False, False, False, True))
        )
        store.append(msg(2))
        for commit in (False, True):
            if commit:
                store.commit_pending()
            first, second = store.query("#c", limit=10)
            assert first.message.text == "hello\n\nhow is \neveryone?"
            assert first.message.multiline == (False, False, False, True)
            assert second.message.multiline is None

    def test_a_one_line_batch_is_still_multiline(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, text="alone", multiline=(False,)))
        store.commit_pending()
        (entry,) = store.query("#c", limit=1)
        assert entry.message.multiline == (False,)


class TestRedaction:
    @pytest.mark.parametrize("commit_between", [False, True])
    def test_redacted_message_is_not_returned(self, make: Factory, commit_between: bool) -> None:
        store = make()
        for n in range(3):
            store.append(msg(n, tags={"+x": "y"}))
        if commit_between:
            store.commit_pending()
        store.append(redact(3, of=1))
        for _ in range(2):  # before and after the redaction's own commit
            assert ids(store.query("#c", limit=10)) == ["id0", "id2"]
            assert ids(store.query("#c", limit=2, latest=True)) == ["id0", "id2"]
            entry = store.message("#c", "id1")
            assert entry is not None and entry.message.redacted
            assert entry.message.text == "" and entry.message.tags == {}
            assert store.find("#c", "id1") is not None  # resuming after it still works
            store.commit_pending()

    def test_redactions_on_request_in_the_page_span(self, make: Factory) -> None:
        store = make()
        for n in range(4):
            store.append(msg(n))
        store.append(redact(4, of=0))
        store.append(msg(5))
        store.commit_pending()
        everything = store.query("#c", limit=10, redactions=True)
        assert ids(everything) == ["id1", "id2", "id3", "id4", "id5"]
        assert everything[3].message.redacts == "id0"
        # A full page stops at its last message: the REDACT after it goes with the next page.
        first = store.query("#c", limit=3, redactions=True)
        assert ids(first) == ["id1", "id2", "id3"]
        nxt = store.query("#c", after=first[-1].position, limit=3, redactions=True)
        assert ids(nxt) == ["id4", "id5"]
        # Newest first: a full page starts at its first message.
        latest = store.query("#c", limit=1, latest=True, redactions=True)
        assert ids(latest) == ["id5"]
        latest = store.query("#c", limit=2, latest=True, redactions=True)
        assert ids(latest) == ["id3", "id4", "id5"]
        assert ids(store.query("#c", limit=10)) == ["id1", "id2", "id3", "id5"]

    def test_redaction_in_the_same_commit_as_its_message(self, make: Factory) -> None:
        store = make()
        store.append(msg(1))
        store.append(redact(2, of=1))
        store.commit_pending()
        assert store.query("#c", limit=10) == []
        assert ids(store.query("#c", limit=10, redactions=True)) == ["id2"]

    def test_another_conversations_message_is_untouched(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, "#other"))
        store.append(redact(2, of=1))  # in #c: names a msgid of #other
        store.commit_pending()
        assert ids(store.query("#other", limit=10)) == ["id1"]
        assert store.message("#c", "id1") is None

    def test_private_redactions_follow_the_reader(self, make: Factory) -> None:
        store = make()
        key = "alice bob"
        store.append(msg(1, key, account="acct"))
        store.append(redact(2, of=1, key=key, account="acct"))
        store.commit_pending()
        stranger = Reader(int((T0 + 100) * 1000))
        owner = Reader(int((T0 + 100) * 1000), "acct")
        assert store.query(key, limit=10, reader=stranger, redactions=True) == []
        assert ids(store.query(key, limit=10, reader=owner, redactions=True)) == ["id2"]


class TestReadMarkers:
    def test_set_get_never_backwards(self, make: Factory) -> None:
        store = make()
        assert store.read_marker("acct", "#c") is None
        store.set_read_marker("acct", "#c", 2000)
        assert store.has_pending()
        assert store.read_marker("acct", "#c") == 2000
        store.commit_pending()
        assert not store.has_pending()
        store.set_read_marker("acct", "#c", 1000)
        store.commit_pending()
        assert store.read_marker("acct", "#c") == 2000
        assert store.read_marker("other", "#c") is None
        assert store.read_marker("acct", "#d") is None

    def test_bounded_per_owner_oldest_forgotten(self, make: Factory) -> None:
        store = make(max_read_markers=2)
        for i, target in enumerate(("#a", "#b", "#c")):
            store.set_read_marker("acct", target, 1000 * (i + 1))
            store.set_read_marker("other", target, 1000 * (i + 1))
            store.commit_pending()
        for owner in ("acct", "other"):
            found = {t: store.read_marker(owner, t) for t in ("#a", "#b", "#c")}
            assert found == {"#a": None, "#b": 2000, "#c": 3000}


# --- SQLite only: persistence, schema, failures ------------------------------------------------


def test_markers_and_redactions_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    store.append(msg(1, text="a\nb", multiline=(False, True)))
    store.append(msg(2))
    store.append(redact(3, of=2))
    store.set_read_marker("acct", "#c", 1234)
    store.close()  # commits what is pending
    again = SqliteHistory(path, maintenance_interval=None)
    try:
        assert ids(again.query("#c", limit=10, redactions=True)) == ["id1", "id3"]
        (first,) = again.query("#c", limit=10)
        assert first.message.multiline == (False, True)
        assert again.read_marker("acct", "#c") == 1234
    finally:
        again.close()


def test_fresh_file_is_at_step_4(tmp_path: Path) -> None:
    SqliteHistory(tmp_path / "h.db", maintenance_interval=None).close()
    db = sqlite3.connect(tmp_path / "h.db")
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        columns = {row[1] for row in db.execute("PRAGMA table_info(messages)")}
        assert {"lines", "redacts", "redacted"} <= columns
        assert db.execute("SELECT count(*) FROM read_markers").fetchone() == (0,)
    finally:
        db.close()


def test_version_2_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A file written before step 4 (schema version 2) keeps its messages and gains step 4."""
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    for statement in SCHEMA:
        db.execute(statement)
    db.execute("INSERT INTO schema_version (version) VALUES (2)")
    db.execute("INSERT INTO counted (seq) VALUES (0)")
    db.execute(
        "INSERT INTO messages (seq, key, time_ms, msgid, command, source, target, text)"
        " VALUES (1, '#c', 1000, 'old1', 'PRIVMSG', 'a!~a@h', '#c', 'from before')"
    )
    db.commit()
    db.close()
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        (old,) = store.query("#c", limit=10)
        assert old.message.text == "from before" and old.message.multiline is None
        store.append(msg(5))
        store.append(
            StoredMessage(
                msgid="r1",
                time=T0,
                key="#c",
                source="a!~a@h",
                account=None,
                command="REDACT",
                target="#c",
                text="",
                redacts="old1",
            )
        )
        store.set_read_marker("acct", "#c", 99)
        store.commit_pending()
        assert ids(store.query("#c", limit=10)) == ["id5"]
        assert store.read_marker("acct", "#c") == 99
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


def test_failed_commit_keeps_the_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        store.set_read_marker("acct", "#c", 500)
        real = store._write

        def broken(batch: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_write", broken)
        with pytest.raises(sqlite3.OperationalError):
            store.commit_pending()
        assert store.has_pending() and store.read_marker("acct", "#c") == 500
        store.set_read_marker("acct", "#c", 400)  # older than the one held: kept as 500
        monkeypatch.setattr(store, "_write", real)
        store.commit_pending()
        assert not store.has_pending()
    finally:
        store.close()
    again = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        assert again.read_marker("acct", "#c") == 500
    finally:
        again.close()
