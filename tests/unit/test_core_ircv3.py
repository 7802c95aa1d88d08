"""IRCv3 capabilities in the core: each one's effect, in memory, with an injected clock.

Specs: https://ircv3.net/irc/ (one section per capability below).
"""

from __future__ import annotations

import re

import pytest

from relaychat.protocol.message import parse
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src

NOW = 1_000_000.0
TIME = "1970-01-12T13:46:40.000Z"  # the harness clock (NOW) as a server-time value


def with_caps(h: CoreHarness, nick: str, *caps: str) -> None:
    """Register ``nick`` after negotiating ``caps``."""
    h.open(nick)
    h.send(nick, "CAP LS 302")
    h.send(nick, "CAP REQ :" + " ".join(caps))
    h.send(nick, f"NICK {nick}")
    h.send(nick, f"USER {nick} 0 * :{nick}")
    h.send(nick, "CAP END")
    assert h.users[nick].registered
    h.lines(nick)


@pytest.fixture
def h() -> CoreHarness:
    return harness()


class TestServerTimeAndMsgid:
    def test_plain_client_gets_no_tags(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "PRIVMSG #a :hi")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG #a :hi"]

    def test_server_time_only(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "server-time")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "PRIVMSG #a :hi")
        assert h.lines("bob") == [f"@time={TIME} :{src('alice')} PRIVMSG #a :hi"]

    def test_message_tags_carry_msgid_and_client_tags(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "message-tags", "server-time")
        with_caps(h, "carol")
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "@+draft/reply=abc;+example.com/x=1\\s2;internal=no PRIVMSG #a :hi")
        (line,) = h.messages("bob")
        assert line.tags["time"] == TIME
        assert re.fullmatch(r"[0-9a-f]+", line.tags["msgid"])
        assert line.tags["+draft/reply"] == "abc"
        assert line.tags["+example.com/x"] == "1 2"
        assert "internal" not in line.tags  # only client-only (+) tags are relayed
        assert h.lines("carol") == [f":{src('alice')} PRIVMSG #a :hi"]

    def test_every_message_gets_its_own_msgid(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "message-tags")
        joined(h, "#a", "alice", "bob")
        for i in range(3):
            h.send("alice", f"PRIVMSG #a :m{i}")
        ids = [m.tags["msgid"] for m in h.messages("bob")]
        assert len(set(ids)) == 3

    def test_events_carry_tags_too(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "server-time", "message-tags")
        joined(h, "#a", "bob")
        h.connect("alice")
        h.send("alice", "JOIN #a")
        h.send("alice", "TOPIC #a :t")
        h.send("alice", "PART #a :bye")
        msgs = h.messages("bob")
        assert [m.command for m in msgs] == ["JOIN", "PART"]  # +t: alice cannot set the topic
        assert all("msgid" in m.tags and m.tags["time"] == TIME for m in msgs)


class TestEchoMessage:
    def test_sender_gets_its_copy_with_the_same_msgid(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "echo-message", "message-tags")
        with_caps(h, "bob", "message-tags")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "PRIVMSG #a :hello")
        (echo,) = h.messages("alice")
        (got,) = h.messages("bob")
        assert echo.source == src("alice") and echo.params == ("#a", "hello")
        assert echo.tags["msgid"] == got.tags["msgid"]

    def test_private_echo_and_notice(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "echo-message")
        h.connect("bob")
        h.send("alice", "NOTICE bob :psst")
        assert h.lines("alice") == [f":{src('alice')} NOTICE bob :psst"]

    def test_no_echo_without_the_cap(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "PRIVMSG #a :hello")
        assert h.lines("alice") == []


class TestTagmsg:
    def test_only_message_tags_clients_receive_it(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "message-tags")
        with_caps(h, "bob", "message-tags")
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "@+typing=active TAGMSG #a")
        (got,) = h.messages("bob")
        assert got.command == "TAGMSG" and got.tags["+typing"] == "active"
        assert h.lines("carol") == []

    def test_tagmsg_without_client_tags_is_dropped(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "message-tags")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "TAGMSG #a")
        assert h.lines("bob") == []

    def test_tagmsg_errors(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "@+typing=active TAGMSG nobody")
        assert h.lines("alice") == [f":{SERVER} 401 alice nobody :No such nick/channel"]


class TestLabeledResponse:
    def test_single_reply_carries_the_label(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "labeled-response", "batch")
        h.send("alice", "@label=abc PING :x")
        assert h.lines("alice") == [f"@label=abc :{SERVER} PONG {SERVER} x"]

    def test_several_replies_are_batched(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "labeled-response", "batch")
        h.send("alice", "@label=q1 WHOIS alice")
        msgs = h.messages("alice")
        assert msgs[0].command == "BATCH" and msgs[0].tags == {"label": "q1"}
        ref = msgs[0].params[0][1:]
        assert msgs[0].params == ("+" + ref, "labeled-response")
        assert [m.command for m in msgs[1:-1]] == ["311", "312", "317", "318"]
        assert all(m.tags == {"batch": ref} for m in msgs[1:-1])
        assert msgs[-1].command == "BATCH" and msgs[-1].params == ("-" + ref,)

    def test_no_reply_is_acked(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "labeled-response")
        h.connect("bob")
        h.send("alice", "@label=m1 PRIVMSG bob :hi")
        assert h.lines("alice") == [f"@label=m1 :{SERVER} ACK"]

    def test_echo_is_the_labeled_response(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "labeled-response", "echo-message")
        h.connect("bob")
        h.send("alice", "@label=m2 PRIVMSG bob :hi")
        assert h.lines("alice") == [f"@label=m2 :{src('alice')} PRIVMSG bob :hi"]

    def test_label_ignored_without_the_cap(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "@label=abc PING :x")
        assert h.lines("alice") == [f":{SERVER} PONG {SERVER} x"]


