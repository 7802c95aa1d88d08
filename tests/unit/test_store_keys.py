"""Idempotency keys in the history stores (``store/keys.py``): both stores, then what only the
SQLite file does (one commit for a key and its messages, reopening, schema step 5, pruning)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaychat.store import MemoryHistory, StoredMessage
from relaychat.store.keys import KeyRecord, join_sent, split_sent
from relaychat.store.sqlite import SCHEMA_VERSION, SqliteHistory

T0 = 1_700_000_000.0

Store = MemoryHistory | SqliteHistory


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    opened: list[Store] = []

    def factory() -> Store:
        store: Store
        if request.param == "memory":
            store = MemoryHistory()
        else:
            store = SqliteHistory(tmp_path / f"h{len(opened)}.db", maintenance_interval=None)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


def record(key: str, at: float = T0, sender: str = "t:abc", n: int = 1) -> KeyRecord:
    return KeyRecord(
        sender=sender,
        key=key,
        time=at,
        source="alice!~alice@h",
        command="PRIVMSG",
        text=f"text {key}",
        tags={"+relaychat.dev/idem": key},
        sent=tuple((f"#c{i}", f"id-{key}-{i}") for i in range(n)),
    )


def message(key: str, at: float = T0) -> StoredMessage:
    return StoredMessage(
        msgid=f"id-{key}-0",
        time=at,
        key="#c0",
        source="alice!~alice@h",
        account=None,
        command="PRIVMSG",
        target="#c0",
        text=f"text {key}",
        tags={"+relaychat.dev/idem": key},
    )


def test_sent_column_round_trip() -> None:
    sent = (("#a", "m1"), ("bob", "m2"))
    assert split_sent(join_sent(sent)) == sent
    assert split_sent("") == ()


def test_recall_within_the_window_before_and_after_commit(make: Callable[[], Store]) -> None:
    store = make()
    store.append_keyed(record("k1", n=2), [message("k1")])
    assert store.has_pending()
    assert store.recall_key("t:abc", "k1", T0 - 10) == record("k1", n=2)  # buffered
    store.commit_pending()
    assert not store.has_pending()
    assert store.recall_key("t:abc", "k1", T0) == record("k1", n=2)
    assert store.recall_key("t:abc", "k1", T0 + 0.001) is None  # older than the window
    assert store.recall_key("t:other", "k1", T0) is None  # another sender's
    assert [e.message.msgid for e in store.query("#c0", limit=5)] == ["id-k1-0"]


def test_recent_keys_newest_first_and_bounded(make: Callable[[], Store]) -> None:
    store = make()
    for i in range(5):
        store.append_keyed(record(f"k{i}", at=T0 + i), [])
    store.commit_pending()
    store.append_keyed(record("k5", at=T0 + 5), [])  # still buffered
    assert [k for _, k, _ in store.recent_keys(T0 + 2, 10)] == ["k5", "k4", "k3", "k2"]
    assert [k for _, k, _ in store.recent_keys(T0, 2)] == ["k5", "k4"]


def test_prune_keys(make: Callable[[], Store]) -> None:
    store = make()
    for i in range(4):
        store.append_keyed(record(f"k{i}", at=T0 + i), [])
    store.commit_pending()
    assert store.prune_keys(T0 + 2) == 2
    assert store.recall_key("t:abc", "k1", 0) is None
    assert store.recall_key("t:abc", "k2", 0) is not None


def test_a_key_used_again_replaces_the_old_record(make: Callable[[], Store]) -> None:
    store = make()
    store.append_keyed(record("k", at=T0), [])
    store.commit_pending()
    store.append_keyed(record("k", at=T0 + 700, n=2), [])
    store.commit_pending()
    assert store.recall_key("t:abc", "k", T0 + 100) == record("k", at=T0 + 700, n=2)


def test_secret_is_kept(make: Callable[[], Store]) -> None:
    store = make()
    assert len(store.key_secret()) == 32
    assert store.key_secret() == store.key_secret()
    assert make().key_secret() != store.key_secret()


# --- the SQLite file ---------------------------------------------------------------------------


def test_a_key_and_its_messages_commit_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    store.append_keyed(record("k1"), [message("k1")])
    real = store._write_keys

    def broken(db: sqlite3.Connection, records: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_write_keys", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.commit_pending()
    # Neither the message nor its key is in the file; both wait for the next commit.
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM idem_keys").fetchone() == (0,)
    assert store.has_pending() and store.recall_key("t:abc", "k1", 0) is not None
    monkeypatch.setattr(store, "_write_keys", real)
    store.commit_pending()
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM idem_keys").fetchone() == (1,)
    db.close()
    store.close()


def test_keys_and_the_secret_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    store = SqliteHistory(path, maintenance_interval=None)
    secret = store.key_secret()
    store.append_keyed(record("k1"), [message("k1")])
    store.close()
    again = SqliteHistory(path, maintenance_interval=None)
    try:
        assert again.key_secret() == secret
        assert again.recall_key("t:abc", "k1", T0) == record("k1")
    finally:
        again.close()


def test_a_version_4_file_gets_step_5(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    store = SqliteHistory(path, maintenance_interval=None)
    store.append(message("old"))
    store.close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE idem_keys")
    db.execute("DROP TABLE idem_secret")
    db.execute("UPDATE schema_version SET version = 4")  # what the release before made
    db.commit()
    db.close()
    store = SqliteHistory(path, maintenance_interval=None)
    try:
        assert [e.message.text for e in store.query("#c0", limit=5)] == ["text old"]
        assert len(store.key_secret()) == 32
        store.append_keyed(record("k1"), [message("k1", T0 + 1)])
        store.commit_pending()
        assert store.recall_key("t:abc", "k1", T0) is not None
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        db.close()


def test_the_maintenance_thread_prunes_expired_keys(tmp_path: Path) -> None:
    store = SqliteHistory(tmp_path / "h.db", maintenance_interval=0.02, key_window=60.0)
    try:
        now = time.time()
        store.append_keyed(record("old", at=now - 120), [])
        store.append_keyed(record("new", at=now), [])
        store.commit_pending()
        deadline = time.monotonic() + 5
        while store.recall_key("t:abc", "old", 0) is not None:
            assert time.monotonic() < deadline, "the maintenance thread never pruned the key"
            time.sleep(0.01)
        assert store.recall_key("t:abc", "new", 0) is not None
    finally:
        store.close()
