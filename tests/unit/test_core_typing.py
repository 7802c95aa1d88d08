"""Typing notifications (``+typing`` on TAGMSG) in memory: relayed, never stored, rate-bound.

Spec: https://ircv3.net/specs/client-tags/typing; the throttle is commands/typing_tag.py.
"""

from __future__ import annotations

import pytest

from relaychat.server.commands.typing_tag import MAX_TRACKED
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness
from tests.unit.core_support import src
from tests.unit.v3_support import client, make

TAGS = ("message-tags", "server-time")


@pytest.fixture
def h() -> CoreHarness:
    """alice and bob with message-tags, carol without, all in #c; history in memory."""
    h = make(replay_lines=20)
    client(h, "alice", *TAGS)
    client(h, "bob", *TAGS, "batch", "draft/chathistory")
    client(h, "carol")
    for nick in ("alice", "bob", "carol"):
        h.send(nick, "JOIN #c")
    h.clear()
    return h


def typing(h: CoreHarness, nick: str) -> list[str]:
    return [m.tags["+typing"] for m in h.messages(nick) if m.command == "TAGMSG"]


class TestRelay:
    def test_channel_members_with_message_tags_get_it(self, h: CoreHarness) -> None:
        h.send("alice", "@+typing=active TAGMSG #c")
        (got,) = h.messages("bob")
        assert (got.source, got.command, got.params) == (src("alice"), "TAGMSG", ("#c",))
        assert got.tags["+typing"] == "active" and got.tags["msgid"]
        assert h.lines("carol") == []

    def test_private(self, h: CoreHarness) -> None:
        h.send("alice", "@+typing=active TAGMSG bob")
        assert typing(h, "bob") == ["active"]
        h.send("alice", "@+typing=active TAGMSG carol")  # no message-tags: nothing
        assert h.lines("carol") == []


class TestNotHistory:
    def test_never_stored(self, h: CoreHarness) -> None:
        for value in ("active", "paused", "done"):
            h.send("alice", f"@+typing={value} TAGMSG #c")
            h.send("alice", f"@+typing={value} TAGMSG bob")
        store = h.core.history
        assert isinstance(store, MemoryHistory)
        assert store.conversation("#c") is None
        assert store.conversation("alice bob") is None
        assert not store.has_pending()

    def test_not_in_chathistory_nor_replayed(self, h: CoreHarness) -> None:
        h.send("alice", "PRIVMSG #c :a message")
        h.send("alice", "@+typing=active TAGMSG #c")
        h.clear()
        h.send("bob", "CHATHISTORY LATEST #c * 10")
        assert [m.command for m in h.messages("bob")] == ["BATCH", "PRIVMSG", "BATCH"]
        client(h, "late", *TAGS)
        h.send("late", "JOIN #c")
        got = h.messages("late")
        assert "TAGMSG" not in [m.command for m in got]
        assert [m.params[1].endswith("a message") for m in got if m.command == "PRIVMSG"] == [True]


class TestRate:
    def test_same_value_within_the_interval_is_dropped(self, h: CoreHarness) -> None:
        for _ in range(5):
            h.send("alice", "@+typing=active TAGMSG #c")
        assert typing(h, "bob") == ["active"]
        h.advance(1.0)
        h.send("alice", "@+typing=active TAGMSG #c")
        assert typing(h, "bob") == ["active"]

    def test_a_change_of_value_always_goes_through(self, h: CoreHarness) -> None:
        for value in ("active", "done", "active", "paused", "paused"):
            h.send("alice", f"@+typing={value} TAGMSG #c")
        assert typing(h, "bob") == ["active", "done", "active", "paused"]

    def test_per_target(self, h: CoreHarness) -> None:
        h.send("alice", "@+typing=active TAGMSG #c")
        h.send("alice", "@+typing=active TAGMSG bob")
        h.send("alice", "@+typing=active TAGMSG BOB")  # the same target
        assert typing(h, "bob") == ["active", "active"]

    def test_other_client_tags_are_never_dropped(self, h: CoreHarness) -> None:
        for _ in range(3):
            h.send("alice", "@+draft/react=x;+typing=active TAGMSG #c")
        assert len(typing(h, "bob")) == 3

    def test_interval_zero_turns_it_off(self) -> None:
        h = make(limits={"typing_interval": 0.0})
        client(h, "a", *TAGS)
        client(h, "b", *TAGS)
        h.send("b", "JOIN #c")
        h.clear()
        for _ in range(3):
            h.send("a", "@+typing=active TAGMSG b")
        assert typing(h, "b") == ["active"] * 3

    def test_tracking_is_bounded(self, h: CoreHarness) -> None:
        for i in range(MAX_TRACKED * 3):
            h.send("alice", f"@+typing=active TAGMSG nick{i}")
        seen = h.users["alice"].typing
        assert seen is not None and len(seen) <= MAX_TRACKED
