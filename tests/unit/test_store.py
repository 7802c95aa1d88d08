"""The history stores, both through one suite (store/base.py is the contract).

Every test runs against MemoryHistory and SqliteHistory; the SQLite-only tests at the end cover
what only a file has: reopening, the schema version, WAL, a failed commit, the retention thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from relaychat.config import load_config
from relaychat.store import MemoryHistory, Reader, StoredMessage, StoreError
from relaychat.store.base import MAX_SEQ, HistoryStore, conversation_key
from relaychat.store.sqlite import SCHEMA_VERSION, SqliteHistory, open_history

T0 = 1_700_000_000.0

Factory = Callable[..., HistoryStore]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A factory of fresh stores of one kind; retention settings as keyword arguments."""
    opened: list[HistoryStore] = []

    def factory(**retention: Any) -> HistoryStore:
        store: HistoryStore
        if request.param == "memory":
            store = MemoryHistory(**retention)
        else:
            path = tmp_path / f"h{len(opened)}.db"
            store = SqliteHistory(path, maintenance_interval=None, **retention)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def msg(
    n: int,
    key: str = "#c",
    *,
    at: float | None = None,
    command: str = "PRIVMSG",
    source: str = "alice!~a@h",
    account: str | None = None,
    to_account: str | None = None,
    tags: dict[str, str] | None = None,
) -> StoredMessage:
    return StoredMessage(
        msgid=f"id{n}",
        time=T0 + n if at is None else at,
        key=key,
        source=source,
        account=account,
        command=command,
        target="#c" if key.startswith("#") else key.split(" ")[1],
        text=f"text {n}",
        tags=tags or {},
        to_account=to_account,
    )


def texts(entries: list[Any]) -> list[str]:
    return [e.message.text for e in entries]


def fill(store: HistoryStore, count: int, key: str = "#c", commit: bool = True) -> None:
    for n in range(count):
        store.append(msg(n, key))
    if commit:
        store.commit_pending()


class TestAppendAndCommit:
    def test_reads_see_messages_before_and_after_the_commit(self, make: Factory) -> None:
        store = make()
        assert not store.has_pending()
        store.append(msg(1))
        assert store.has_pending()
        assert texts(store.query("#c", limit=10)) == ["text 1"]  # buffered, already visible
        store.commit_pending()
        assert not store.has_pending()
        assert texts(store.query("#c", limit=10)) == ["text 1"]  # once, not twice
        store.commit_pending()  # nothing pending: a no-op

    def test_a_message_keeps_every_field(self, make: Factory) -> None:
        store = make()
        sent = msg(1, account="acct", tags={"+draft/reply": "x;y z"})
        store.append(sent)
        store.commit_pending()
        (entry,) = store.query("#c", limit=1)
        assert entry.message == sent
        assert entry.time_ms == int(sent.time * 1000)


class TestQuery:
    def test_oldest_first_and_latest(self, make: Factory) -> None:
        store = make()
        fill(store, 10)
        assert texts(store.query("#c", limit=3)) == ["text 0", "text 1", "text 2"]
        assert texts(store.query("#c", limit=3, latest=True)) == ["text 7", "text 8", "text 9"]
        assert store.query("#other", limit=3) == []
        assert store.query("#c", limit=0) == []

    def test_bounds_are_exclusive(self, make: Factory) -> None:
        store = make()
        fill(store, 10)
        p3, p7 = store.find("#c", "id3"), store.find("#c", "id7")
        assert p3 is not None and p7 is not None
        assert texts(store.query("#c", after=p3, before=p7, limit=10)) == [
            "text 4",
            "text 5",
            "text 6",
        ]
        assert texts(store.query("#c", after=p3, limit=2)) == ["text 4", "text 5"]
        assert texts(store.query("#c", before=p7, limit=2, latest=True)) == ["text 5", "text 6"]

    def test_timestamp_bounds(self, make: Factory) -> None:
        store = make()
        fill(store, 10)
        ms5 = int((T0 + 5) * 1000)
        assert texts(store.query("#c", after=(ms5, MAX_SEQ), limit=2)) == ["text 6", "text 7"]
        assert texts(store.query("#c", before=(ms5, 0), limit=2, latest=True)) == [
            "text 3",
            "text 4",
        ]

    def test_keys_are_separate(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, "#a"))
        store.append(msg(2, "#b"))
        store.append(msg(3, "#a"))
        store.commit_pending()
        assert texts(store.query("#a", limit=10)) == ["text 1", "text 3"]
        assert store.find("#b", "id1") is None  # a msgid belongs to its conversation

    def test_tagmsg_is_a_position_but_not_replayed(self, make: Factory) -> None:
        store = make()
        store.append(msg(1))
        store.append(msg(2, command="TAGMSG"))
        store.append(msg(3))
        store.commit_pending()
        assert texts(store.query("#c", limit=10)) == ["text 1", "text 3"]
        p2 = store.find("#c", "id2")
        assert p2 is not None
        assert texts(store.query("#c", after=p2, limit=10)) == ["text 3"]

    def test_order_is_relay_order_even_when_the_clock_goes_back(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, at=T0 + 10))
        store.append(msg(2, at=T0 + 5))  # the clock stepped back
        store.append(msg(3, at=T0 + 11))
        store.commit_pending()
        entries = store.query("#c", limit=10)
        assert texts(entries) == ["text 1", "text 2", "text 3"]
        assert entries[1].time_ms == entries[0].time_ms  # clamped, never earlier
        p1 = store.find("#c", "id1")
        assert p1 is not None
        assert texts(store.query("#c", after=p1, limit=10)) == ["text 2", "text 3"]

    def test_unknown_msgid(self, make: Factory) -> None:
        store = make()
        fill(store, 3)
        assert store.find("#c", "nope") is None


