"""Messages between users: PRIVMSG, NOTICE (RFC 2812 §3.3), STATUSMSG and AWAY (§4.1)."""

from __future__ import annotations

import pytest

from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src


@pytest.fixture
def h() -> CoreHarness:
    return harness()


class TestChannelMessages:
    @pytest.mark.parametrize("verb", ["PRIVMSG", "NOTICE"])
    def test_reaches_members_but_not_sender(self, h: CoreHarness, verb: str) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.connect("dave")
        h.send("alice", f"{verb} #A :hello all")
        line = f":{src('alice')} {verb} #a :hello all"
        assert h.lines("bob") == [line]
        assert h.lines("carol") == [line]
        assert h.lines("alice") == []
        assert h.lines("dave") == []

    def test_same_bytes_for_every_member(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "PRIVMSG #a :x")
        assert (
            h.peers["bob"].buffer
            == h.peers["carol"].buffer
            == (f":{src('alice')} PRIVMSG #a :x\r\n".encode())
        )

    def test_text_with_leading_colon(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "PRIVMSG #a ::-)")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG #a ::-)"]

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG #nowhere :hi")
        assert h.lines("alice") == [f":{SERVER} 403 alice #nowhere :No such channel"]

    def test_no_external_messages(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "PRIVMSG #a :hi")
        assert h.lines("bob") == [
            f":{SERVER} 404 bob #a :Cannot send to channel (no external messages)"
        ]
        assert h.lines("alice") == []

    def test_external_messages_allowed_with_minus_n(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a -n")
        h.connect("bob")
        h.clear()
        h.send("bob", "PRIVMSG #a :from outside")
        assert h.lines("alice") == [f":{src('bob')} PRIVMSG #a :from outside"]
        assert h.lines("bob") == []

    def test_moderated(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +mv carol")
        h.clear()
        h.send("bob", "PRIVMSG #a :can I?")
        assert h.lines("bob") == [f":{SERVER} 404 bob #a :Cannot send to channel (+m)"]
        assert h.lines("alice") == []
        h.send("carol", "PRIVMSG #a :voiced")
        h.send("alice", "PRIVMSG #a :op")
        assert h.lines("bob") == [
            f":{src('carol')} PRIVMSG #a :voiced",
            f":{src('alice')} PRIVMSG #a :op",
        ]

    def test_banned_member(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +b bob!*@*")
        h.clear()
        h.send("bob", "PRIVMSG #a :still here")
        assert h.lines("bob") == [f":{SERVER} 404 bob #a :Cannot send to channel (you are banned)"]
        assert h.lines("carol") == []

    def test_banned_but_voiced(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +bv bob bob")
        h.clear()
        h.send("bob", "PRIVMSG #a :voice wins")
        assert h.lines("alice") == [f":{src('bob')} PRIVMSG #a :voice wins"]

    def test_banned_outsider_with_minus_n(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a -n+b bob")
        h.connect("bob")
        h.send("bob", "PRIVMSG #a :hi")
        assert h.numerics("bob") == ["404"]


class TestPrivateMessages:
    @pytest.mark.parametrize("verb", ["PRIVMSG", "NOTICE"])
    def test_to_nick(self, h: CoreHarness, verb: str) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", f"{verb} BOB :psst")
        assert h.lines("bob") == [f":{src('alice')} {verb} bob :psst"]
        assert h.lines("alice") == []

    def test_to_self(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG alice :note")
        assert h.lines("alice") == [f":{src('alice')} PRIVMSG alice :note"]

    def test_no_such_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG ghost :hi")
        assert h.lines("alice") == [f":{SERVER} 401 alice ghost :No such nick/channel"]

    def test_unregistered_nick_is_not_a_target(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.open("c")
        h.send("c", "NICK pending")
        h.send("alice", "PRIVMSG pending :hi")
        assert h.lines("alice") == [f":{SERVER} 401 alice pending :No such nick/channel"]
        assert h.lines("c") == []

    def test_away_reply(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "AWAY :gone to lunch")
        assert h.lines("bob") == [f":{SERVER} 306 bob :You have been marked as being away"]
        h.send("alice", "PRIVMSG bob :hi")
        assert h.lines("alice") == [f":{SERVER} 301 alice bob :gone to lunch"]
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG bob :hi"]
        h.send("alice", "NOTICE bob :hi")
        assert h.lines("alice") == []
        h.send("bob", "AWAY")
        assert h.lines("bob") == [
            f":{src('alice')} NOTICE bob :hi",
            f":{SERVER} 305 bob :You are no longer marked as being away",
        ]
        h.send("alice", "PRIVMSG bob :back?")
        assert h.lines("alice") == []

    def test_away_truncated_to_awaylen(self) -> None:
        h = harness(limits={"awaylen": 4})
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "AWAY :abcdefg")
        h.send("alice", "PRIVMSG bob :hi")
        assert h.lines("alice") == [f":{SERVER} 301 alice bob abcd"]


class TestTargets:
    def test_several_targets(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.connect("carol")
        h.send("alice", "PRIVMSG #a,carol,ghost :hi all")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG #a :hi all"]
        assert h.lines("carol") == [f":{src('alice')} PRIVMSG carol :hi all"]
        assert h.lines("alice") == [f":{SERVER} 401 alice ghost :No such nick/channel"]

    def test_empty_targets_are_skipped(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "PRIVMSG ,bob, :hi")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG bob :hi"]
        assert h.lines("alice") == []

    def test_too_many_targets(self) -> None:
        h = harness(limits={"maxtargets": 2})
        for nick in ("alice", "b1", "b2", "b3", "b4"):
            h.connect(nick)
        h.send("alice", "PRIVMSG b1,b2,b3,b4 :hi")
        assert h.lines("alice") == [
            f":{SERVER} 407 alice b3 :Too many targets (at most 2)",
            f":{SERVER} 407 alice b4 :Too many targets (at most 2)",
        ]
        assert h.numerics("b1") == ["PRIVMSG"]
        assert h.numerics("b2") == ["PRIVMSG"]
        assert h.lines("b3") == []
        assert h.lines("b4") == []

    def test_no_recipient(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG")
        h.send("alice", "PRIVMSG :")
        assert h.lines("alice") == [f":{SERVER} 411 alice :No recipient given (PRIVMSG)"] * 2

    def test_no_text(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "PRIVMSG bob")
        h.send("alice", "PRIVMSG bob :")
        assert h.lines("alice") == [f":{SERVER} 412 alice :No text to send"] * 2
        assert h.lines("bob") == []

    def test_unsafe_target_echo(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG a:b,::x :hi")
        assert h.lines("alice") == [
            f":{SERVER} 401 alice a:b :No such nick/channel",
            f":{SERVER} 401 alice * :No such nick/channel",
        ]


class TestNoticeNeverErrors:
    """RFC 2812 §3.3.2: automatic replies MUST NEVER be sent in response to a NOTICE."""

    @pytest.mark.parametrize(
        "line",
        [
            "NOTICE",
            "NOTICE ghost",
            "NOTICE ghost :hi",
            "NOTICE #nowhere :hi",
            "NOTICE #a :outside",
            "NOTICE b1,b2,b3,b4,b5,b6 :too many",
        ],
    )
    def test_silent(self, h: CoreHarness, line: str) -> None:
        joined(h, "#a", "owner")
        for nick in ("b1", "b2", "b3", "b4", "b5", "b6"):
            h.connect(nick)
        h.connect("alice")
        h.send("alice", line)
        assert h.lines("alice") == []

    def test_silent_when_moderated_or_banned(self, h: CoreHarness) -> None:
        joined(h, "#a", "owner", "alice")
        h.send("owner", "MODE #a +m")
        h.clear()
        h.send("alice", "NOTICE #a :hi")
        h.send("owner", "MODE #a -m+b alice")
        h.clear()
        h.send("alice", "NOTICE #a :hi")
        assert h.lines("alice") == []
        assert h.lines("owner") == []


class TestStatusMsg:
    """STATUSMSG=@+: ``@#chan`` reaches the operators, ``+#chan`` the voiced and operators."""

    def test_ops_only(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol", "dave")
        h.send("alice", "MODE #a +ov bob carol")
        h.clear()
        h.send("dave", "PRIVMSG @#a :ops, look")
        line = f":{src('dave')} PRIVMSG @#a :ops, look"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert h.lines("carol") == []
        assert h.lines("dave") == []

    def test_voiced_and_ops(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +v bob")
        h.clear()
        h.send("alice", "NOTICE +#a :voices")
        assert h.lines("bob") == [f":{src('alice')} NOTICE +#a :voices"]
        assert h.lines("carol") == []
        assert h.lines("alice") == []

    def test_same_checks_as_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "PRIVMSG @#a :hi")
        h.send("bob", "PRIVMSG @#nowhere :hi")
        assert h.lines("bob") == [
            f":{SERVER} 404 bob #a :Cannot send to channel (no external messages)",
            f":{SERVER} 403 bob #nowhere :No such channel",
        ]


class TestLength:
    """A relayed message must still fit in 512 bytes once the server adds the sender's prefix."""

    def test_long_channel_message_is_truncated(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        head = "PRIVMSG #a :"
        text = ("ab " * 200)[: 510 - len(head)]
        h.send("alice", head + text)
        (line,) = h.peers["bob"].buffer.split(b"\r\n")[:-1]
        relayed = f":{src('alice')} PRIVMSG #a :".encode()
        assert line == relayed + text[: 510 - len(relayed)].encode()
        assert len(line) == 510

    def test_long_private_message_is_truncated_on_a_character(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        head = "PRIVMSG bob :"
        h.send("alice", head + "é" * ((510 - len(head)) // 2))
        (line,) = h.peers["bob"].buffer.split(b"\r\n")[:-1]
        assert len(line) <= 510
        assert line.decode().endswith("é")

    def test_short_message_untouched(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "PRIVMSG bob :" + "y" * 400)
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG bob :" + "y" * 400]


class TestActivity:
    def test_privmsg_resets_idle_time(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.advance(50)
        h.send("alice", "PRIVMSG bob :hi")
        h.advance(7)
        h.send("bob", "WHOIS alice")
        idle = [line for line in h.lines("bob") if " 317 " in line]
        assert idle == [f":{SERVER} 317 bob alice 7 1000000 :seconds idle, signon time"]


def test_duplicate_targets_get_one_copy() -> None:
    h = CoreHarness()
    h.connect("alice")
    h.connect("bob")
    h.send("alice", "PRIVMSG bob,BOB,bob :once")
    assert h.lines("bob") == [":alice!~alice@127.0.0.1 PRIVMSG bob :once"]
