"""draft/read-marker in memory (commands/markread.py).

Spec: https://ircv3.net/specs/extensions/read-marker; the cases follow the spec's examples and
its error codes (and irctest's read_marker tests).
"""

from __future__ import annotations

import pytest

from relaychat.protocol.servertime import parse_server_time
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER
from tests.unit.v3_support import client, make

CAP = "draft/read-marker"
TS = "2019-01-04T14:33:26.123Z"


@pytest.fixture
def h() -> CoreHarness:
    h = make()
    client(h, "alice", CAP)
    return h


def markreads(h: CoreHarness, name: str) -> list[tuple[str, ...]]:
    return [m.params for m in h.messages(name) if m.command == "MARKREAD"]


def logged_in(h: CoreHarness, name: str, account: str, *caps: str, nick: str | None = None) -> None:
    client(h, nick or name, *caps, name=name)
    h.core.set_account(h.users[name], account)


class TestSetAndGet:
    def test_get_without_a_marker_is_star(self, h: CoreHarness) -> None:
        h.send("alice", "MARKREAD #nosuchtarget")
        assert h.lines("alice") == [f":{SERVER} MARKREAD #nosuchtarget *"]

    def test_set_then_get(self, h: CoreHarness) -> None:
        h.send("alice", f"MARKREAD #channel timestamp={TS}")
        assert h.lines("alice") == [f":{SERVER} MARKREAD #channel timestamp={TS}"]
        h.send("alice", "MARKREAD #CHANNEL")  # targets compare without case
        assert markreads(h, "alice") == [("#CHANNEL", f"timestamp={TS}")]

    def test_never_backwards(self, h: CoreHarness) -> None:
        newer, older = "2019-06-01T12:00:00.000Z", "2019-01-01T00:00:00.000Z"
        h.send("alice", f"MARKREAD #test timestamp={newer}")
        h.clear()
        for ts in (older, newer):  # older, and equal: the kept value, unchanged
            h.send("alice", f"MARKREAD #test timestamp={ts}")
            assert markreads(h, "alice") == [("#test", f"timestamp={newer}")]

    def test_future_is_clamped_to_now(self, h: CoreHarness) -> None:
        h.send("alice", "MARKREAD bob timestamp=2999-01-01T00:00:00.000Z")
        ((_, value),) = markreads(h, "alice")
        assert parse_server_time(value.removeprefix("timestamp=")) == int(h.now * 1000)

    def test_user_target(self, h: CoreHarness) -> None:
        h.send("alice", "MARKREAD bob timestamp=2023-07-04T00:00:00.000Z")
        h.send("alice", "MARKREAD bob")
        assert markreads(h, "alice") == [("bob", "timestamp=2023-07-04T00:00:00.000Z")] * 2

    def test_on_join_before_end_of_names(self, h: CoreHarness) -> None:
        h.send("alice", "JOIN #test")
        cmds = h.numerics("alice")
        assert cmds.index("JOIN") < cmds.index("MARKREAD") < cmds.index("366")
        h.send("alice", f"MARKREAD #test timestamp={TS}")
        h.send("alice", "PART #test")
        h.clear()
        h.send("alice", "JOIN #test")
        assert markreads(h, "alice") == [("#test", f"timestamp={TS}")]

    def test_not_on_join_without_the_capability(self) -> None:
        h = make()
        client(h, "bob")
        h.send("bob", "JOIN #test")
        assert "MARKREAD" not in h.numerics("bob")