class TestPrivateReaders:
    KEY = conversation_key("alice", "bob")

    def test_reader_sees_its_connection_and_its_account(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, self.KEY, source="bob!~b@h"))  # to alice, before she connected
        store.append(msg(2, self.KEY, source="alice!~a@h", account="al"))  # sent as account al
        store.append(msg(3, self.KEY, source="bob!~b@h", to_account="al"))  # received as al
        store.append(msg(4, self.KEY, source="bob!~b@h"))  # during her connection
        store.commit_pending()
        since = int((T0 + 4) * 1000)
        anyone = Reader(since, None)
        assert texts(store.query(self.KEY, limit=10, reader=anyone)) == ["text 4"]
        logged_in = Reader(since, "al")
        assert texts(store.query(self.KEY, limit=10, reader=logged_in)) == [
            "text 2",
            "text 3",
            "text 4",
        ]
        assert len(store.query(self.KEY, limit=10)) == 4  # no reader: no filter

    def test_the_limit_counts_visible_messages(self, make: Factory) -> None:
        store = make()
        for n in range(10):
            store.append(msg(n, self.KEY, account="al" if n % 2 else None))
        store.commit_pending()
        got = store.query(self.KEY, limit=3, latest=True, reader=Reader(10**15, "al"))
        assert texts(got) == ["text 5", "text 7", "text 9"]

    def test_conversations_of(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, conversation_key("alice", "bob")))
        store.append(msg(2, conversation_key("carol", "alice")))
        store.append(msg(3, conversation_key("bob", "carol")))
        store.append(msg(4, "#c"))
        store.commit_pending()
        store.append(msg(5, conversation_key("alice", "dave")))  # still buffered
        convs = store.conversations_of("alice")
        assert [c.key for c in convs] == ["alice bob", "alice carol", "alice dave"]
        assert [c.latest.message.msgid for c in convs if c.latest] == ["id1", "id2", "id5"]


