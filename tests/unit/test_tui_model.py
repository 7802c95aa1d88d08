"""The terminal client's model, pure: client events in, buffers, markers and lines out."""

from __future__ import annotations

from datetime import datetime

from relaychat.client.events import (
    Connected,
    Disconnected,
    ErrorReply,
    Join,
    Kick,
    Message,
    NickChange,
    Part,
    Quit,
    Reconnecting,
    Topic,
)
from relaychat.tui.model import (
    SERVER,
    BufferKind,
    ChatState,
    Kind,
    LinkState,
    LinkStatus,
    parse_time,
    split_prefix,
)


def state() -> ChatState:
    s = ChatState("alice", clock=lambda: 1_700_000_000.0)
    for channel in ("#a", "#b"):
        s.apply(Join("alice", channel, own=True))
    s.switch("#a")
    return s


def msg(sender: str, target: str, text: str, **kw: object) -> Message:
    return Message(sender, target, text, prefix=f"{sender}!u@h", **kw)  # type: ignore[arg-type]


def texts(s: ChatState, name: str) -> list[str]:
    buf = s.get(name)
    assert buf is not None
    return [line.text for line in buf.lines]


class TestRouting:
    def test_channel_messages_go_to_their_channel(self) -> None:
        s = state()
        touched = s.apply(msg("bob", "#B", "hello b", reply_to="#B"))
        assert [b.name for b in touched] == ["#b"]  # casefolded: #B is #b
        assert texts(s, "#b")[-1] == "hello b" and texts(s, "#a") == ["you joined #a"]

    def test_a_private_message_opens_a_query_buffer(self) -> None:
        s = state()
        s.apply(msg("bob", "alice", "psst", reply_to="bob"))
        buf = s.get("bob")
        assert buf is not None and buf.kind is BufferKind.QUERY
        assert texts(s, "bob") == ["psst"] and buf.highlight and buf.unread == 1

    def test_server_notices_go_to_the_server_buffer(self) -> None:
        s = state()
        s.apply(Message("irc.local", "*", "*** Looking up your hostname", notice=True))
        s.apply(Message("irc.local", "alice", "hi", notice=True, prefix="irc.local"))
        assert texts(s, SERVER) == ["*** Looking up your hostname", "hi"]

    def test_actions_and_notices_have_their_kind(self) -> None:
        s = state()
        s.apply(msg("bob", "#a", "\x01ACTION waves\x01", reply_to="#a"))
        s.apply(msg("bob", "#a", "note", reply_to="#a", notice=True))
        kinds = [(line.kind, line.text) for line in s.buffers["#a"].lines][-2:]
        assert kinds == [(Kind.ACTION, "waves"), (Kind.NOTICE, "note")]

    def test_server_time_is_used(self) -> None:
        s = state()
        s.apply(msg("bob", "#a", "old", reply_to="#a", time="2024-05-01T12:00:00.000Z"))
        when = s.buffers["#a"].lines[-1].time
        assert when.astimezone().utcoffset() is not None
        assert when == datetime.fromisoformat("2024-05-01T12:00:00+00:00")

    def test_history_playback_of_our_own_private_line(self) -> None:
        s = state()
        s.apply(Message("alice", "bob", "sent earlier", prefix="alice!u@h", history=True))
        line = s.buffers["bob"].lines[-1]
        assert line.own and line.history and not line.highlight


class TestMarkers:
    def test_unread_counts_messages_in_hidden_buffers_only(self) -> None:
        s = state()
        s.apply(msg("bob", "#a", "on screen", reply_to="#a"))
        s.apply(msg("bob", "#b", "one", reply_to="#b"))
        s.apply(msg("bob", "#b", "two", reply_to="#b"))
        s.apply(Join("carol", "#b"))  # not a message: not counted
        assert (s.buffers["#a"].unread, s.buffers["#b"].unread) == (0, 2)
        assert not s.buffers["#b"].highlight

    def test_a_mention_highlights(self) -> None:
        s = state()
        for text in ("malice is not me", "alice_ neither", "ALICE: you are", "hi alice."):
            s.apply(msg("bob", "#b", text, reply_to="#b"))
        flags = [line.highlight for line in s.buffers["#b"].lines][-4:]
        assert flags == [False, False, True, True]
        assert s.buffers["#b"].highlight

    def test_showing_a_buffer_clears_its_markers(self) -> None:
        s = state()
        s.apply(msg("bob", "#b", "alice!", reply_to="#b"))
        buf = s.switch("#b")
        assert buf is not None and (buf.unread, buf.highlight) == (0, False)
        assert s.current == "#b"

    def test_cycle_wraps_around(self) -> None:
        s = state()
        assert [s.cycle(1).name for _ in range(3)] == ["#b", SERVER, "#a"]
        assert s.cycle(-1).name == SERVER

    def test_own_messages_are_never_unread(self) -> None:
        s = state()
        s.own_message("#b", "from me")
        buf = s.buffers["#b"]
        assert buf.unread == 0 and buf.lines[-1].own and buf.lines[-1].nick == "alice"


