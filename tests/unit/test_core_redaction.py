"""draft/message-redaction in memory (commands/redaction.py).

Spec: https://ircv3.net/specs/extensions/message-redaction; the examples and error cases are
the spec's (and irctest's): the sender, a channel operator or an IRC operator may redact;
others get REDACT_FORBIDDEN; members with the capability see the REDACT, others nothing.
"""

from __future__ import annotations

import pytest

from relaychat.protocol.message import Message
from relaychat.store import MemoryHistory
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, src
from tests.unit.v3_support import client, make

RED = "draft/message-redaction"
CAPS = ("message-tags", "echo-message", "batch", "server-time", "labeled-response", RED)


@pytest.fixture
def h() -> CoreHarness:
    """op (channel operator), user and plain (no redaction cap) in #chan."""
    h = make()
    client(h, "op", *CAPS)
    client(h, "user", *CAPS)
    client(h, "plain", "message-tags", "echo-message")
    for nick in ("op", "user", "plain"):
        h.send(nick, "JOIN #chan")
    h.clear()
    return h


def say(h: CoreHarness, nick: str, target: str, text: str) -> str:
    """Send ``text``; return its msgid (from the sender's echo)."""
    h.send(nick, f"PRIVMSG {target} :{text}")
    msgid = h.messages(nick)[-1].tags["msgid"]
    h.clear()
    return msgid


def store(h: CoreHarness) -> MemoryHistory:
    assert isinstance(h.core.history, MemoryHistory)
    return h.core.history


def fails(h: CoreHarness, nick: str) -> list[tuple[str, ...]]:
    return [m.params for m in h.messages(nick) if m.command == "FAIL"]


class TestWhoMayRedact:
    def test_sender_redacts_own_message(self, h: CoreHarness) -> None:
        msgid = say(h, "user", "#chan", "an example")
        h.send("user", f"REDACT #chan {msgid} :bad example")
        (mine,) = h.messages("user")
        (theirs,) = h.messages("op")
        for got in (mine, theirs):
            assert got.command == "REDACT" and got.source == src("user")
            assert got.params == ("#chan", msgid, "bad example")
            assert got.tags["msgid"] != msgid and got.tags["time"]
        assert mine.tags["msgid"] == theirs.tags["msgid"]
        assert h.lines("plain") == []  # no capability: nothing new

    def test_channel_operator_redacts_someone_else(self, h: CoreHarness) -> None:
        msgid = say(h, "user", "#chan", "join my network for cold hard chats")
        h.send("op", f"REDACT #chan {msgid} spam")
        for nick in ("op", "user"):
            (got,) = h.messages(nick)
            assert (got.source, got.command, got.params) == (
                src("op"),
                "REDACT",
                ("#chan", msgid, "spam"),
            )

    def test_member_cannot_redact_someone_else(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "#chan", "mine")
        h.send("user", f"REDACT #chan {msgid} :oops")
        assert fails(h, "user") == [
            (
                "REDACT",
                "REDACT_FORBIDDEN",
                "#chan",
                msgid,
                "You are not authorised to delete this message",
            )
        ]
        assert h.lines("op") == []
        (entry,) = store(h).query("#chan", limit=5)
        assert entry.message.text == "mine"

    def test_irc_operator_redacts_in_a_channel_it_is_not_in(self, h: CoreHarness) -> None:
        msgid = say(h, "user", "#chan", "hi")
        client(h, "ircop", *CAPS)
        h.core.set_oper(h.users["ircop"], True)
        h.send("ircop", f"REDACT #chan {msgid} :spam")
        for nick in ("ircop", "op", "user"):
            (got,) = h.messages(nick)
            assert got.command == "REDACT" and got.source == src("ircop")

    def test_same_account_from_another_connection(self, h: CoreHarness) -> None:
        h.core.set_account(h.users["user"], "acct")
        msgid = say(h, "user", "#chan", "logged in")
        h.send("user", "QUIT")
        client(h, "other", *CAPS)
        h.send("other", "JOIN #chan")
        h.core.set_account(h.users["other"], "ACCT")  # accounts compare without case
        h.clear()
        h.send("other", f"REDACT #chan {msgid}")
        assert [m.command for m in h.messages("other")] == ["REDACT"]

    def test_a_nick_is_not_an_identity(self, h: CoreHarness) -> None:
        msgid = say(h, "user", "#chan", "not logged in")
        h.send("user", "QUIT")
        h.advance(1)
        client(h, "user", *CAPS, name="again")  # same nick, user and host; a new connection
        h.send("again", "JOIN #chan")
        h.clear()
        h.send("again", f"REDACT #chan {msgid}")
        assert fails(h, "again")[0][1] == "REDACT_FORBIDDEN"

    def test_after_a_nick_change_the_old_messages_are_not_own(self, h: CoreHarness) -> None:
        msgid = say(h, "user", "#chan", "before")
        h.send("user", "NICK renamed")
        h.clear()
        h.send("user", f"REDACT #chan {msgid}")
        assert fails(h, "user")[0][1] == "REDACT_FORBIDDEN"