class TestTargets:
    """CHATHISTORY TARGETS in the store: one bounded read (issue 17 item 5)."""

    def test_window_limit_order_and_channels(self, make: Factory) -> None:
        store = make()
        for n in range(10):  # ten conversations of alice, one message each, a second apart
            store.append(msg(n, conversation_key("alice", f"u{n}")))
        store.append(msg(20, conversation_key("bob", "carol")))  # not hers
        store.append(msg(21, "#c"))
        store.append(msg(22, "#other"))
        store.commit_pending()
        everyone = Reader(0)

        def keys(**kw: Any) -> list[str]:
            args = {"after_ms": 0, "before_ms": 10**15, "limit": 50, "newest": False}
            args.update(kw)
            got = store.targets("alice", ["#c"], reader=everyone, **args)
            return [e.message.key for e in got]

        assert keys() == [conversation_key("alice", f"u{n}") for n in range(10)] + ["#c"]
        assert keys(limit=2) == ["alice u0", "alice u1"]
        assert keys(limit=2, newest=True) == ["alice u9", "#c"]
        ms = int((T0 + 3) * 1000)
        assert keys(after_ms=ms, before_ms=ms + 3000) == ["alice u4", "alice u5"]  # exclusive

    def test_a_conversation_counts_at_its_newest_message(self, make: Factory) -> None:
        store = make()
        key = conversation_key("alice", "bob")
        store.append(msg(1, key))
        store.append(msg(5, key))
        store.commit_pending()
        store.append(msg(9, conversation_key("alice", "dave")))  # buffered: counted too
        got = store.targets(
            "alice", [], after_ms=0, before_ms=10**15, limit=10, newest=False, reader=Reader(0)
        )
        assert [(e.message.key, e.message.msgid) for e in got] == [
            ("alice bob", "id5"),
            ("alice dave", "id9"),
        ]
        until = int((T0 + 5) * 1000)  # only the first message is in the window: not listed
        got = store.targets(
            "alice", [], after_ms=0, before_ms=until, limit=10, newest=False, reader=Reader(0)
        )
        assert got == []

    def test_private_visibility(self, make: Factory) -> None:
        store = make()
        store.append(msg(1, conversation_key("bob", "old"), source="old!~o@h"))
        store.append(msg(2, conversation_key("bob", "acct"), source="bob!~b@h", account="bobby"))
        store.commit_pending()
        tip = store.tip()
        store.append(msg(2, conversation_key("bob", "new")))  # same second, after the tip
        store.commit_pending()

        def keys(reader: Reader) -> list[str]:
            got = store.targets(
                "bob", [], after_ms=0, before_ms=10**15, limit=10, newest=False, reader=reader
            )
            return [e.message.key for e in got]

        assert keys(Reader(tip[0], None, tip[1])) == ["bob new"]
        assert keys(Reader(tip[0], "bobby", tip[1])) == ["acct bob", "bob new"]

    def test_many_conversations_cost_the_limit(self, make: Factory) -> None:
        store = make()
        for n in range(2000):
            store.append(msg(n, conversation_key("target", f"u{n}")))
        store.commit_pending()
        got = store.targets(
            "target", [], after_ms=0, before_ms=10**15, limit=5, newest=True, reader=Reader(0)
        )
        assert [e.message.msgid for e in got] == [f"id{n}" for n in range(1995, 2000)]

    def test_tip_is_the_newest_position(self, make: Factory) -> None:
        store = make()
        fill(store, 3, commit=False)
        assert store.tip() == store.query("#c", limit=1, latest=True)[0].position


class TestConversation:
    def test_latest_and_unknown(self, make: Factory) -> None:
        store = make()
        assert store.conversation("#c") is None
        fill(store, 3)
        conv = store.conversation("#c")
        assert conv is not None and conv.latest is not None
        assert conv.latest.message.msgid == "id2"
        assert conv.trimmed is None
        store.append(msg(9))
        conv = store.conversation("#c")
        assert conv is not None and conv.latest is not None
        assert conv.latest.message.msgid == "id9"  # buffered counts


class TestRetention:
    def test_by_age(self, make: Factory) -> None:
        store = make(max_age_days=1)
        store.append(msg(9, "#d", at=T0))
        for n in range(5):
            store.append(msg(n, at=T0 + n * 3600))  # one an hour
        store.commit_pending()
        now = T0 + 86400 + 2.5 * 3600  # everything older than T0 + 2.5 h goes
        assert store.prune(now) == 4
        assert texts(store.query("#c", limit=10)) == ["text 3", "text 4"]
        assert store.query("#d", limit=10) == []
        assert store.find("#c", "id2") is None
        conv = store.conversation("#c")
        assert conv is not None and conv.trimmed is not None
        assert conv.trimmed[0] == int((T0 + 2 * 3600) * 1000)  # the newest deleted
        # Nothing left of #d: it is forgotten, row and all (issue 17 item 5).
        assert store.conversation("#d") is None
        assert store.prune(now) == 0

    def test_by_count_per_conversation(self, make: Factory) -> None:
        store = make(max_per_target=3)
        fill(store, 10, "#a")
        fill(store, 2, "#b")
        assert store.prune(T0) == 7
        assert texts(store.query("#a", limit=10)) == ["text 7", "text 8", "text 9"]
        assert texts(store.query("#b", limit=10)) == ["text 0", "text 1"]
        conv = store.conversation("#a")
        assert conv is not None and conv.trimmed is not None
        p7 = store.find("#a", "id7")
        assert p7 is not None and conv.trimmed < p7
        assert store.conversation("#b") is not None
        fill(store, 1, "#a")  # counts keep up after pruning
        assert store.prune(T0) == 1

    def test_nothing_configured_keeps_everything(self, make: Factory) -> None:
        store = make()
        fill(store, 5)
        assert store.prune(T0 + 10**9) == 0