class TestMembers:
    def test_names_with_prefixes_sorted_by_rank(self) -> None:
        s = state()
        s.set_names("#a", ["zed", "+voiced", "@op", "alice", "@Boss"])
        assert s.buffers["#a"].nicks() == [
            ("@", "Boss"),
            ("@", "op"),
            ("+", "voiced"),
            ("", "alice"),
            ("", "zed"),
        ]

    def test_join_part_kick_quit(self) -> None:
        s = state()
        s.apply(Join("bob", "#a"))
        s.apply(Join("bob", "#b"))
        s.apply(Join("carol", "#a"))
        s.apply(Part("carol", "#a", "bye"))
        assert set(s.buffers["#a"].members) == {"alice", "bob"}
        s.apply(Quit("bob", "gone"))
        assert "bob" not in s.buffers["#a"].members and "bob" not in s.buffers["#b"].members
        assert texts(s, "#b")[-1] == "bob quit (gone)"
        s.apply(Kick("#a", "alice", "op", "out", own=True))
        assert not s.buffers["#a"].joined and s.buffers["#a"].lines[-1].highlight

    def test_nick_changes_rename_members_and_queries(self) -> None:
        s = state()
        s.set_names("#a", ["@bob", "alice"])
        s.apply(msg("bob", "alice", "hi", reply_to="bob"))
        s.switch("bob")
        s.apply(NickChange("bob", "robert"))
        assert s.buffers["#a"].members["robert"] == ("robert", "@")
        assert s.current == "robert" and s.buffers["robert"].name == "robert"
        assert texts(s, "robert")[-1] == "bob is now known as robert"

    def test_our_own_nick_change(self) -> None:
        s = state()
        s.apply(NickChange("alice", "alicia", own=True))
        assert s.nick == "alicia" and s.mentions("hey alicia") and not s.mentions("hey alice")
        assert texts(s, SERVER)[-1] == "you are now known as alicia"

    def test_topics(self) -> None:
        s = state()
        s.apply(Topic("#a", "welcome"))
        s.apply(Topic("#a", "new topic", setter="bob"))
        assert s.buffers["#a"].topic == "new topic"
        assert texts(s, "#a")[-2:] == ["topic: welcome", "bob changed the topic to: new topic"]

    def test_split_prefix(self) -> None:
        assert split_prefix("@+alice!u@h") == ("@+", "alice")
        assert split_prefix("bob") == ("", "bob")


class TestLink:
    def test_link_events_are_written_to_the_server_buffer(self) -> None:
        s = state()
        s.apply(Disconnected("ping timeout"))
        s.apply(Reconnecting(2, 1.5, "connection refused"))
        s.apply(Connected("alice", "irc.local"))
        s.apply(ErrorReply("404", ("#a",), "Cannot send to channel"))
        assert texts(s, SERVER)[-3:] == [
            "disconnected: ping timeout",
            "reconnecting in 1.5 s (attempt 2): connection refused",
            "connected to irc.local as alice",
        ]
        assert not s.buffers["#a"].joined  # until the rejoin
        assert s.buffers["#a"].lines[-1].kind is Kind.ERROR

    def test_status_text(self) -> None:
        status = LinkStatus()
        assert status.text(0) == "connecting"
        status.state, status.lag = LinkState.CONNECTED, 0.0123
        assert status.text(0) == "connected (lag 12 ms)"
        status.state, status.attempt, status.retry_at = LinkState.RECONNECTING, 3, 10.0
        status.reason = "connection refused"
        assert status.text(2.2) == "reconnecting in 8 s (attempt 3): connection refused"
        assert status.text(9.6).startswith("reconnecting in 0.4 s")
        assert status.text(11).startswith("reconnecting now (attempt 3)")
        status.state, status.reason = LinkState.DISCONNECTED, "gave up"
        assert status.text(0) == "disconnected (gave up)"

    def test_close_buffer(self) -> None:
        s = state()
        s.switch("#b")
        assert s.close_buffer("#b") and s.current == "#a"
        assert not s.close_buffer(SERVER) and not s.close_buffer("#nope")

    def test_parse_time_falls_back_to_the_clock(self) -> None:
        assert parse_time("garbage", lambda: 0.0) == parse_time(None, lambda: 0.0)
        assert parse_time(None, lambda: 0.0).timestamp() == 0.0
