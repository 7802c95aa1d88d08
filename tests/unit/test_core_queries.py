"""Queries: WHO, WHOIS, WHOWAS, ISON, USERHOST, VERSION, TIME, HELP (RFC 2812 §3.4, §3.6, §4)."""

from __future__ import annotations

import pytest

from relaychat import __version__ as VERSION
from relaychat.protocol.message import parse
from relaychat.server.core import COMMANDS
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def who(nick: str, shown: str, target: str, flags: str, requester: str = "alice") -> str:
    """The 352 line ``requester`` gets for ``target`` (registered by the harness)."""
    user = f"~{target.lower()}"
    return (
        f":{SERVER} 352 {requester} {shown} {user} 127.0.0.1 {SERVER} {target} {flags} :0 Test User"
    )


class TestWho:
    def test_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +v carol")
        h.send("bob", "AWAY :out")
        h.clear()
        h.send("alice", "WHO #A")
        assert h.lines("alice") == [
            who("alice", "#a", "alice", "H@"),
            who("alice", "#a", "bob", "G"),
            who("alice", "#a", "carol", "H+"),
            f":{SERVER} 315 alice #A :End of WHO list",
        ]

    def test_channel_multi_prefix(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +v alice")
        h.send("alice", "CAP REQ multi-prefix")
        h.clear()
        h.send("alice", "WHO #a")
        assert h.lines("alice")[0] == who("alice", "#a", "alice", "H@+")

    def test_oper_flag_and_filter(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.core.set_oper(h.users["bob"], True)
        h.send("alice", "WHO #a o")
        assert h.lines("alice") == [
            who("alice", "#a", "bob", "H*"),
            f":{SERVER} 315 alice #a :End of WHO list",
        ]

    def test_secret_channel_from_outside(self, h: CoreHarness) -> None:
        joined(h, "#s", "bob")
        h.send("bob", "MODE #s +s")
        h.connect("alice")
        h.send("alice", "WHO #s")
        assert h.lines("alice") == [f":{SERVER} 315 alice #s :End of WHO list"]

    def test_invisible_hidden_from_outside_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "bob", "carol")
        h.send("carol", "MODE carol +i")
        h.connect("alice")
        h.send("alice", "WHO #a")
        assert h.lines("alice") == [
            who("alice", "#a", "bob", "H@"),
            f":{SERVER} 315 alice #a :End of WHO list",
        ]
        joined(h, "#b", "carol", "alice")  # now they share a channel
        h.send("alice", "WHO #a")
        assert h.lines("alice") == [
            who("alice", "#a", "bob", "H@"),
            who("alice", "#a", "carol", "H"),
            f":{SERVER} 315 alice #a :End of WHO list",
        ]

    def test_invisible_shown_to_fellow_members(self, h: CoreHarness) -> None:
        joined(h, "#a", "bob", "alice")
        h.send("bob", "MODE bob +i")
        h.clear()
        h.send("alice", "WHO #a")
        assert h.lines("alice")[0] == who("alice", "#a", "bob", "H@")

    def test_mask(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.connect("bobby")
        h.connect("carol")
        h.send("alice", "WHO b*")
        assert h.lines("alice") == [
            who("alice", "*", "bob", "H"),
            who("alice", "*", "bobby", "H"),
            f":{SERVER} 315 alice b* :End of WHO list",
        ]

    def test_mask_hides_invisible_unless_shared(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.connect("bobby")
        h.send("bobby", "MODE bobby +i")
        h.send("alice", "WHO bob*")
        assert h.lines("alice") == [
            who("alice", "*", "bob", "H"),
            f":{SERVER} 315 alice bob* :End of WHO list",
        ]
        joined(h, "#a", "alice", "bobby")
        h.send("alice", "WHO bob*")
        assert h.numerics("alice") == ["352", "352", "315"]

    def test_invisible_sees_itself(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE alice +i")
        h.clear()
        h.send("alice", "WHO *")
        assert h.lines("alice") == [
            who("alice", "*", "alice", "H"),
            f":{SERVER} 315 alice * :End of WHO list",
        ]

    def test_mask_opers_only(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.core.set_oper(h.users["bob"], True)
        h.send("alice", "WHO * o")
        assert h.lines("alice") == [
            who("alice", "*", "bob", "H*"),
            f":{SERVER} 315 alice * :End of WHO list",
        ]
        h.send("alice", "WHO alice o")
        assert h.lines("alice") == [f":{SERVER} 315 alice alice :End of WHO list"]

    def test_mask_replies_are_bounded(self, h: CoreHarness) -> None:
        for i in range(205):
            h.connect(f"u{i}")
        h.send("u0", "WHO u*")
        assert h.numerics("u0") == ["352"] * 200 + ["315"]

    def test_exact_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "WHO BOB")
        assert h.lines("alice") == [
            who("alice", "*", "bob", "H"),
            f":{SERVER} 315 alice BOB :End of WHO list",
        ]

    def test_without_mask(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "WHO")
        assert h.numerics("alice") == ["352", "352", "315"]

    def test_no_match(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "WHO ghost")
        h.send("alice", "WHO #nowhere")
        h.send("alice", "WHO :a b")
        assert h.lines("alice") == [
            f":{SERVER} 315 alice ghost :End of WHO list",
            f":{SERVER} 315 alice #nowhere :End of WHO list",
            f":{SERVER} 315 alice * :End of WHO list",
        ]

    def test_hostile_mask_is_fast(self, h: CoreHarness) -> None:
        h.connect("alice", realname="a" * 100)
        h.send("alice", "WHO " + "*a" * 20 + "*b")
        assert h.lines("alice") == [
            f":{SERVER} 315 alice {'*a' * 20}*b :End of WHO list",
        ]


class TestWhois:
    def test_full(self, h: CoreHarness) -> None:
        joined(h, "#a", "bob", "alice")
        joined(h, "#b", "carol", "bob")
        h.send("carol", "MODE #b +v bob")
        h.send("bob", "AWAY :busy")
        h.core.set_oper(h.users["bob"], True)
        h.advance(42)
        h.clear()
        h.send("alice", "WHOIS Bob")
        assert h.lines("alice") == [
            f":{SERVER} 311 alice bob ~bob 127.0.0.1 * :Test User",
            f":{SERVER} 319 alice bob :@#a +#b",
            f":{SERVER} 312 alice bob {SERVER} relaychat",
            f":{SERVER} 301 alice bob busy",
            f":{SERVER} 313 alice bob :is an IRC operator",
            f":{SERVER} 317 alice bob 42 1000000 :seconds idle, signon time",
            f":{SERVER} 318 alice bob :End of /WHOIS list",
        ]

    def test_no_channels(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "WHOIS bob")
        assert h.numerics("alice") == ["311", "312", "317", "318"]

    def test_secret_channels_hidden(self, h: CoreHarness) -> None:
        joined(h, "#pub", "bob")
        joined(h, "#sec", "bob")
        h.send("bob", "MODE #sec +s")
        h.connect("alice")
        h.send("alice", "WHOIS bob")
        assert f":{SERVER} 319 alice bob @#pub" in h.lines("alice")
        joined(h, "#sec", "alice")
        h.send("alice", "WHOIS bob")
        assert f":{SERVER} 319 alice bob :@#pub @#sec" in h.lines("alice")

    def test_with_server_param(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", f"WHOIS {SERVER} bob")
        assert h.numerics("alice") == ["311", "312", "317", "318"]

    def test_no_such_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "WHOIS ghost")
        h.send("alice", "WHOIS :a b")
        assert h.lines("alice") == [
            f":{SERVER} 401 alice ghost :No such nick/channel",
            f":{SERVER} 318 alice ghost :End of /WHOIS list",
            f":{SERVER} 401 alice * :No such nick/channel",
            f":{SERVER} 318 alice * :End of /WHOIS list",
        ]


class TestWhowas:
    def test_after_quit(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "QUIT")
        h.send("alice", "WHOWAS BOB")
        assert h.lines("alice") == [
            f":{SERVER} 314 alice bob ~bob 127.0.0.1 * :Test User",
            f":{SERVER} 312 alice bob {SERVER} :Mon Jan 12 13:46:40 1970",
            f":{SERVER} 369 alice BOB :End of WHOWAS",
        ]

    def test_newest_first_and_count(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.open("b1")
        h.send("b1", "NICK bob")
        h.send("b1", "USER first 0 * :First")
        h.send("b1", "QUIT")
        h.open("b2")
        h.send("b2", "NICK bob")
        h.send("b2", "USER second 0 * :Second")
        h.send("b2", "QUIT")
        h.send("alice", "WHOWAS bob")
        lines = h.lines("alice")
        assert [line for line in lines if " 314 " in line] == [
            f":{SERVER} 314 alice bob ~second 127.0.0.1 * Second",
            f":{SERVER} 314 alice bob ~first 127.0.0.1 * First",
        ]
        h.send("alice", "WHOWAS bob 1")
        assert h.numerics("alice") == ["314", "312", "369"]

    @pytest.mark.parametrize("count", ["0", "-1", "x", "²", "9" * 20])
    def test_odd_counts_mean_all(self, h: CoreHarness, count: str) -> None:
        h.connect("alice")
        h.connect("bob")
        for nick in ("bob2", "bob", "bob2"):  # "bob" is remembered twice
            h.send("bob", f"NICK {nick}")
        h.send("alice", f"WHOWAS bob {count}")
        assert h.numerics("alice") == ["314", "312", "314", "312", "369"]

    def test_unknown(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "WHOWAS ghost")
        h.send("alice", "WHOWAS :a b")
        assert h.lines("alice") == [
            f":{SERVER} 406 alice ghost :There was no such nickname",
            f":{SERVER} 369 alice ghost :End of WHOWAS",
            f":{SERVER} 406 alice * :There was no such nickname",
            f":{SERVER} 369 alice * :End of WHOWAS",
        ]

    def test_bounded(self) -> None:
        h = harness(limits={"whowas": 2})
        h.connect("alice")
        for i in range(3):
            h.send("alice", f"NICK n{i}")
        assert [e.nick for e in h.core.whowas] == ["n1", "n0"]


class TestIsonUserhost:
    def test_ison(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "ISON Alice BOB ghost")
        h.send("alice", "ISON :bob carol")
        h.send("alice", "ISON ghost")
        assert h.lines("alice") == [
            f":{SERVER} 303 alice :alice bob",
            f":{SERVER} 303 alice bob",
            f":{SERVER} 303 alice :",
        ]

    def test_userhost(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.connect("carol")
        h.send("carol", "AWAY :away")
        h.core.set_oper(h.users["carol"], True)
        h.send("alice", "USERHOST bob ghost CAROL")
        assert h.lines("alice") == [
            f":{SERVER} 302 alice :bob=+~bob@127.0.0.1 carol*=-~carol@127.0.0.1",
        ]

    def test_userhost_at_most_five(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "USERHOST alice alice alice alice alice alice")
        (line,) = h.lines("alice")
        assert line.count("alice=+") == 5


class TestServerInfo:
    def test_version(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "VERSION")
        lines = h.lines("alice")
        version = f"relaychat-{VERSION}."
        assert lines[0] == f":{SERVER} 351 alice {version} {SERVER} :relaychat IRC server"
        assert [line.split(" ")[1] for line in lines[1:]] == ["005", "005"]

    def test_version_other_server(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "VERSION irc.example.org")
        h.send("alice", "TIME irc.example.org")
        assert h.lines("alice") == [f":{SERVER} 402 alice irc.example.org :No such server"] * 2

    def test_time(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "TIME")
        h.send("alice", f"TIME {SERVER}")
        assert (
            h.lines("alice")
            == [f":{SERVER} 391 alice {SERVER} :Monday January 12 1970 -- 13:46:40 +00:00"] * 2
        )

    def test_help_index(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "HELP")
        lines = h.lines("alice")
        assert lines[0] == f":{SERVER} 704 alice * :relaychat commands:"
        assert lines[-1] == f":{SERVER} 706 alice * :End of /HELP"
        # The last parameter: a line holding a single name has no colon before it.
        listed = " ".join(parse(line).params[-1] for line in lines[1:-1]).split()
        assert listed == sorted(COMMANDS)
        assert all(" 705 alice * " in line for line in lines[1:-1])

    def test_help_topic(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "HELP kick")
        assert h.lines("alice") == [
            f":{SERVER} 704 alice KICK :KICK <channel>{{,<channel>}} <nick>{{,<nick>}} [<reason>]",
            f":{SERVER} 705 alice KICK :Remove users from a channel (channel operators); one "
            "channel for all nicks, or a channel per nick.",
            f":{SERVER} 706 alice KICK :End of /HELP",
        ]

    def test_help_unknown(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "HELP frob")
        h.send("alice", "HELP :a b")
        assert h.lines("alice") == [
            f":{SERVER} 524 alice FROB :No help available on this topic",
            f":{SERVER} 524 alice * :No help available on this topic",
        ]

    @pytest.mark.parametrize("verb", sorted(COMMANDS))
    def test_every_command_has_a_syntax_line(self, verb: str) -> None:
        assert COMMANDS[verb].help.startswith(verb)
