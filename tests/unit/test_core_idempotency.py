"""Exactly-once relaying in memory: idempotency keys, IDEM TOKEN, the window, the bounds.

The core keeps keys in a MemoryHistory (``server/idempotency.py``, ``store/keys.py``); the
restart tests use the SQLite store, as the server does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relaychat.config import Idempotency
from relaychat.protocol.message import Message, parse
from relaychat.server.idempotency import CAP, TAG, KeyIndex
from relaychat.store import MemoryHistory
from relaychat.store.sqlite import SqliteHistory
from tests.harness import CoreHarness, free_config
from tests.unit.core_support import SERVER, src

CAPS = ("echo-message", "labeled-response", "batch", "message-tags", "server-time", CAP)
K1 = "AAAAAAAAAAAAAAAAAAAAAA"
K2 = "BBBBBBBBBBBBBBBBBBBBBB"


def make(store: Any = None, **idem: Any) -> CoreHarness:
    h = CoreHarness(free_config(idempotency=Idempotency(**idem)))
    store = MemoryHistory() if store is None else store
    h.core.history = store
    h.core.extra_caps["draft/chathistory"] = ""
    h.core.enable_idempotency(store)
    return h


@pytest.fixture
def h() -> CoreHarness:
    return make()


def register(h: CoreHarness, nick: str, *caps: str, token: str | None = "") -> str | None:
    """Connect ``nick`` with ``caps``; with the idempotency cap, ask for (or present) a token.

    Returns:
        The token the server gave, when one was asked for.
    """
    h.open(nick)
    h.send(nick, "CAP LS 302")
    if caps:
        h.send(nick, "CAP REQ :" + " ".join(caps))
    got = None
    if CAP in caps and token is not None:
        h.send(nick, f"IDEM TOKEN {token}".strip())
        for m in h.messages(nick):
            if m.command == "IDEM":
                got = m.params[1]
    h.send(nick, f"NICK {nick}")
    h.send(nick, f"USER {nick} 0 * :{nick}")
    h.send(nick, "CAP END")
    assert h.users[nick].registered
    h.lines(nick)
    return got


def keyed(text: str, key: str, target: str = "#a", label: str = "", verb: str = "PRIVMSG") -> str:
    tags = f"@{TAG}={key}" + (f";label={label}" if label else "")
    body = f" :{text}" if verb != "TAGMSG" else ""
    return f"{tags} {verb} {target}{body}"


def room(h: CoreHarness, *senders: str, reader: str = "bob") -> None:
    """``senders`` (registered already) and a plain ``reader`` in #a."""
    if reader not in h.users:
        h.connect(reader)
    for nick in (reader, *senders):
        h.send(nick, "JOIN #a")
    h.clear()


def texts(h: CoreHarness, nick: str) -> list[str]:
    return [m.params[1] for m in h.messages(nick) if m.command == "PRIVMSG"]


def echoes(h: CoreHarness, nick: str) -> list[tuple[str, str]]:
    """(target, msgid) of the PRIVMSG echoes ``nick`` got."""
    return [(m.params[0], m.tags["msgid"]) for m in h.messages(nick) if m.command == "PRIVMSG"]