class TestErrors:
    def test_unknown_msgid(self, h: CoreHarness) -> None:
        h.send("op", "REDACT #chan nonexistent123 :oops")
        assert fails(h, "op") == [
            (
                "REDACT",
                "UNKNOWN_MSGID",
                "#chan",
                "nonexistent123",
                "This message does not exist or is too old",
            )
        ]
        assert h.lines("user") == []

    def test_msgid_of_another_channel_is_unknown(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "#chan", "here")
        h.send("op", "JOIN #other")
        h.clear()
        h.send("op", f"REDACT #other {msgid}")
        assert fails(h, "op")[0][1:4] == ("UNKNOWN_MSGID", "#other", msgid)

    def test_already_redacted_is_unknown(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "#chan", "twice")
        h.send("op", f"REDACT #chan {msgid}")
        h.clear()
        h.send("op", f"REDACT #chan {msgid}")
        assert fails(h, "op")[0][1] == "UNKNOWN_MSGID"
        assert h.lines("user") == []

    @pytest.mark.parametrize("target", ["#nowhere", "#elsewhere", "bad,nick"])
    def test_invalid_target(self, h: CoreHarness, target: str) -> None:
        client(h, "x")
        h.send("x", "JOIN #elsewhere")
        h.send("user", "PART #elsewhere")
        h.clear()
        h.send("user", f"REDACT {target} someid")
        assert fails(h, "user") == [
            ("REDACT", "INVALID_TARGET", target, f"You cannot delete messages from {target}")
        ]

    def test_window_binds_senders_not_operators(self) -> None:
        h = make(redact_window=60.0)
        client(h, "op", *CAPS)
        client(h, "user", *CAPS)
        for nick in ("op", "user"):
            h.send(nick, "JOIN #chan")
        h.clear()
        old = say(h, "user", "#chan", "old")
        h.advance(61)
        h.clear()
        h.send("user", f"REDACT #chan {old}")
        assert fails(h, "user") == [
            (
                "REDACT",
                "REDACT_WINDOW_EXPIRED",
                "#chan",
                old,
                "60",
                "You can no longer delete this message (after 60 seconds)",
            )
        ]
        fresh = say(h, "user", "#chan", "fresh")
        h.advance(59)
        h.clear()
        h.send("user", f"REDACT #chan {fresh}")
        assert [m.command for m in h.messages("user")] == ["REDACT"]
        h.clear()
        h.send("op", f"REDACT #chan {old}")  # operators: any time
        assert [m.command for m in h.messages("op")] == ["REDACT"]

    def test_needs_two_parameters(self, h: CoreHarness) -> None:
        h.send("op", "REDACT #chan")
        assert h.numerics("op") == ["461"]

    def test_unknown_without_history(self) -> None:
        h = make(history=False)
        client(h, "a")
        h.send("a", "REDACT #chan x")
        assert h.numerics("a") == ["421"]

    def test_tagmsg_is_not_stored_so_unknown(self, h: CoreHarness) -> None:
        h.send("op", "@+draft/react=x TAGMSG #chan")
        msgid = h.messages("op")[-1].tags["msgid"]
        h.clear()
        h.send("op", f"REDACT #chan {msgid}")
        assert fails(h, "op")[0][1] == "UNKNOWN_MSGID"


class TestPrivate:
    def test_sender_redacts_a_private_message(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "user", "private")
        h.send("op", f"REDACT user {msgid} :oops")
        (mine,) = h.messages("op")
        (theirs,) = h.messages("user")
        assert mine.params == theirs.params == ("user", msgid, "oops")
        assert theirs.source == src("op")

    def test_recipient_and_strangers_cannot(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "user", "private")
        h.send("user", f"REDACT op {msgid}")
        assert fails(h, "user")[0][1:4] == ("REDACT_FORBIDDEN", "op", msgid)
        client(h, "censor", *CAPS)
        h.send("censor", f"REDACT user {msgid}")
        assert fails(h, "censor")[0][1:4] == ("UNKNOWN_MSGID", "user", msgid)
        assert h.lines("op") == [] and h.lines("user") == []

    def test_recipient_without_the_capability_sees_nothing(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "plain", "psst")
        h.send("op", f"REDACT plain {msgid}")
        assert h.lines("plain") == []


