"""K-lines, D-lines and STATS in the core (in memory, injected clock); audit and server notices;
channel list modes +e, +I, +q."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src


def make_oper(h: CoreHarness, nick: str) -> None:
    h.core.set_oper(h.users[nick], True)
    h.users[nick].oper_name = "root"


@pytest.fixture
def h() -> CoreHarness:
    h = harness()
    h.connect("op")
    make_oper(h, "op")
    return h


def records(h: CoreHarness) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    h.core.audit_sink = out.append
    return out


class TestKline:
    def test_applies_at_once_and_at_registration(self, h: CoreHarness) -> None:
        audit = records(h)
        h.connect("bad", ip="192.0.2.5")
        h.connect("good", ip="192.0.2.6")
        joined(h, "#a", "good", "bad")
        h.send("op", "KLINE 10 *@192.0.2.5 :spamming")
        assert h.lines("op") == [
            f":{SERVER} NOTICE op :K-line on *@192.0.2.5 set for 10m (spamming); "
            "1 connection(s) closed"
        ]
        assert h.peers["bad"].closed == "Banned: spamming"
        assert " 465 bad :You are banned from this server: spamming" in h.lines("bad")[0]
        assert h.lines("good") == [f":{src('bad').replace('127.0.0.1', '192.0.2.5')} QUIT K-lined"]
        assert h.users["good"].registered and h.peers["good"].closed is None
        assert audit[0]["action"] == "KLINE" and audit[0]["target"] == "*@192.0.2.5"
        assert audit[0]["duration"] == 600 and audit[0]["oper"] == "root"
        # A new connection registers, and is refused then.
        user = h.open("again", ip="192.0.2.5")
        assert user is not None
        h.send("again", "NICK again")
        h.send("again", "USER again 0 * :x")
        assert h.numerics("again") == ["465"]
        assert h.peers["again"].closed == "Banned: spamming"
        assert not h.core.connections.get(user.id)

    def test_nick_stands_for_its_host(self, h: CoreHarness) -> None:
        h.connect("bad", ip="203.0.113.9")
        h.send("op", "KLINE bad :bye")
        assert "*@203.0.113.9" in h.core.bans.klines
        assert h.peers["bad"].closed == "Banned: bye"

    def test_user_part_must_match(self, h: CoreHarness) -> None:
        h.connect("alice", ip="198.51.100.1")
        h.connect("bob", ip="198.51.100.1")
        h.send("op", "KLINE ~alice@198.51.100.1 :no")
        assert h.peers["alice"].closed is not None
        assert h.peers["bob"].closed is None

    def test_expires_with_the_clock(self, h: CoreHarness) -> None:
        h.send("op", "KLINE 1 *@192.0.2.5 :a minute")
        h.lines("op")
        h.advance(61)
        assert not h.core.bans.klines
        h.connect("back", ip="192.0.2.5")  # registers fine

    def test_unkline(self, h: CoreHarness) -> None:
        audit = records(h)
        h.send("op", "KLINE *@bad.example :x")
        h.send("op", "UNKLINE *@BAD.example")
        assert h.lines("op")[-1] == f":{SERVER} NOTICE op :K-line on *@bad.example removed"
        h.send("op", "UNKLINE *@bad.example")
        assert "FAIL UNKLINE NO_SUCH_BAN" in h.lines("op")[0]
        assert [r["action"] for r in audit] == ["KLINE", "UNKLINE"]

    @pytest.mark.parametrize("mask", ["*@*", "*@0.0.0.0/0", ":a b"])
    def test_too_wide_or_bad(self, h: CoreHarness, mask: str) -> None:
        h.send("op", f"KLINE {mask}")
        assert "FAIL KLINE INVALID_MASK" in h.lines("op")[0]
        assert not h.core.bans.klines

    def test_not_for_users(self, h: CoreHarness) -> None:
        h.connect("alice")
        for line in ("KLINE *@x.y", "UNKLINE *@x.y", "DLINE 10.0.0.1", "UNDLINE 10.0.0.1"):
            h.send("alice", line)
            assert h.numerics("alice") == ["481"]


class TestDline:
    def test_closes_matching_and_refuses_at_accept(self, h: CoreHarness) -> None:
        h.connect("v6", ip="2001:db8::5")
        h.connect("v6b", ip="2001:db9::5")
        h.open("pending", ip="2001:db8::6")  # not registered yet: closed too
        h.send("op", "DLINE 1h 2001:db8::/32 :range")
        assert h.peers["v6"].closed == "Banned: range"
        assert h.peers["pending"].closed == "Banned: range"
        assert h.peers["v6b"].closed is None
        assert h.open("new", ip="2001:db8:ffff::1") is None
        assert h.peers["new"].closed == "Banned: range"
        assert h.open("ok", ip="2001:db9::1") is not None
        assert h.core.per_ip.get("2001:db8:ffff::1") is None

    def test_undline_and_stats(self, h: CoreHarness) -> None:
        h.send("op", "DLINE 10.0.0.0/8 :ten")
        h.send("op", "DLINE 30 192.0.2.1")
        h.send("op", "KLINE ~x@y.z :why")
        h.lines("op")
        h.send("op", "STATS d")
        assert h.lines("op") == [
            f":{SERVER} 225 op D 10.0.0.0/8 ten",
            f":{SERVER} 225 op D 192.0.2.1/32 :No reason given (expires in 30m)",
            f":{SERVER} 219 op d :End of /STATS report",
        ]
        h.send("op", "STATS k")
        assert h.lines("op") == [
            f":{SERVER} 216 op K y.z * ~x why",
            f":{SERVER} 219 op k :End of /STATS report",
        ]
        h.send("op", "UNDLINE 10.1.1.1/8")
        assert h.lines("op") == [f":{SERVER} NOTICE op :D-line on 10.0.0.0/8 removed"]
        assert h.open("ten", ip="10.1.1.1") is not None

    def test_stats_k_is_for_opers(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "STATS k")
        assert h.numerics("alice") == ["481"]
        h.send("alice", "STATS u")
        assert h.numerics("alice") == ["242", "219"]


class TestSnomask:
    def test_oper_sees_notices_for_its_letters(self, h: CoreHarness) -> None:
        h.connect("watcher")
        make_oper(h, "watcher")
        h.connect("alice")
        h.send("watcher", "MODE watcher +s +k")
        assert h.lines("watcher") == [
            f":{SERVER} 008 watcher +k :Server notice mask",
            f":{src('watcher')} MODE watcher +s",
        ]
        h.send("op", "KLINE *@never.example")
        assert h.lines("watcher") == []  # b is not in +k
        h.send("op", "KILL alice :flooding")
        assert h.lines("watcher") == [
            f":{SERVER} NOTICE watcher :*** Notice -- op KILL alice!~alice@127.0.0.1 (flooding)"
        ]

    def test_plain_s_means_every_letter_and_users_cannot(self, h: CoreHarness) -> None:
        h.send("op", "MODE op +s")
        assert h.lines("op")[0] == f":{SERVER} 008 op +bkor :Server notice mask"
        h.connect("alice")
        h.send("alice", "MODE alice +s")
        assert h.numerics("alice") == ["481"]
        assert "s" not in h.users["alice"].modes

    def test_deoper_drops_s(self, h: CoreHarness) -> None:
        h.send("op", "MODE op +s")
        h.lines("op")
        h.send("op", "MODE op -o")
        assert h.lines("op") == [f":{src('op')} MODE op -os"]
        assert h.users["op"].snomask == ""

    def test_failed_oper_is_noticed_without_the_password(self, h: CoreHarness) -> None:
        audit = records(h)
        h.send("op", "MODE op +s")
        h.lines("op")
        h.connect("mallory")
        h.send("mallory", "OPER root s3cret-guess")
        notices = h.lines("op")
        assert notices == [f":{SERVER} NOTICE op :*** Notice -- mallory OPER-FAILED root"]
        assert "s3cret" not in str(audit)


class TestModeOverride:
    def test_oper_may_override_and_it_is_audited(self, h: CoreHarness) -> None:
        audit = records(h)
        joined(h, "#a", "alice")
        h.send("op", "MODE #a +m")
        assert h.lines("alice") == [f":{src('op')} MODE #a +m"]
        assert audit[-1]["action"] == "MODE" and audit[-1]["override"] == "+m"

    def test_users_still_need_ops(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "MODE #a +m")
        assert h.numerics("bob") == ["482"]


class TestChannelLists:
    def test_exception_lets_a_banned_user_in(self) -> None:
        h = harness()
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("alice", "MODE #a +b *!*@127.0.0.1")
        h.send("bob", "JOIN #a")
        assert h.numerics("bob") == ["474"]
        h.send("alice", "MODE #a +e bob")
        assert h.lines("alice")[-1] == f":{src('alice')} MODE #a +e bob!*@*"
        h.send("bob", "JOIN #a")
        assert h.numerics("bob")[0] == "JOIN"

    def test_invex_lets_in_without_invite(self) -> None:
        h = harness()
        joined(h, "#a", "alice")
        h.connect("bob")
        h.connect("carol")
        h.send("alice", "MODE #a +i")
        h.send("alice", "MODE #a +I *!~bob@*")
        h.send("bob", "JOIN #a")
        assert h.numerics("bob")[0] == "JOIN"
        h.send("carol", "JOIN #a")
        assert h.numerics("carol") == ["473"]

    def test_quiet_silences_unless_excepted_or_voiced(self) -> None:
        h = harness()
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +q bob!*@*")
        h.clear()
        h.send("bob", "PRIVMSG #a :hi")
        assert h.lines("bob") == [f":{SERVER} 404 bob #a :Cannot send to channel (you are quieted)"]
        assert h.lines("alice") == []
        h.send("alice", "MODE #a +e *!~bob@*")
        h.clear()
        h.send("bob", "PRIVMSG #a :hi")
        assert h.lines("alice") == [f":{src('bob')} PRIVMSG #a :hi"]

    def test_lists_and_numerics(self) -> None:
        h = harness()
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +eIq a!*@* b!*@* c!*@*")
        h.lines("alice")
        h.send("alice", "MODE #a e")
        h.send("alice", "MODE #a I")
        h.send("alice", "MODE #a q")
        me = src("alice")
        lines = [line.rsplit(" ", 1)[0] if "End" not in line else line for line in h.lines("alice")]
        assert lines == [
            f":{SERVER} 348 alice #a a!*@* {me}",
            f":{SERVER} 349 alice #a :End of channel exception list",
            f":{SERVER} 346 alice #a b!*@* {me}",
            f":{SERVER} 347 alice #a :End of channel invite exception list",
            f":{SERVER} 728 alice #a q c!*@* {me}",
            f":{SERVER} 729 alice #a q :End of channel quiet list",
        ]

    def test_remove_any_case_and_shared_bound(self) -> None:
        h = harness(limits={"maxbans": 3})
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +beI x!*@* y!*@* z!*@*")
        h.lines("alice")
        h.send("alice", "MODE #a +q w!*@*")
        assert h.numerics("alice") == ["478"]
        h.send("alice", "MODE #a -e Y!*@*")
        assert h.lines("alice") == [f":{src('alice')} MODE #a -e y!*@*"]
        assert h.core.channels["#a"].excepts == []

    def test_only_ops_change_lists(self) -> None:
        h = harness()
        joined(h, "#a", "alice", "bob")
        h.send("bob", "MODE #a +e bob")
        assert h.numerics("bob") == ["482"]
