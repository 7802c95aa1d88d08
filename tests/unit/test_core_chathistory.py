"""CHATHISTORY and replay on join, in memory (commands/history.py).

Spec: https://ircv3.net/specs/extensions/chathistory. The core writes to a MemoryHistory set on
``h.core.history``, as the server does with its SQLite store.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from relaychat.config import History
from relaychat.protocol.message import Message
from relaychat.server.commands.history import parse_timestamp, server_time
from relaychat.server.isupport import isupport_tokens
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness, free_config
from tests.unit.core_support import SERVER, joined, src

FULL = ("draft/chathistory", "batch", "server-time", "message-tags")


def make(**history: Any) -> CoreHarness:
    """A harness whose core keeps history in memory (retention settings for the store)."""
    retention = {k: history.pop(k) for k in ("max_age_days", "max_per_target") if k in history}
    h = CoreHarness(free_config(history=History(**history)))
    h.core.history = MemoryHistory(**retention)
    h.core.extra_caps["draft/chathistory"] = ""
    return h


@pytest.fixture
def h() -> CoreHarness:
    return make()


def with_caps(h: CoreHarness, nick: str, *caps: str) -> None:
    h.open(nick)
    h.send(nick, "CAP LS 302")
    h.send(nick, "CAP REQ :" + " ".join(caps))
    h.send(nick, f"NICK {nick}")
    h.send(nick, f"USER {nick} 0 * :{nick}")
    h.send(nick, "CAP END")
    assert h.users[nick].registered
    h.lines(nick)


def say(h: CoreHarness, nick: str, target: str, *texts: str) -> list[str]:
    """Send each text a second apart; return their msgids (from the store)."""
    ids = []
    for text in texts:
        h.now += 1
        h.send(nick, f"PRIVMSG {target} :{text}")
        assert h.core.history is not None
        conv = h.core.history.conversation(_key(h, nick, target))
        assert conv is not None and conv.latest is not None
        ids.append(conv.latest.message.msgid)
    h.clear()
    return ids


def _key(h: CoreHarness, nick: str, target: str) -> str:
    from relaychat.store import conversation_key

    return target.lower() if target.startswith("#") else conversation_key(nick, target)


def batch(h: CoreHarness, nick: str, kind: str = "chathistory") -> tuple[list[str], list[Message]]:
    """The one batch ``nick`` was sent: its BATCH parameters and the messages inside.

    Checks the framing: every line between ``BATCH +ref`` and ``BATCH -ref`` carries
    ``batch=ref``, and nothing else was sent.
    """
    msgs = h.messages(nick)
    assert msgs, "nothing was sent"
    head, *body, tail = msgs
    assert head.command == "BATCH" and head.params[0].startswith("+"), head
    assert head.params[1] == kind
    ref = head.params[0][1:]
    assert tail.command == "BATCH" and tail.params == ("-" + ref,)
    for m in body:
        assert m.tags.get("batch") == ref, m
    return list(head.params[2:]), body


def texts_of(msgs: list[Message]) -> list[str]:
    return [m.params[-1] for m in msgs]


class TestSubcommands:
    def test_latest_star(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", "one", "two", "three")
        h.send("bob", "CHATHISTORY LATEST #c * 2")
        params, body = batch(h, "bob")
        assert params == ["#c"]
        assert texts_of(body) == ["two", "three"]
        assert all(m.source == src("alice") and m.command == "PRIVMSG" for m in body)

    def test_history_keeps_the_live_msgid_and_time(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        h.now += 5
        h.send("alice", "@+draft/reply=x PRIVMSG #c :hello")
        (live,) = h.messages("bob")
        h.send("bob", "CHATHISTORY LATEST #c * 10")
        _, (stored,) = batch(h, "bob")
        assert stored.tags["msgid"] == live.tags["msgid"]
        assert stored.tags["time"] == live.tags["time"]
        assert stored.tags["+draft/reply"] == "x"

    def test_before_and_after_msgid(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", *(f"m{i}" for i in range(6)))
        h.send("bob", f"CHATHISTORY BEFORE #c msgid={ids[4]} 2")
        assert texts_of(batch(h, "bob")[1]) == ["m2", "m3"]
        h.send("bob", f"CHATHISTORY AFTER #c msgid={ids[1]} 3")
        assert texts_of(batch(h, "bob")[1]) == ["m2", "m3", "m4"]
        h.send("bob", f"CHATHISTORY LATEST #c msgid={ids[2]} 2")
        assert texts_of(batch(h, "bob")[1]) == ["m4", "m5"]

    def test_timestamps(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", *(f"m{i}" for i in range(4)))  # at now+1 .. now+4
        t2 = server_time(int((h.now - 2) * 1000))  # m1's time
        h.send("bob", f"CHATHISTORY AFTER #c timestamp={t2} 10")
        assert texts_of(batch(h, "bob")[1]) == ["m2", "m3"]
        h.send("bob", f"CHATHISTORY BEFORE #c timestamp={t2} 10")
        assert texts_of(batch(h, "bob")[1]) == ["m0"]

    def test_around(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", *(f"m{i}" for i in range(9)))
        h.send("bob", f"CHATHISTORY AROUND #c msgid={ids[4]} 5")
        assert texts_of(batch(h, "bob")[1]) == ["m2", "m3", "m4", "m5", "m6"]
        h.send("bob", f"CHATHISTORY AROUND #c msgid={ids[0]} 4")
        assert texts_of(batch(h, "bob")[1]) == ["m0", "m1", "m2", "m3"]

    def test_between_both_ways(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", *(f"m{i}" for i in range(8)))
        h.send("bob", f"CHATHISTORY BETWEEN #c msgid={ids[1]} msgid={ids[6]} 2")
        assert texts_of(batch(h, "bob")[1]) == ["m2", "m3"]  # from the first, forwards
        h.send("bob", f"CHATHISTORY BETWEEN #c msgid={ids[6]} msgid={ids[1]} 2")
        assert texts_of(batch(h, "bob")[1]) == ["m4", "m5"]  # from the first, backwards
        start = server_time(int((h.now - 7) * 1000))  # m0's time, excluded
        h.send("bob", f"CHATHISTORY BETWEEN #c timestamp={start} msgid={ids[3]} 10")
        assert texts_of(batch(h, "bob")[1]) == ["m1", "m2"]

    def test_empty_history_is_an_empty_batch(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "bob")
        h.send("bob", "CHATHISTORY LATEST #c * 10")
        assert batch(h, "bob") == (["#c"], [])

    def test_limit_is_capped_by_query_limit(self) -> None:
        h = make(query_limit=3)
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", *(f"m{i}" for i in range(6)))
        h.send("bob", "CHATHISTORY LATEST #c * 100")
        assert texts_of(batch(h, "bob")[1]) == ["m3", "m4", "m5"]

    def test_subcommand_is_case_insensitive(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "bob")
        h.send("bob", "CHATHISTORY latest #C * 5")
        assert batch(h, "bob")[0] == ["#c"]


class TestPrivateConversations:
    def test_both_sides_read_it_under_their_nick(self, h: CoreHarness) -> None:
        with_caps(h, "alice", *FULL)
        with_caps(h, "bob", *FULL)
        say(h, "alice", "bob", "hi bob")
        say(h, "bob", "alice", "hi alice")
        h.send("bob", "CHATHISTORY LATEST alice * 10")
        params, body = batch(h, "bob")
        assert params == ["alice"]
        assert [(m.source, m.params) for m in body] == [
            (src("alice"), ("bob", "hi bob")),
            (src("bob"), ("alice", "hi alice")),
        ]
        h.send("alice", "CHATHISTORY LATEST BOB * 10")
        assert texts_of(batch(h, "alice")[1]) == ["hi bob", "hi alice"]

    def test_a_third_user_reads_only_its_own(self, h: CoreHarness) -> None:
        with_caps(h, "carol", *FULL)
        h.connect("alice")
        h.connect("bob")
        say(h, "alice", "bob", "secret")
        h.send("carol", "CHATHISTORY LATEST bob * 10")
        assert batch(h, "carol") == (["bob"], [])  # carol's conversation with bob: empty

    def test_the_next_holder_of_a_nick_does_not_read_its_past(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        say(h, "alice", "bob", "for bob only")
        h.send("bob", "QUIT :bye")
        h.now += 10
        with_caps(h, "bob2", *FULL)
        h.send("bob2", "NICK bob")  # a stranger takes the nick
        h.lines("bob2")
        h.send("bob2", "CHATHISTORY LATEST alice * 10")
        assert batch(h, "bob2")[1] == []

    def test_an_account_reads_what_it_sent_before(self, h: CoreHarness) -> None:
        bob = h.connect("bob")
        h.connect("alice")
        h.core.set_account(bob, "bobacct")
        say(h, "bob", "alice", "sent while logged in")
        h.send("bob", "QUIT :bye")
        h.now += 10
        with_caps(h, "bob2", *FULL)
        h.send("bob2", "NICK bob")
        h.core.set_account(h.users["bob2"], "bobacct")
        h.lines("bob2")
        h.send("bob2", "CHATHISTORY LATEST alice * 10")
        assert texts_of(batch(h, "bob2")[1]) == ["sent while logged in"]


class TestErrors:
    def fail(self, h: CoreHarness, line: str) -> list[str]:
        h.send("bob", line)
        msgs = h.messages("bob")
        assert len(msgs) == 1, msgs
        assert msgs[0].command == "FAIL" and msgs[0].params[0] == "CHATHISTORY"
        return list(msgs[0].params[1:])

    @pytest.fixture
    def hb(self, h: CoreHarness) -> CoreHarness:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        return h

    def test_missing_and_unknown_subcommands(self, hb: CoreHarness) -> None:
        assert self.fail(hb, "CHATHISTORY")[:2] == ["NEED_MORE_PARAMS", "*"]
        assert self.fail(hb, "CHATHISTORY LATEST #c *")[:2] == ["NEED_MORE_PARAMS", "LATEST"]
        assert self.fail(hb, "CHATHISTORY SIDEWAYS #c * 5")[:2] == ["UNKNOWN_COMMAND", "SIDEWAYS"]

    @pytest.mark.parametrize("limit", ["0", "-1", "x", "1234567890"])
    def test_bad_limit(self, hb: CoreHarness, limit: str) -> None:
        assert self.fail(hb, f"CHATHISTORY LATEST #c * {limit}")[:2] == [
            "INVALID_PARAMS",
            "LATEST",
        ]

    @pytest.mark.parametrize(
        "ref", ["*", "foo", "msgid=", "timestamp=yesterday", "timestamp=2024-02-30T00:00:00.000Z"]
    )
    def test_bad_reference(self, hb: CoreHarness, ref: str) -> None:
        assert self.fail(hb, f"CHATHISTORY BEFORE #c {ref} 5")[:3] == [
            "INVALID_PARAMS",
            "BEFORE",
            ref,
        ]

    def test_targets_needs_timestamps(self, hb: CoreHarness) -> None:
        assert self.fail(hb, "CHATHISTORY TARGETS msgid=x timestamp=2024-01-01T00:00:00Z 5")[
            :2
        ] == ["INVALID_PARAMS", "TARGETS"]

    def test_channels_are_for_members_only(self, hb: CoreHarness) -> None:
        joined(hb, "#secret", "alice")
        not_member = self.fail(hb, "CHATHISTORY LATEST #secret * 5")
        no_such = self.fail(hb, "CHATHISTORY LATEST #nowhere * 5")
        assert not_member[:3] == ["INVALID_TARGET", "LATEST", "#secret"]
        assert no_such[:3] == ["INVALID_TARGET", "LATEST", "#nowhere"]
        assert not_member[3] == no_such[3]  # the same text: existence is not revealed

    def test_bad_private_target(self, hb: CoreHarness) -> None:
        assert self.fail(hb, "CHATHISTORY LATEST a!b@c * 5")[0] == "INVALID_TARGET"

    def test_unknown_msgid_before(self, hb: CoreHarness) -> None:
        assert self.fail(hb, "CHATHISTORY BEFORE #c msgid=nope 5")[:4] == [
            "MESSAGE_ERROR",
            "BEFORE",
            "#c",
            "msgid=nope",
        ]

    def test_without_history_the_command_does_not_exist(self) -> None:
        h = CoreHarness(free_config())
        h.connect("bob")
        h.send("bob", "CHATHISTORY LATEST #c * 5")
        assert h.numerics("bob") == ["421"]

    def test_a_failing_store_is_a_message_error(self, hb: CoreHarness) -> None:
        store = hb.core.history
        assert isinstance(store, MemoryHistory)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError("disk on fire")

        store.query = broken  # type: ignore[method-assign]
        assert self.fail(hb, "CHATHISTORY LATEST #c * 5")[:3] == [
            "MESSAGE_ERROR",
            "LATEST",
            "#c",
        ]


class TestGaps:
    """Never a silent truncation: what retention deleted is announced."""

    def test_after_a_deleted_msgid_warns_and_sends_what_is_kept(self) -> None:
        h = make(max_per_target=3)
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", *(f"m{i}" for i in range(6)))
        assert h.core.history is not None
        assert h.core.history.prune(h.now) == 3
        h.send("bob", f"CHATHISTORY AFTER #c msgid={ids[1]} 10")
        warn, *rest = h.messages("bob")
        assert warn.command == "WARN"
        assert warn.params[:4] == ("CHATHISTORY", "HISTORY_GAP", "AFTER", "#c")
        assert ids[1] in warn.params[-1]
        h.peers["bob"].buffer = b"".join(m.to_bytes() for m in rest)
        assert texts_of(batch(h, "bob")[1]) == ["m3", "m4", "m5"]

    def test_after_an_old_timestamp_warns(self) -> None:
        h = make(max_per_target=2)
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        start = server_time(int(h.now * 1000))
        say(h, "alice", "#c", "m0", "m1", "m2", "m3")
        assert h.core.history is not None
        h.core.history.prune(h.now)
        h.send("bob", f"CHATHISTORY AFTER #c timestamp={start} 10")
        warn, *rest = h.messages("bob")
        assert (warn.command, warn.params[1]) == ("WARN", "HISTORY_GAP")
        assert [m.params[-1] for m in rest if m.command == "PRIVMSG"] == ["m2", "m3"]

    def test_after_a_kept_msgid_does_not_warn(self) -> None:
        h = make(max_per_target=3)
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", *(f"m{i}" for i in range(6)))
        assert h.core.history is not None
        h.core.history.prune(h.now)
        h.send("bob", f"CHATHISTORY AFTER #c msgid={ids[3]} 10")
        assert texts_of(batch(h, "bob")[1]) == ["m4", "m5"]

    def test_unknown_msgid_in_a_conversation_never_trimmed(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL)
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", "m0")
        h.send("bob", "CHATHISTORY LATEST #c msgid=bogus 10")
        warn, *_ = h.messages("bob")
        assert (warn.command, warn.params[1]) == ("WARN", "HISTORY_GAP")


class TestFraming:
    def test_without_batch_the_lines_come_bare(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "draft/chathistory", "server-time")
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", "one")
        h.send("bob", "CHATHISTORY LATEST #c * 10")
        (line,) = h.lines("bob")
        assert re.fullmatch(rf"@time=\S+ :{re.escape(src('alice'))} PRIVMSG #c :one", line)

    def test_labeled_request_labels_the_batch(self, h: CoreHarness) -> None:
        with_caps(h, "bob", *FULL, "labeled-response")
        joined(h, "#c", "alice", "bob")
        say(h, "alice", "#c", "one")
        h.send("bob", "@label=q1 CHATHISTORY LATEST #c * 10")
        head, msg, tail = h.messages("bob")
        assert head.tags == {"label": "q1"} and head.command == "BATCH"
        assert msg.tags["batch"] == head.params[0][1:] and "label" not in msg.tags
        assert tail.params == ("-" + head.params[0][1:],)

    def test_labeled_warning_and_batch_nest(self) -> None:
        h = make(max_per_target=1)
        with_caps(h, "bob", *FULL, "labeled-response")
        joined(h, "#c", "alice", "bob")
        ids = say(h, "alice", "#c", "m0", "m1")
        assert h.core.history is not None
        h.core.history.prune(h.now)
        h.send("bob", f"@label=q2 CHATHISTORY AFTER #c msgid={ids[0]} 10")
        outer, warn, inner, msg, inner_end, outer_end = h.messages("bob")
        o, i = outer.params[0][1:], inner.params[0][1:]
        assert outer.tags == {"label": "q2"} and outer.params[1] == "labeled-response"
        assert warn.tags == {"batch": o} and warn.command == "WARN"
        assert inner.tags == {"batch": o} and inner.params[1:] == ("chathistory", "#c")
        assert msg.tags["batch"] == i and msg.params[-1] == "m1"
        assert inner_end.params == ("-" + i,) and outer_end.params == ("-" + o,)


class TestTargets:
    def test_channels_and_private_conversations(self, h: CoreHarness) -> None:
        with_caps(h, "alice", *FULL)
        joined(h, "#a", "alice", "bob")
        joined(h, "#b", "alice", "bob")
        joined(h, "#hidden", "bob")
        start = server_time(int(h.now * 1000))
        say(h, "bob", "#b", "in b")
        say(h, "bob", "alice", "private")
        say(h, "bob", "#hidden", "not for alice")
        say(h, "alice", "#a", "in a")
        end = server_time(int((h.now + 1) * 1000))
        h.send("alice", f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 10")
        params, body = batch(h, "alice", "draft/chathistory-targets")
        assert params == []
        assert [m.params[:2] for m in body] == [
            ("TARGETS", "#b"),
            ("TARGETS", "bob"),
            ("TARGETS", "#a"),
        ]
        assert all(m.source == SERVER and parse_timestamp(m.params[2]) for m in body)
        h.send("alice", f"CHATHISTORY TARGETS timestamp={start} timestamp={end} 1")
        assert [m.params[1] for m in batch(h, "alice", "draft/chathistory-targets")[1]] == ["#b"]


class TestReplayOnJoin:
    def history_of(self, h: CoreHarness, *texts: str) -> None:
        h.connect("alice")
        h.send("alice", "JOIN #c")
        say(h, "alice", "#c", *texts)

    def test_plain_client_gets_stamped_lines_after_names(self, h: CoreHarness) -> None:
        self.history_of(h, "one", "\x01ACTION waves\x01", "\x01VERSION\x01", "two")
        h.connect("bob")
        h.send("bob", "JOIN #c")
        lines = h.lines("bob")
        end = next(i for i, line in enumerate(lines) if " 366 " in line)
        replay = lines[end + 1 :]
        stamp = r"\[\d\d:\d\d:\d\d\] "
        assert len(replay) == 3  # the CTCP VERSION request is never replayed
        assert re.fullmatch(rf":{re.escape(src('alice'))} PRIVMSG #c :{stamp}one", replay[0])
        assert re.fullmatch(rf".* PRIVMSG #c :\x01ACTION {stamp}waves\x01", replay[1])
        assert re.fullmatch(rf".* PRIVMSG #c :{stamp}two", replay[2])

    def test_batch_and_server_time_get_a_batch(self, h: CoreHarness) -> None:
        self.history_of(h, "one", "two")
        with_caps(h, "bob", "batch", "server-time")
        h.send("bob", "JOIN #c")
        msgs = h.messages("bob")
        end = next(i for i, m in enumerate(msgs) if m.command == "366")
        h.peers["bob"].buffer = b"".join(m.to_bytes() for m in msgs[end + 1 :])
        params, body = batch(h, "bob")
        assert params == ["#c"]
        assert texts_of(body) == ["one", "two"]  # no stamp: the time tag says it
        assert all("time" in m.tags for m in body)

    def test_chathistory_clients_ask_themselves(self, h: CoreHarness) -> None:
        self.history_of(h, "one")
        with_caps(h, "bob", *FULL)
        h.send("bob", "JOIN #c")
        assert h.numerics("bob")[-1] == "366"

    def test_replay_lines_bounds_it(self) -> None:
        h = make(replay_lines=2)
        self.history_of(h, "a", "b", "c")
        h.connect("bob")
        h.send("bob", "JOIN #c")
        assert [line.rsplit(" ", 1)[1] for line in h.lines("bob")[-2:]] == ["b", "c"]

    def test_zero_turns_it_off(self) -> None:
        h = make(replay_lines=0)
        self.history_of(h, "a")
        h.connect("bob")
        h.send("bob", "JOIN #c")
        assert h.numerics("bob")[-1] == "366"

    def test_labeled_join_keeps_the_replay_batch_whole(self, h: CoreHarness) -> None:
        self.history_of(h, "one")
        with_caps(h, "bob", "batch", "server-time", "labeled-response")
        h.send("bob", "@label=j JOIN #c")
        msgs = h.messages("bob")
        outer = msgs[0].params[0][1:]
        inner = next(m for m in msgs if m.command == "BATCH" and m.params[1:2] == ("chathistory",))
        assert inner.tags == {"batch": outer}
        (line,) = [m for m in msgs if m.command == "PRIVMSG"]
        assert line.tags["batch"] == inner.params[0][1:]


class TestIsupport:
    def test_tokens_when_enabled(self) -> None:
        tokens = isupport_tokens(free_config(history=History(query_limit=42)))
        assert "CHATHISTORY=42" in tokens and "MSGREFTYPES=msgid,timestamp" in tokens
        assert tokens == sorted(tokens)

    def test_no_tokens_when_disabled(self) -> None:
        tokens = isupport_tokens(free_config(history=History(enabled=False)))
        assert not any(t.startswith(("CHATHISTORY", "MSGREFTYPES")) for t in tokens)


class TestTimestamps:
    @pytest.mark.parametrize(
        ("text", "ms"),
        [
            ("1970-01-01T00:00:00.000Z", 0),
            ("2024-01-02T03:04:05.678Z", 1704164645678),
            ("2024-01-02T03:04:05Z", 1704164645000),
            ("2024-01-02T03:04:05.6Z", 1704164645600),
        ],
    )
    def test_parse(self, text: str, ms: int) -> None:
        assert parse_timestamp(text) == ms

    @pytest.mark.parametrize("text", ["", "2024-01-02 03:04:05Z", "2024-13-01T00:00:00Z", "x"])
    def test_refuse(self, text: str) -> None:
        assert parse_timestamp(text) is None

    def test_round_trip(self) -> None:
        assert parse_timestamp(server_time(1704164645678)) == 1704164645678
        assert server_time(0) == "1970-01-01T00:00:00.000Z"