class TestErrors:
    def test_missing_parameters(self, h: CoreHarness) -> None:
        h.send("alice", "MARKREAD")
        assert h.lines("alice") == [f":{SERVER} FAIL MARKREAD NEED_MORE_PARAMS :Missing parameters"]

    @pytest.mark.parametrize(
        "param", ["timestamp=not-a-timestamp", "*", "2019-01-04T14:33:26.123Z", "msgid=abc"]
    )
    def test_invalid_timestamp(self, h: CoreHarness, param: str) -> None:
        h.send("alice", f"MARKREAD #test {param}")
        (fail,) = h.messages("alice")
        assert fail.command == "FAIL" and fail.params[:2] == ("MARKREAD", "INVALID_PARAMS")
        h.send("alice", "MARKREAD #test")
        assert markreads(h, "alice") == [("#test", "*")]

    @pytest.mark.parametrize("target", ["#a,#b", "no!nick", "1abc", "#" + "x" * 80])
    def test_invalid_target(self, h: CoreHarness, target: str) -> None:
        h.send("alice", f"MARKREAD {target}")
        (fail,) = h.messages("alice")
        assert fail.params[:2] == ("MARKREAD", "INVALID_PARAMS")

    def test_store_failure_is_internal_error(self, h: CoreHarness) -> None:
        class Broken(MemoryHistory):
            def read_marker(self, owner: str, target: str) -> int | None:
                raise OSError("disk on fire")

        h.core.history = Broken()
        h.core.set_account(h.users["alice"], "alice")
        h.send("alice", f"MARKREAD #test timestamp={TS}")
        assert h.lines("alice") == [
            f":{SERVER} FAIL MARKREAD INTERNAL_ERROR #test :The read timestamp could not be set"
        ]

    def test_unknown_without_history(self) -> None:
        h = make(history=False)
        client(h, "a")
        h.send("a", "MARKREAD #x")
        assert h.numerics("a") == ["421"]


class TestAccounts:
    def test_other_connections_of_the_account_are_told(self) -> None:
        h = make()
        logged_in(h, "s1", "acct", CAP, nick="alice")
        logged_in(h, "s2", "acct", CAP, nick="alice_")
        logged_in(h, "old", "acct", nick="alice__")  # no capability: not told
        logged_in(h, "eve", "other", CAP)
        h.send("s1", f"MARKREAD #test timestamp={TS}")
        assert markreads(h, "s1") == [("#test", f"timestamp={TS}")]
        assert markreads(h, "s2") == [("#test", f"timestamp={TS}")]
        assert h.lines("old") == [] and h.lines("eve") == []
        h.send("s2", f"MARKREAD #test timestamp={TS}")  # no move: only the setter hears
        assert markreads(h, "s2") == [("#test", f"timestamp={TS}")]
        assert h.lines("s1") == []

    def test_marker_outlives_the_connection(self) -> None:
        h = make()
        logged_in(h, "s1", "acct", CAP, nick="alice")
        h.send("s1", f"MARKREAD #test timestamp={TS}")
        h.send("s1", "QUIT")
        logged_in(h, "s2", "ACCT", CAP, nick="alice")
        h.send("s2", "JOIN #test")
        assert markreads(h, "s2") == [("#test", f"timestamp={TS}")]
        assert h.core.sessions == {"ACCT": {h.users["s2"]: None}}

    def test_without_an_account_markers_are_the_connections(self) -> None:
        h = make()
        client(h, "a", CAP)
        client(h, "b", CAP)
        h.send("a", f"MARKREAD #test timestamp={TS}")
        h.send("b", "MARKREAD #test")
        assert markreads(h, "b") == [("#test", "*")]
        store = h.core.history
        assert isinstance(store, MemoryHistory) and not store.has_pending()
        assert h.users["a"].read_markers == {"#test": parse_server_time(TS)}

    def test_per_owner_bound_forgets_the_oldest(self) -> None:
        h = make(max_read_markers=2)
        logged_in(h, "a", "acct", CAP)
        client(h, "b", CAP)
        for name in ("a", "b"):
            for i, target in enumerate(("#one", "#two", "#three")):
                h.send(name, f"MARKREAD {target} timestamp=2020-01-0{i + 1}T00:00:00.000Z")
            h.clear()
            h.send(name, "MARKREAD #one")
            h.send(name, "MARKREAD #three")
            assert markreads(h, name) == [
                ("#one", "*"),
                ("#three", "timestamp=2020-01-03T00:00:00.000Z"),
            ]

    def test_the_sessions_index_follows_logins(self) -> None:
        h = make()
        logged_in(h, "a", "acct")
        assert set(h.core.sessions["acct"]) == {h.users["a"]}
        h.core.set_account(h.users["a"], None)
        assert h.core.sessions == {}
        h.core.set_account(h.users["a"], "acct")
        h.send("a", "QUIT")
        assert h.core.sessions == {}