class TestLabels:
    def test_label_on_the_redactors_copy(self, h: CoreHarness) -> None:
        msgid = say(h, "op", "#chan", "x")
        h.send("op", f"@label=r1 REDACT #chan {msgid}")
        (got,) = h.messages("op")
        assert got.tags["label"] == "r1" and got.command == "REDACT"

    def test_without_the_capability_the_redactor_gets_ack(self) -> None:
        h = make()
        client(h, "a", "labeled-response", "echo-message", "message-tags")
        h.send("a", "JOIN #c")
        h.clear()
        msgid = say(h, "a", "#c", "x")
        h.send("a", f"@label=r2 REDACT #c {msgid}")
        assert h.lines("a") == [f"@label=r2 :{SERVER} ACK"]


class TestHistory:
    """Redacted messages are not returned; REDACT records are, to clients with the cap."""

    def history(self, h: CoreHarness, nick: str, command: str) -> list[Message]:
        h.send(nick, command)
        msgs = h.messages(nick)
        assert msgs[0].command == "BATCH" and msgs[-1].command == "BATCH", msgs
        return msgs[1:-1]

    def test_message_is_gone_from_history(self, h: CoreHarness) -> None:
        keep = say(h, "user", "#chan", "keep")
        gone = say(h, "user", "#chan", "gone")
        h.send("user", f"REDACT #chan {gone} :typo")
        h.clear()
        client(h, "reader", "batch", "message-tags", "draft/chathistory")
        h.send("reader", "JOIN #chan")
        h.clear()
        got = self.history(h, "reader", "CHATHISTORY LATEST #chan * 10")
        assert [(m.command, m.tags["msgid"]) for m in got] == [("PRIVMSG", keep)]
        entry = store(h).message("#chan", gone)
        assert entry is not None and entry.message.redacted and entry.message.text == ""

    def test_clients_with_the_cap_get_the_redact(self, h: CoreHarness) -> None:
        keep = say(h, "user", "#chan", "keep")
        gone = say(h, "user", "#chan", "gone")
        h.send("user", f"REDACT #chan {gone} :typo")
        h.clear()
        client(h, "reader", "batch", "message-tags", "draft/chathistory", RED)
        h.send("reader", "JOIN #chan")
        h.clear()
        got = self.history(h, "reader", "CHATHISTORY LATEST #chan * 10")
        assert [(m.command, m.params) for m in got] == [
            ("PRIVMSG", ("#chan", "keep")),
            ("REDACT", ("#chan", gone, "typo")),
        ]
        assert got[0].tags["msgid"] == keep and got[1].source == src("user")

    def test_each_redact_once_across_pages(self, h: CoreHarness) -> None:
        """A client resuming page by page sees every REDACT once, in the page whose span holds
        it, including one for a message it had already seen (not counted in the limit)."""
        ids = [say(h, "user", "#chan", f"m{i}") for i in range(4)]
        h.send("user", f"REDACT #chan {ids[0]}")
        h.clear()
        client(h, "reader", "batch", "message-tags", "draft/chathistory", RED)
        h.send("reader", "JOIN #chan")
        h.clear()
        seen: list[str] = []
        after = ids[0]
        for _ in range(5):
            page = self.history(h, "reader", f"CHATHISTORY AFTER #chan msgid={after} 2")
            seen += [f"{m.command}:{m.params[1]}" for m in page]
            messages = [m for m in page if m.command == "PRIVMSG"]
            if len(messages) < 2:
                break
            after = messages[-1].tags["msgid"]
        assert seen == ["PRIVMSG:m1", "PRIVMSG:m2", "PRIVMSG:m3", f"REDACT:{ids[0]}"]
        page = self.history(h, "reader", "CHATHISTORY LATEST #chan * 2")
        assert [m.command for m in page] == ["PRIVMSG", "PRIVMSG", "REDACT"]

    def test_replay_on_join_leaves_redacted_out(self) -> None:
        h = make(replay_lines=10)
        client(h, "a", *CAPS)
        h.send("a", "JOIN #c")
        say(h, "a", "#c", "stays")
        gone = say(h, "a", "#c", "goes")
        h.send("a", f"REDACT #c {gone}")
        client(h, "late")
        h.clear()
        h.send("late", "JOIN #c")
        texts = [m.params[1] for m in h.messages("late") if m.command == "PRIVMSG"]
        assert len(texts) == 1 and texts[0].endswith("stays")

    def test_a_multiline_message_can_be_redacted(self, h: CoreHarness) -> None:
        client(h, "ml", *CAPS, "draft/multiline")
        h.send("ml", "JOIN #chan")
        h.clear()
        h.send("ml", "BATCH +b draft/multiline #chan")
        h.send("ml", "@batch=b PRIVMSG #chan :one")
        h.send("ml", "@batch=b PRIVMSG #chan :two")
        h.send("ml", "BATCH -b")
        msgid = h.messages("ml")[0].tags["msgid"]
        h.clear()
        h.send("ml", f"REDACT #chan {msgid}")
        assert [m.command for m in h.messages("user")] == ["REDACT"]
        assert store(h).query("#chan", limit=10) == []