class TestCapabilityAndToken:
    def test_offered_with_the_window_and_key_length(self, h: CoreHarness) -> None:
        h.open("x")
        h.send("x", "CAP LS 302")
        assert f"{CAP}=window=600,keylen=64" in " ".join(h.lines("x"))

    def test_not_offered_without_a_store(self) -> None:
        h = CoreHarness(free_config())
        h.open("x")
        h.send("x", "CAP LS 302")
        assert CAP not in " ".join(h.lines("x"))
        h.send("x", "IDEM TOKEN")
        assert h.lines("x") == [
            f":{SERVER} FAIL IDEM DISABLED :Idempotency keys are off on this server"
        ]

    def test_token_needs_the_cap(self, h: CoreHarness) -> None:
        h.open("x")
        h.send("x", "IDEM TOKEN")
        (line,) = h.lines("x")
        assert line.startswith(f":{SERVER} FAIL IDEM NEED_CAP {CAP} :")

    def test_a_token_is_given_and_taken_back(self, h: CoreHarness) -> None:
        token = register(h, "alice", *CAPS)
        assert token is not None and len(token) == 45  # 22 + "." + 22
        first = h.users["alice"].idem_id
        assert first is not None and first.startswith("t:")
        again = register(h, "alice2", *CAPS, token=token)
        assert again == token and h.users["alice2"].idem_id == first

    def test_a_forged_or_foreign_token_gets_a_new_identity(self, h: CoreHarness) -> None:
        token = register(h, "alice", *CAPS)
        assert token is not None
        ident = token.split(".")[0]
        forged = ident + "." + "A" * 22
        h.open("mallory")
        h.send("mallory", "CAP REQ :" + CAP)
        h.lines("mallory")
        h.send("mallory", f"IDEM TOKEN {forged}")
        warn, reply = h.messages("mallory")
        assert (warn.command, warn.params[:2]) == ("WARN", ("IDEM", "INVALID_TOKEN"))
        assert reply.command == "IDEM" and reply.params[1] != token
        assert h.users["mallory"].idem_id != h.users["alice"].idem_id
        other = make()  # another server: another secret
        assert other.core.keys is not None and other.core.keys.redeem(token) is None

    def test_unknown_subcommand(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        h.send("alice", "IDEM FOO")
        (line,) = h.lines("alice")
        assert line.startswith(f":{SERVER} FAIL IDEM UNKNOWN_SUBCOMMAND FOO :")


class TestDeduplication:
    def test_a_repeat_is_not_relayed_and_gets_the_first_echo(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("hello", K1, label="l1"))
        (echo,) = h.messages("alice")
        assert echo.tags["label"] == "l1" and echo.tags[TAG] == K1
        assert texts(h, "bob") == ["hello"]
        h.now += 30
        h.send("alice", keyed("hello", K1, label="l2"))
        (again,) = h.messages("alice")
        assert again.tags["label"] == "l2"
        assert again.tags["msgid"] == echo.tags["msgid"] and again.tags["time"] == echo.tags["time"]
        assert again.source == echo.source and again.params == echo.params
        assert h.lines("bob") == []
        assert h.core.history is not None
        conv = h.core.history.query("#a", limit=10)
        assert [e.message.text for e in conv] == ["hello"]

    def test_without_echo_message_a_repeat_is_acknowledged(self, h: CoreHarness) -> None:
        register(h, "alice", "labeled-response", "batch", "message-tags", CAP)
        room(h, "alice")
        h.send("alice", keyed("one", K1, label="a"))
        assert h.lines("alice") == [f"@label=a :{SERVER} ACK"]
        h.send("alice", keyed("one", K1, label="b"))
        assert h.lines("alice") == [f"@label=b :{SERVER} ACK"]
        assert texts(h, "bob") == ["one"]

    def test_after_the_window_the_key_is_new_again(self) -> None:
        h = make(window=60.0)
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("one", K1))
        h.now += 59
        h.send("alice", keyed("one", K1))
        assert texts(h, "bob") == ["one"]
        h.now += 2
        h.send("alice", keyed("one", K1))
        assert texts(h, "bob") == ["one"]
        keys = h.core.keys
        assert keys is not None and len(keys) == 1

    def test_other_senders_keys_are_their_own(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        register(h, "carol", *CAPS)
        h.connect("dave")
        h.core.set_account(h.users["dave"], "dave")
        h.send("dave", f"CAP REQ :{CAP}")
        room(h, "alice", "carol", "dave")
        for nick in ("alice", "carol", "dave"):
            h.send(nick, keyed(f"from {nick}", K1))
        assert texts(h, "bob") == ["from alice", "from carol", "from dave"]

    def test_the_token_carries_the_identity_across_connections(self, h: CoreHarness) -> None:
        token = register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("once", K1))
        assert texts(h, "bob") == ["once"]
        h.send("alice", "QUIT")
        register(h, "alice_", *CAPS, token=token)  # the reconnect, under a fallback nick
        register(h, "eve", *CAPS)  # a stranger with the same key
        room(h, "alice_", "eve")
        h.send("alice_", keyed("once", K1))
        (echo,) = h.messages("alice_")
        assert echo.source == src("alice")  # the first answer, as it was
        h.send("eve", keyed("eve's", K1))
        assert texts(h, "bob") == ["eve's"]

    def test_an_account_is_the_identity(self, h: CoreHarness) -> None:
        register(h, "a1", *CAPS)
        register(h, "a2", *CAPS)  # another connection, another token: same account
        for nick in ("a1", "a2"):
            h.core.set_account(h.users[nick], "ann")
        room(h, "a1", "a2")
        h.send("a1", keyed("hi", K1))
        h.send("a2", keyed("hi", K1))
        assert texts(h, "bob") == ["hi"]

    def test_a_client_without_the_cap_gets_no_deduplication(self, h: CoreHarness) -> None:
        register(h, "old", "message-tags")
        h.connect("tagged")
        h.send("tagged", "CAP REQ :message-tags")
        room(h, "old", reader="tagged")
        h.send("old", keyed("x", K1))
        h.send("old", keyed("x", K1))
        got = h.messages("tagged")
        assert [m.params[1] for m in got] == ["x", "x"]
        assert all(m.tags[TAG] == K1 for m in got)  # an ordinary client-only tag

    def test_tagmsg_notice_and_private_messages(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        h.connect("bob")
        h.send("bob", "CAP REQ :message-tags")
        room(h, "alice")
        for _ in range(2):
            h.send(
                "alice",
                keyed("", K1, verb="TAGMSG").replace(f"{TAG}=", "+typing=active;" + TAG + "="),
            )
            h.send("alice", keyed("note", K2, verb="NOTICE"))
            h.send("alice", keyed("psst", "C" * 22, target="bob"))
        got = [(m.command, m.params[0]) for m in h.messages("bob")]
        assert got == [("TAGMSG", "#a"), ("NOTICE", "#a"), ("PRIVMSG", "bob")]
        echoes = [m.command for m in h.messages("alice")]
        assert echoes == ["TAGMSG", "NOTICE", "PRIVMSG"] * 2

    def test_several_targets_are_answered_together(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("bob", "JOIN #b")
        h.send("alice", "JOIN #b")
        h.clear()
        h.send("alice", keyed("both", K1, target="#a,#b", label="x"))
        first = [
            (m.params[0], m.tags["msgid"]) for m in h.messages("alice") if m.command == "PRIVMSG"
        ]
        h.send("alice", keyed("both", K1, target="#a,#b", label="y"))
        second = [
            (m.params[0], m.tags["msgid"]) for m in h.messages("alice") if m.command == "PRIVMSG"
        ]
        assert first == second and [t for t, _ in first] == ["#a", "#b"]
        assert texts(h, "bob") == ["both", "both"]

    def test_refused_messages_keep_no_key(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        h.connect("bob")
        h.send("bob", "JOIN #a")
        h.clear()
        h.send("alice", keyed("too early", K1))  # +n: not a member yet
        assert [m.command for m in h.messages("alice")] == ["404"]
        h.send("alice", "JOIN #a")
        h.clear()
        h.send("alice", keyed("too early", K1))
        assert texts(h, "bob") == ["too early"]


class TestBadKeys:
    @pytest.mark.parametrize(
        "key",
        ["x" * 65, "has.dot", "sp\\sace", "é" * 4, "semi\\:colon"],
        ids=["too-long", "dot", "space", "non-ascii", "semicolon"],
    )
    def test_refused_with_fail_and_not_relayed(self, h: CoreHarness, key: str) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("bad", key, label="q"))
        (line,) = h.messages("alice")
        assert line.command == "FAIL" and line.tags["label"] == "q"
        assert line.params[:3] == ("PRIVMSG", "INVALID_IDEMPOTENCY_KEY", "#a")
        assert h.lines("bob") == []

    def test_an_empty_key_is_refused(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", f"@{TAG}= PRIVMSG #a :x")
        assert [m.command for m in h.messages("alice")] == ["FAIL"]
        assert h.lines("bob") == []

    def test_the_longest_key_is_fine(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("ok", "k" * 64))
        assert texts(h, "bob") == ["ok"]


class TestBounds:
    def test_memory_is_bounded_and_the_store_answers_beyond(self) -> None:
        h = make(max_keys=3)
        register(h, "alice", *CAPS)
        room(h, "alice")
        keys = [chr(ord("a") + i) * 22 for i in range(8)]
        for i, key in enumerate(keys):
            h.send("alice", keyed(f"m{i}", key))
        index = h.core.keys
        assert index is not None and len(index) == 3
        h.send("alice", keyed("m0", keys[0]))  # forgotten by the index, not by the store
        assert texts(h, "bob") == [f"m{i}" for i in range(8)]

    def test_a_key_and_its_message_are_stored_in_one_step(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS)
        room(h, "alice")
        store = h.core.history
        assert isinstance(store, MemoryHistory)
        calls: list[str] = []
        real_append, real_keyed = store.append, store.append_keyed
        store.append = lambda m: (calls.append("append"), real_append(m))[1]  # type: ignore[method-assign]
        store.append_keyed = lambda r, ms: (calls.append(f"keyed {len(ms)}"), real_keyed(r, ms))[1]  # type: ignore[method-assign]
        h.send("alice", keyed("one", K1))
        h.send("alice", "PRIVMSG #a :no key")
        assert calls == ["keyed 1", "append"]


class TestRestart:
    def test_keys_and_tokens_survive_a_restart(self, tmp_path: Path) -> None:
        path = tmp_path / "history.db"
        first = SqliteHistory(path, maintenance_interval=None)
        h = make(first)
        token = register(h, "alice", *CAPS)
        room(h, "alice")
        h.send("alice", keyed("before", K1, label="a"))
        (echo,) = h.messages("alice")
        first.close()  # what a restart finds: the committed file

        second = SqliteHistory(path, maintenance_interval=None)
        try:
            h2 = make(second)
            h2.now = h.now + 120
            again = register(h2, "alice", *CAPS, token=token)
            assert again == token
            room(h2, "alice")
            h2.send("alice", keyed("before", K1, label="b"))
            (replay,) = h2.messages("alice")
            assert replay.tags["msgid"] == echo.tags["msgid"] and replay.tags["label"] == "b"
            assert h2.lines("bob") == []
            h2.send("alice", keyed("after", K2))
            assert texts(h2, "bob") == ["after"]
        finally:
            second.close()

    def test_a_restart_loads_the_window_into_memory(self, tmp_path: Path) -> None:
        path = tmp_path / "history.db"
        store = SqliteHistory(path, maintenance_interval=None)
        h = make(store)
        register(h, "alice", *CAPS)
        room(h, "alice")
        for i in range(5):
            h.send("alice", keyed(f"m{i}", chr(ord("a") + i) * 22))
            h.now += 150  # the first falls out of the 600 s window
        store.commit_pending()
        index = KeyIndex(store, window=600.0, max_keys=100, now=h.now)
        assert len(index) == 4
        small = KeyIndex(store, window=600.0, max_keys=2, now=h.now)
        assert len(small) == 2
        assert small.lookup(h.users["alice"].idem_id or "", "c" * 22, h.now) is not None
        store.close()


def test_wire_form_of_a_repeat_is_a_plain_echo(h: CoreHarness) -> None:
    """A client that knows nothing of keys sees a repeat exactly like the first echo."""
    register(h, "alice", *CAPS)
    room(h, "alice")
    h.send("alice", keyed("same", K1))
    first = h.lines("alice")
    h.send("alice", keyed("same", K1))
    assert h.lines("alice") == first
    assert isinstance(parse(first[0]), Message)


class TestMultiline:
    """A keyed draft/multiline batch: the key on the BATCH + line; a resent batch with the same
    key is not relayed again and gets the original answer (the echo batch)."""

    ML = "draft/multiline"
    CONCAT = "draft/multiline-concat"

    def send_batch(self, h: CoreHarness, key: str, label: str, target: str = "#a") -> None:
        h.send("alice", f"@{TAG}={key};label={label} BATCH +m {self.ML} {target}")
        h.send("alice", f"@batch=m PRIVMSG {target} :first")
        h.send("alice", f"@batch=m;{self.CONCAT} PRIVMSG {target} :, glued")
        h.send("alice", f"@batch=m PRIVMSG {target} :second")
        h.send("alice", "BATCH -m")

    def setup(self, h: CoreHarness) -> None:
        register(h, "alice", *CAPS, self.ML)
        register(h, "carol", "batch", "message-tags", self.ML)
        room(h, "alice", "carol")

    def check_repeat(self, h: CoreHarness, first: list[Message]) -> None:
        again = h.messages("alice")
        assert again[0].tags["label"] == "l2" and first[0].tags["label"] == "l1"
        for m in (first[0], again[0]):
            del m.tags["label"]

        def shape(got: list[Message]) -> list[tuple[object, ...]]:
            """The messages without their batch reference (each batch has its own)."""
            ref = got[0].params[0][1:]
            assert all(m.tags.get("batch") == ref for m in got[1:-1])
            assert got[-1].params == ("-" + ref,)
            return [
                (m.command, m.params[1:], {k: v for k, v in m.tags.items() if k != "batch"})
                for m in got
            ]

        assert shape(again) == shape(first)
        assert h.lines("bob") == []
        if "carol" in h.users:
            assert h.lines("carol") == []

    def test_a_resent_batch_is_not_relayed_twice(self, h: CoreHarness) -> None:
        self.setup(h)
        self.send_batch(h, K1, "l1")
        first = h.messages("alice")
        assert [m.command for m in first] == ["BATCH", "PRIVMSG", "PRIVMSG", "PRIVMSG", "BATCH"]
        assert first[0].tags[TAG] == K1 and first[0].tags["msgid"]
        assert texts(h, "bob") == ["first", ", glued", "second"]  # line by line, no cap
        assert [m.command for m in h.messages("carol")] == ["BATCH"] + ["PRIVMSG"] * 3 + ["BATCH"]
        h.now += 30
        self.send_batch(h, K1, "l2")
        self.check_repeat(h, first)
        assert h.core.history is not None
        kept = h.core.history.query("#a", limit=10)
        assert [(e.message.text, e.message.multiline) for e in kept] == [
            ("first\n, glued\nsecond", (False, True, False))
        ]

    def test_a_key_first_used_by_a_plain_message_answers_with_it(self, h: CoreHarness) -> None:
        self.setup(h)
        h.send("alice", keyed("plain", K1, label="l1"))
        (echo,) = h.messages("alice")
        self.send_batch(h, K1, "l2")
        (again,) = h.messages("alice")
        assert again.params == echo.params and again.tags["msgid"] == echo.tags["msgid"]
        assert texts(h, "bob") == ["plain"]

    def test_private_batch_and_without_echo(self, h: CoreHarness) -> None:
        self.setup(h)
        self.send_batch(h, K1, "l1", target="bob")
        first = h.messages("alice")
        assert texts(h, "bob") == ["first", ", glued", "second"]
        self.send_batch(h, K1, "l2", target="bob")
        self.check_repeat(h, first)
        register(h, "dave", "labeled-response", "batch", "message-tags", CAP, self.ML)
        h.send("dave", f"@{TAG}={K2};label=d1 BATCH +m {self.ML} bob")
        h.send("dave", "@batch=m PRIVMSG bob :x")
        h.send("dave", "BATCH -m")
        h.send("dave", f"@{TAG}={K2};label=d2 BATCH +m {self.ML} bob")
        h.send("dave", "@batch=m PRIVMSG bob :x")
        h.send("dave", "BATCH -m")
        assert h.lines("dave") == [f"@label=d1 :{SERVER} ACK", f"@label=d2 :{SERVER} ACK"]
        assert texts(h, "bob") == ["x"]

    def test_a_bad_key_is_refused(self, h: CoreHarness) -> None:
        self.setup(h)
        self.send_batch(h, "bad*key", "l1")
        (fail,) = h.messages("alice")
        assert fail.command == "FAIL" and fail.params[:3] == (
            "BATCH",
            "INVALID_IDEMPOTENCY_KEY",
            "#a",
        )
        assert fail.tags["label"] == "l1"
        assert h.lines("bob") == []

    def test_the_answer_survives_a_restart(self, tmp_path: Path) -> None:
        path = tmp_path / "history.db"
        first_store = SqliteHistory(path, maintenance_interval=None)
        h = make(first_store)
        token = register(h, "alice", *CAPS, self.ML)
        room(h, "alice")
        self.send_batch(h, K1, "l1")
        first = h.messages("alice")
        first_store.close()
        second = SqliteHistory(path, maintenance_interval=None)
        try:
            h2 = make(second)
            h2.now = h.now + 60
            register(h2, "alice", *CAPS, self.ML, token=token)
            room(h2, "alice")
            self.send_batch(h2, K1, "l2")
            self.check_repeat(h2, first)
        finally:
            second.close()