class TestConcurrency:
    def test_append_during_commits(self, make: Factory) -> None:
        """One thread appends (the loop) while another commits (the writer): nothing is lost,
        nothing doubled, and the order is the order of appending."""
        store = make()
        total = 5000
        done = threading.Event()

        def appender() -> None:
            for n in range(total):
                store.append(msg(n, at=T0))
            done.set()

        thread = threading.Thread(target=appender)
        thread.start()
        commits = 0
        while True:  # at least once, even when the appender is done before the first look
            store.commit_pending()
            commits += 1
            store.query("#c", limit=1, latest=True)
            if done.is_set():
                break
        thread.join()
        store.commit_pending()
        got = store.query("#c", limit=total + 1)
        assert [e.message.msgid for e in got] == [f"id{n}" for n in range(total)]
        assert commits >= 1 and not store.has_pending()


# --- SQLite only -----------------------------------------------------------------------------


def test_sqlite_append_while_a_commit_is_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the loop appends while the writer thread is inside a commit waits for the next
    one, and reads see both the batch being written and the new records, once each."""
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    real = store._write
    during: list[list[str]] = []

    def writing(batch: Any) -> None:
        store.append(msg(2))
        during.append(texts(store.query("#c", limit=10)))
        real(batch)
        during.append(texts(store.query("#c", limit=10)))

    try:
        store.append(msg(1))
        monkeypatch.setattr(store, "_write", writing)
        store.commit_pending()
        monkeypatch.setattr(store, "_write", real)
        assert during == [["text 1", "text 2"], ["text 1", "text 2"]]
        assert store.has_pending()  # msg 2 came during the commit: the next one takes it
        store.commit_pending()
        assert not store.has_pending()
        assert store.commits == 2
    finally:
        store.close()


def test_sqlite_survives_reopening_and_orders_the_next_run_after(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    first = SqliteHistory(path, maintenance_interval=None)
    fill(first, 3)
    first.close()
    again = SqliteHistory(path, maintenance_interval=None)
    try:
        assert texts(again.query("#c", limit=10)) == ["text 0", "text 1", "text 2"]
        again.append(msg(7, at=T0 - 3600))  # this machine's clock is now an hour behind
        again.commit_pending()
        assert texts(again.query("#c", limit=10))[-1] == "text 7"
        p2 = again.find("#c", "id2")
        assert p2 is not None
        assert texts(again.query("#c", after=p2, limit=10)) == ["text 7"]
    finally:
        again.close()


def test_sqlite_file_is_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    SqliteHistory(path, maintenance_interval=None).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    SqliteHistory(path, maintenance_interval=None).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        SqliteHistory(path, maintenance_interval=None)


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        SqliteHistory(path, maintenance_interval=None)


def test_open_history_cannot_create_the_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    config = replace(load_config(environ={}), data_dir=str(blocker / "data"))
    with pytest.raises(StoreError, match="cannot create the data directory"):
        open_history(config)


def test_open_history_creates_the_data_dir(tmp_path: Path) -> None:
    config = replace(load_config(environ={}), data_dir=str(tmp_path / "a" / "b"))
    store = open_history(config)
    try:
        assert (tmp_path / "a" / "b" / "history.db").exists()
        assert store.max_per_target == config.history.max_per_target
    finally:
        store.close()


def test_sqlite_failed_commit_keeps_the_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        store.append(msg(1))
        real = store._write

        def broken(batch: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(store, "_write", broken)
        with pytest.raises(sqlite3.OperationalError):
            store.commit_pending()
        assert store.has_pending()
        assert texts(store.query("#c", limit=10)) == ["text 1"]
        monkeypatch.setattr(store, "_write", real)
        store.append(msg(2))
        store.commit_pending()
        assert not store.has_pending()
    finally:
        store.close()
    reopened = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        assert texts(reopened.query("#c", limit=10)) == ["text 1", "text 2"]
    finally:
        reopened.close()


def test_sqlite_retention_thread_prunes_on_its_own(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db", max_per_target=2, maintenance_interval=0.02)
    try:
        fill(store, 5)
        deadline = time.monotonic() + 5
        while len(store.query("#c", limit=10)) > 2:
            assert time.monotonic() < deadline, "the retention thread never pruned"
            time.sleep(0.01)
        assert texts(store.query("#c", limit=10)) == ["text 3", "text 4"]
    finally:
        store.close()


def test_sqlite_close_commits_what_is_pending(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    store.append(msg(1))
    store.close()
    store.close()  # idempotent
    again = SqliteHistory(tmp_path / "h.db", maintenance_interval=None)
    try:
        assert texts(again.query("#c", limit=10)) == ["text 1"]
    finally:
        again.close()


def test_step_3_fills_the_latest_of_each_conversation(tmp_path: Path) -> None:
    """Schema step 3: latest_ms/latest_seq filled from the messages; empty rows dropped."""
    path = tmp_path / "v2.db"
    store = SqliteHistory(path, maintenance_interval=None)
    store.append(msg(1, conversation_key("alice", "bob")))
    store.append(msg(2, conversation_key("alice", "bob")))
    store.append(msg(3, "#c"))
    store.commit_pending()
    store.close()
    db = sqlite3.connect(path)  # as a file from a build without step 3 (at version 3 or more)
    db.execute("DROP INDEX conversations_a_latest")
    db.execute("DROP INDEX conversations_b_latest")
    db.execute("ALTER TABLE conversations DROP COLUMN latest_ms")
    db.execute("ALTER TABLE conversations DROP COLUMN latest_seq")
    db.execute("INSERT INTO conversations (key, a, b) VALUES ('gone x', 'gone', 'x')")
    db.commit()
    db.close()
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        got = store.targets(
            "alice", ["#c"], after_ms=0, before_ms=10**15, limit=9, newest=False, reader=Reader(0)
        )
        assert [e.message.msgid for e in got] == ["id2", "id3"]
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert (
            db.execute("SELECT count(*) FROM conversations WHERE key = 'gone x'").fetchone()[0] == 0
        )
        plan = " ".join(
            str(row)
            for row in db.execute(
                "EXPLAIN QUERY PLAN SELECT key FROM conversations WHERE a = 'alice'"
                " AND latest_ms > 0 AND latest_ms < 9 ORDER BY latest_ms LIMIT 5"
            )
        )
        assert "conversations_a_latest" in plan
    finally:
        db.close()


def test_retention_forgets_conversations_with_nothing_left(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "r.db", maintenance_interval=None, max_age_days=1)
    for n in range(50):
        store.append(msg(n, conversation_key("alice", f"u{n}"), at=T0))
    store.append(msg(99, conversation_key("alice", "kept"), at=T0 + 86400))
    store.commit_pending()
    assert store.prune(T0 + 86400 + 10) == 50
    db = sqlite3.connect(tmp_path / "r.db")
    try:
        assert db.execute("SELECT key FROM conversations").fetchall() == [("alice kept",)]
    finally:
        db.close()
        store.close()


def test_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    # A version-1 file is a version-2 file without the `counted` table and with version 1.
    path = tmp_path / "old.db"
    store = SqliteHistory(path, maintenance_interval=None, max_per_target=2)
    for n in range(3):
        store.append(msg(n))
    store.append(msg(3, "#d"))
    store.commit_pending()
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE counted")
    # ... and without what later steps added (step 4: tests/unit/test_store_ircv3.py).
    db.execute("DROP INDEX messages_redactions")
    for column in ("lines", "redacts", "redacted"):
        db.execute(f"ALTER TABLE messages DROP COLUMN {column}")
    db.execute("DROP TABLE read_markers")
    for table in ("idem_keys", "idem_secret"):  # version 5's
        db.execute(f"DROP TABLE {table}")
    db.execute("UPDATE schema_version SET version = 1")
    db.execute(
        "UPDATE conversations SET count = (SELECT COUNT(*) FROM messages m"
        " WHERE m.key = conversations.key)"
    )
    db.commit()
    db.close()
    store = SqliteHistory(path, maintenance_interval=None, max_per_target=2)
    try:
        assert texts(store.query("#c", limit=10)) == ["text 0", "text 1", "text 2"]
        conv = store.conversation("#c")
        assert conv is not None and conv.latest is not None
        assert conv.latest.message.text == "text 2"
        assert store.prune() == 1  # the count survived the migration: one over the limit
        assert texts(store.query("#c", limit=10)) == ["text 1", "text 2"]
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()