class TestJoinCaps:
    def test_extended_join(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "extended-join")
        joined(h, "#a", "bob")
        h.connect("alice", realname="Alice Liddell")
        h.send("alice", "JOIN #a")
        assert h.lines("bob") == [f":{src('alice')} JOIN #a * :Alice Liddell"]

    def test_userhost_in_names_and_multi_prefix(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "userhost-in-names", "multi-prefix")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +v alice")
        h.send("bob", "NAMES #a")
        names = [m for m in h.messages("bob") if m.command == "353"]
        assert names[0].params[-1] == f"@+{src('alice')} {src('bob')}"

    def test_away_notify(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "away-notify")
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "AWAY :out to lunch")
        h.send("alice", "AWAY")
        assert h.lines("bob") == [f":{src('alice')} AWAY :out to lunch", f":{src('alice')} AWAY"]
        assert h.lines("carol") == []
        # Joining while away tells away-notify members at once.
        h.connect("dave")
        h.send("dave", "AWAY :gone home")
        h.send("dave", "JOIN #a")
        assert h.lines("bob")[-1] == f":{src('dave')} AWAY :gone home"

    def test_invite_notify(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "invite-notify")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +o bob")
        h.connect("carol")
        h.clear()
        h.send("alice", "INVITE carol #a")
        assert h.lines("bob") == [f":{src('alice')} INVITE carol #a"]
        assert h.lines("carol") == [f":{src('alice')} INVITE carol #a"]


class TestAccountCaps:
    def test_account_notify_and_tag(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "account-notify", "account-tag")
        joined(h, "#a", "alice", "bob")
        h.core.set_account(h.users["alice"], "alice_acct")
        # account-tag applies to everything alice sends, this notification included.
        assert h.lines("bob") == [f"@account=alice_acct :{src('alice')} ACCOUNT alice_acct"]
        h.send("alice", "PRIVMSG #a :hi")
        (msg,) = h.messages("bob")
        assert msg.tags == {"account": "alice_acct"}
        h.core.set_account(h.users["alice"], None)
        assert h.lines("bob") == [f":{src('alice')} ACCOUNT *"]


class TestSetnameChghost:
    def test_setname(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "setname")
        with_caps(h, "bob", "setname")
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "SETNAME :Alice P. Liddell")
        assert h.lines("alice") == [f":{src('alice')} SETNAME :Alice P. Liddell"]
        assert h.lines("bob") == [f":{src('alice')} SETNAME :Alice P. Liddell"]
        assert h.lines("carol") == []
        assert h.users["alice"].realname == "Alice P. Liddell"

    def test_setname_too_long(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "SETNAME :" + "x" * 101)
        (line,) = h.lines("alice")
        assert line.startswith(f":{SERVER} FAIL SETNAME INVALID_REALNAME :")

    def test_chghost_needs_oper_and_notifies(self, h: CoreHarness) -> None:
        with_caps(h, "bob", "chghost")
        joined(h, "#a", "alice", "bob")
        h.send("alice", "CHGHOST bob ~b example.org")
        assert parse(h.lines("alice")[0]).command == "481"
        h.core.set_oper(h.users["alice"], True)
        h.send("alice", "CHGHOST alice ~al cloak.example")
        assert h.lines("bob") == [f":{src('alice')} CHGHOST ~al cloak.example"]
        assert h.users["alice"].prefix == "alice!~al@cloak.example"
        h.lines("alice")
        h.send("alice", "CHGHOST bob ~b :bad host")
        assert "FAIL CHGHOST INVALID_PARAMS" in h.lines("alice")[0]


class TestCapNotify:
    def test_302_implies_cap_notify_and_it_cannot_be_removed(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP LS 302")
        h.send("c", "CAP REQ :-cap-notify")
        assert h.lines("c")[-1] == f":{SERVER} CAP * NAK -cap-notify"
        assert "cap-notify" in h.users["c"].caps

    def test_ls_302_is_split_when_long(self, h: CoreHarness) -> None:
        h.core.extra_caps["draft/example-long"] = "x" * 300
        h.open("c")
        h.send("c", "CAP LS 302")
        lines = [parse(line) for line in h.lines("c")]
        assert len(lines) >= 2
        assert all(line.params[:3] == ("*", "LS", "*") for line in lines[:-1])
        assert lines[-1].params[:2] == ("*", "LS") and lines[-1].params[2] != "*"
        assert any("draft/example-long=" + "x" * 300 in line.params[-1] for line in lines)
        assert all(len(line.serialize()) <= 510 for line in lines)
