"""The rest of the modern IRCv3 set, in memory: bot mode, WHOX, RENAME, UTF8ONLY, WALLOPS,
LINKS, INFO, HELP/HELPOP; and the conformance fixes of issue 11 (each test here failed before
its fix)."""

from __future__ import annotations

import pytest

from relaychat.protocol.message import parse
from relaychat.server.core import COMMANDS
from relaychat.store.memory import MemoryHistory
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src
from tests.unit.test_core_ircv3 import with_caps


@pytest.fixture
def h() -> CoreHarness:
    return harness()


class TestBotMode:
    """https://ircv3.net/specs/extensions/bot-mode"""

    def test_mode_whois_and_who(self, h: CoreHarness) -> None:
        h.connect("botnick")
        h.connect("usernick")
        h.send("botnick", "MODE botnick +B")
        assert h.lines("botnick") == [f":{src('botnick')} MODE botnick +B"]
        h.send("botnick", "JOIN #chan")
        h.send("usernick", "WHOIS botnick")
        assert f":{SERVER} 335 usernick botnick :is a bot" in h.lines("usernick")
        h.send("usernick", "WHO #chan")
        h.send("usernick", "WHO botnick %nf")
        assert h.lines("usernick") == [
            f":{SERVER} 352 usernick #chan ~botnick 127.0.0.1 {SERVER} botnick HB@ :0 Test User",
            f":{SERVER} 315 usernick #chan :End of WHO list",
            f":{SERVER} 354 usernick botnick HB",
            f":{SERVER} 315 usernick botnick :End of WHO list",
        ]
        h.send("botnick", "MODE botnick -B")
        h.send("usernick", "WHOIS botnick")
        assert not any(" 335 " in line for line in h.lines("usernick"))

    def test_bot_tag_only_with_message_tags(self, h: CoreHarness) -> None:
        with_caps(h, "user", "message-tags")
        with_caps(h, "timeonly", "server-time")
        h.connect("plain")
        h.connect("bot")
        h.send("bot", "MODE bot +B")
        for nick in ("bot", "user", "timeonly", "plain"):
            h.send(nick, "JOIN #chan")
        h.clear()
        h.send("bot", "PRIVMSG #chan :beep boop")
        h.send("bot", "PRIVMSG user :hi")
        tagged = h.messages("user")
        assert [m.tags.get("bot") for m in tagged] == ["", ""]
        assert all("bot" not in m.tags for m in h.messages("timeonly"))
        assert h.lines("plain") == [f":{src('bot')} PRIVMSG #chan :beep boop"]

    def test_every_event_of_a_bot_is_tagged(self, h: CoreHarness) -> None:
        with_caps(h, "user", "message-tags")
        h.connect("bot")
        h.send("bot", "MODE bot +B")
        h.send("user", "JOIN #chan")
        h.clear()
        h.send("bot", "JOIN #chan")
        h.send("bot", "NICK robot")
        assert [(m.command, m.tags.get("bot")) for m in h.messages("user")] == [
            ("JOIN", ""),
            ("NICK", ""),
        ]

    def test_isupport(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "VERSION")
        tokens = [t for line in h.lines("alice") for t in parse(line).params[1:-1]]
        assert {"BOT=B", "UTF8ONLY", "WHOX", "MONITOR=100"} <= set(tokens)


class TestWhox:
    """https://ircv3.net/specs/extensions/whox"""

    @pytest.mark.parametrize("fields", ["tcuihsnfdlaor", "roalfdnshiuct"])
    def test_every_field_in_the_fixed_order(self, h: CoreHarness, fields: str) -> None:
        h.connect("coolNick", realname="My UniqueReal Name")
        h.connect("other")
        h.send("coolNick", "JOIN #chan")
        h.send("other", "JOIN #chan")
        h.clear()
        h.now += 7
        h.send("other", f"WHO coolNick %{fields},123")
        assert h.lines("other") == [
            f":{SERVER} 354 other 123 * ~coolnick 255.255.255.255 127.0.0.1 {SERVER} coolNick H "
            "0 7 0 n/a :My UniqueReal Name",
            f":{SERVER} 315 other coolNick :End of WHO list",
        ]

    def test_token_only_and_channel(self, h: CoreHarness) -> None:
        joined(h, "#chan", "alice", "bob")
        h.core.set_account(h.users["bob"], "bobacct")
        h.send("alice", "WHO #chan %tcna,42")
        assert h.lines("alice") == [
            f":{SERVER} 354 alice 42 #chan alice 0",
            f":{SERVER} 354 alice 42 #chan bob bobacct",
            f":{SERVER} 315 alice #chan :End of WHO list",
        ]

    def test_own_ip_and_operators_see_ips(self, h: CoreHarness) -> None:
        h.connect("alice", ip="10.1.2.3")
        h.connect("bob", ip="10.9.9.9")
        h.send("alice", "WHO alice %ni")
        h.send("alice", "WHO bob %ni")
        h.core.set_oper(h.users["alice"], True)
        h.send("alice", "WHO bob %ni")
        replies = [parse(line).params[1:] for line in h.lines("alice") if " 354 " in line]
        assert replies == [
            ("10.1.2.3", "alice"),
            ("255.255.255.255", "bob"),
            ("10.9.9.9", "bob"),
        ]

    def test_bad_token_is_zero_and_opers_only_flag(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.core.set_oper(h.users["bob"], True)
        h.send("alice", "WHO * o%tn,abcd")
        assert h.lines("alice") == [
            f":{SERVER} 354 alice 0 bob",
            f":{SERVER} 315 alice * :End of WHO list",
        ]


class TestWhoMasks:
    def test_masks_match_nick_user_host_realname_and_full_masks(self, h: CoreHarness) -> None:
        h.connect("alice", realname="Alice Liddell")
        h.connect("bob", ip="10.0.0.5", realname="Robert")
        h.connect("carol")
        for mask, expected in [
            ("al*", ["alice"]),
            ("*LIDDELL", ["alice"]),
            ("10.0.0.*", ["bob"]),
            ("~bo?", ["bob"]),
            ("bob!*@10.*", ["bob"]),
            ("*!~carol@*", ["carol"]),
            ("nobody*", []),
        ]:
            h.send("carol", f"WHO :{mask}")
            nicks = [parse(line).params[5] for line in h.lines("carol") if " 352 " in line]
            assert nicks == expected, mask

    def test_server_name_matches_everyone(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "WHO relaychat.*")
        assert h.numerics("alice") == ["352", "352", "315"]

    def test_result_cap_says_so(self) -> None:
        h = harness(limits={"who_results": 3})
        for i in range(5):
            h.connect(f"user{i}")
        h.send("user0", "WHO user*")
        lines = h.lines("user0")
        assert [parse(line).command for line in lines] == ["352"] * 3 + ["315"]
        assert lines[-1] == (
            f":{SERVER} 315 user0 user* "
            ":End of WHO list (only the first 3 matches: narrow the mask)"
        )

    def test_invisible_users_are_seen_only_by_neighbours(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("hidden")
        h.send("hidden", "MODE hidden +i")
        h.send("alice", "WHO hid*")
        assert h.numerics("alice") == ["315"]
        h.send("alice", "JOIN #a")
        h.send("hidden", "JOIN #a")
        h.clear()
        h.send("alice", "WHO hid*")
        assert h.numerics("alice") == ["352", "315"]

    def test_who_text_follows_changes(self, h: CoreHarness) -> None:
        h.connect("alice")
        with_caps(h, "bob", "setname")
        h.send("bob", "SETNAME :Brand New")
        h.send("bob", "NICK robert")
        h.send("alice", "WHO :*brand new*")
        replies = [parse(line) for line in h.lines("alice")]
        assert [m.params[5] for m in replies if m.command == "352"] == ["robert"]


class TestRename:
    """https://ircv3.net/specs/extensions/channel-rename"""

    def test_with_and_without_the_cap(self, h: CoreHarness) -> None:
        with_caps(h, "op", "draft/channel-rename")
        with_caps(h, "capable", "draft/channel-rename")
        h.connect("plain")
        for nick in ("op", "capable", "plain"):
            h.send(nick, "JOIN #boaring")
        h.send("op", "TOPIC #boaring :the topic")
        h.clear()
        h.send("op", "RENAME #boaring #boring :Typo fix")
        renamed = f":{src('op')} RENAME #boaring #boring :Typo fix"
        assert h.lines("op") == [renamed]
        assert h.lines("capable") == [renamed]
        assert h.lines("plain") == [
            f":{src('plain')} PART #boaring :Typo fix",
            f":{src('plain')} JOIN #boring",
            f":{SERVER} 332 plain #boring :the topic",
            f":{SERVER} 333 plain #boring {src('op')} {int(h.now)}",
            f":{SERVER} 353 plain = #boring :@op capable plain",
            f":{SERVER} 366 plain #boring :End of /NAMES list",
        ]
        assert h.core.find_channel("#boaring") is None
        channel = h.core.find_channel("#BORING")
        assert channel is not None and channel.topic == "the topic"
        assert all("#boring" in u.channels for u in channel.members)
        h.send("plain", "PRIVMSG #boring :still here")
        assert h.lines("capable") == [f":{src('plain')} PRIVMSG #boring :still here"]

    def test_empty_reason_is_still_sent(self, h: CoreHarness) -> None:
        with_caps(h, "op", "draft/channel-rename")
        h.send("op", "JOIN #coding")
        h.clear()
        h.send("op", "RENAME #coding #programming")
        assert h.lines("op") == [f":{src('op')} RENAME #coding #programming :"]

    def test_case_only_change(self, h: CoreHarness) -> None:
        with_caps(h, "op", "draft/channel-rename")
        h.connect("plain")
        h.send("op", "JOIN #chan")
        h.send("plain", "JOIN #chan")
        h.clear()
        h.send("op", "RENAME #chan #Chan")
        assert h.lines("op") == [f":{src('op')} RENAME #chan #Chan :"]
        assert h.lines("plain") == []  # no fallback for a change of case
        channel = h.core.find_channel("#chan")
        assert channel is not None and channel.name == "#Chan"

    def test_modes_bans_invites_and_metadata_stay(self, h: CoreHarness) -> None:
        h.connect("op")
        h.connect("guest")
        h.send("op", "JOIN #old")
        h.send("op", "MODE #old +ik secret")
        h.send("op", "MODE #old +b bad!*@*")
        h.send("op", "INVITE guest #old")
        h.send("op", "METADATA #old SET url :https://example.org")
        h.send("op", "RENAME #old #new")
        channel = h.core.find_channel("#new")
        assert channel is not None
        assert channel.password == "secret" and "i" in channel.modes
        assert channel.bans[0][0] == "bad!*@*" and channel.metadata == {
            "url": "https://example.org"
        }
        h.clear()
        h.send("guest", "JOIN #new secret")
        assert h.numerics("guest")[0] == "JOIN"

    def test_errors(self, h: CoreHarness) -> None:
        joined(h, "#a", "op", "member")
        joined(h, "#b", "op")
        h.send("member", "RENAME #a #c")
        h.send("op", "RENAME #nowhere #c")
        h.send("op", "RENAME #a #b")
        h.send("op", "RENAME #a nochan")
        h.send("op", "RENAME #a #a")
        h.send("op", "RENAME #a")
        h.connect("outsider")
        h.send("outsider", "RENAME #a #c")
        assert h.lines("member") == [f":{SERVER} 482 member #a :You're not channel operator"]
        assert h.lines("op") == [
            f":{SERVER} 403 op #nowhere :No such channel",
            f":{SERVER} FAIL RENAME CHANNEL_NAME_IN_USE #a #b :Channel already exists",
            f":{SERVER} FAIL RENAME CANNOT_RENAME #a nochan "
            ":The new name must be a valid channel name other than the current one",
            f":{SERVER} FAIL RENAME CANNOT_RENAME #a #a "
            ":The new name must be a valid channel name other than the current one",
            f":{SERVER} 461 op RENAME :Not enough parameters",
        ]
        assert h.lines("outsider") == [f":{SERVER} 442 outsider #a :You're not on that channel"]


class TestUtf8Only:
    """https://ircv3.net/specs/extensions/utf8-only"""

    def test_non_utf8_text_is_refused_not_relayed(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", b"PRIVMSG #a :caf\xe9")
        h.send("alice", b"TOPIC #a :\xff")
        h.send("alice", b"\xffCMD x")
        text = "Message rejected: your IRC software must use UTF-8 encoding on this network"
        assert h.lines("alice") == [
            f":{SERVER} FAIL PRIVMSG INVALID_UTF8 :{text}",
            f":{SERVER} FAIL TOPIC INVALID_UTF8 :{text}",
            f":{SERVER} FAIL * INVALID_UTF8 :{text}",
        ]
        assert h.lines("bob") == []
        assert h.core.find_channel("#a").topic == ""  # type: ignore[union-attr]

    def test_before_registration_too(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", b"USER u 0 * :\xe9t\xe9")
        assert h.numerics("c") == ["FAIL"]
        assert h.users["c"].username == ""


class TestServerCommands:
    def test_wallops_reach_plus_w(self, h: CoreHarness) -> None:
        h.connect("oper")
        h.connect("watcher")
        h.connect("other")
        h.send("watcher", "MODE watcher +w")
        assert h.lines("watcher") == [f":{src('watcher')} MODE watcher +w"]
        h.send("other", "WALLOPS :hello")
        assert h.lines("other") == [
            f":{SERVER} 481 other :Permission Denied- You're not an IRC operator"
        ]
        h.core.set_oper(h.users["oper"], True)
        h.send("oper", "WALLOPS :server restart at noon")
        assert h.lines("watcher") == [f":{src('oper')} WALLOPS :server restart at noon"]
        assert h.lines("other") == [] and h.lines("oper") == []
        h.send("watcher", "MODE watcher -w")
        h.send("watcher", "QUIT")
        assert h.core.wallops == {}

    def test_links(self, h: CoreHarness) -> None:
        h.connect("nick")
        h.send("nick", "LINKS")
        h.send("nick", "LINKS other.example")
        assert h.lines("nick") == [
            f":{SERVER} 364 nick {SERVER} {SERVER} :0 relaychat IRC server",
            f":{SERVER} 365 nick * :End of /LINKS list",
            f":{SERVER} 365 nick other.example :End of /LINKS list",
        ]

    def test_info(self, h: CoreHarness) -> None:
        """Issue 11 #1: INFO was 421."""
        h.connect("nick")
        h.send("nick", "INFO")
        lines = h.lines("nick")
        assert [parse(line).command for line in lines] == ["371"] * 4 + ["374"]
        assert "relaychat-" in lines[0]
        assert lines[-1] == f":{SERVER} 374 nick :End of /INFO list"

    @pytest.mark.parametrize("verb", ["HELP", "HELPOP"])
    def test_help_and_helpop(self, h: CoreHarness, verb: str) -> None:
        h.connect("nick")
        h.send("nick", f"{verb} privmsg")
        h.send("nick", f"{verb} THISISNOTACOMMAND")
        assert h.lines("nick") == [
            f":{SERVER} 704 nick PRIVMSG :PRIVMSG <target>{{,<target>}} <text>",
            f":{SERVER} 705 nick PRIVMSG :Send a message to users or channels.",
            f":{SERVER} 706 nick PRIVMSG :End of /HELP",
            f":{SERVER} 524 nick THISISNOTACOMMAND :No help available on this topic",
        ]

    def test_operator_commands_say_so(self, h: CoreHarness) -> None:
        h.connect("nick")
        h.send("nick", "HELP wallops")
        assert f":{SERVER} 705 nick WALLOPS :Only for IRC operators." in h.lines("nick")

    def test_new_commands_have_a_summary(self) -> None:
        for name in ("MONITOR", "METADATA", "RENAME", "WALLOPS", "INFO", "LINKS", "HELPOP", "WHO"):
            assert COMMANDS[name].summary, name


class TestConformanceFixes:
    """Issue 11, "Fix": each of these failed before its fix."""

    def test_2_user_with_empty_realname_is_461(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :")
        assert h.lines("c") == [f":{SERVER} 461 alice USER :Not enough parameters"]
        assert not h.users["c"].registered

    def test_4_kick_pairs_channels_and_nicks(self, h: CoreHarness) -> None:
        joined(h, "#a", "op", "x", "y")
        joined(h, "#b", "op", "x", "y")
        h.send("op", "KICK #a,#b x,y :bye")
        assert h.lines("op") == [
            f":{src('op')} KICK #a x bye",
            f":{src('op')} KICK #b y bye",
        ]
        assert [u.nick for u in h.core.find_channel("#a").members] == ["op", "y"]  # type: ignore[union-attr]
        assert [u.nick for u in h.core.find_channel("#b").members] == ["op", "x"]  # type: ignore[union-attr]

    def test_4_kick_same_channel_twice_and_mismatched_lists(self, h: CoreHarness) -> None:
        joined(h, "#chan", "op", "bar", "baz")
        h.send("op", "KICK #chan,#chan bar,baz :bye")
        assert [parse(line).params[1] for line in h.lines("op")] == ["bar", "baz"]
        h.send("op", "KICK #chan,#chan op")
        assert h.lines("op") == [f":{SERVER} 461 op KICK :One channel, or one channel per nick"]

    def test_4_kick_one_channel_errors_once(self, h: CoreHarness) -> None:
        h.connect("op")
        h.send("op", "KICK #nowhere a,b,c")
        assert h.lines("op") == [f":{SERVER} 403 op #nowhere :No such channel"]

    def test_6_client_tags_over_4094_bytes_are_417(self, h: CoreHarness) -> None:
        """irctest testLengthLimits: 4094 bytes of tags pass, 4095 are refused."""
        with_caps(h, "alice", "message-tags", "echo-message")
        with_caps(h, "bob", "message-tags")
        h.send("alice", "JOIN #test")
        h.send("bob", "JOIN #test")
        h.clear()
        at_limit = "@foo=bar;+baz=%s TAGMSG #test" % ("a" * 4081,)
        assert at_limit.index("TAGMSG") == 4096
        h.send("alice", at_limit)
        (relay,) = h.messages("bob")
        assert relay.tags["+baz"] == "a" * 4081
        h.lines("alice")
        over = "@foo=bar;+baz=%s TAGMSG #test" % ("a" * 4082,)
        h.send("alice", over)
        assert h.numerics("alice") == ["417"]
        assert h.lines("bob") == []
        over_privmsg = "@foo=bar;+baz=%s PRIVMSG #test %s" % ("a" * 4082, "b" * 495)
        h.send("alice", over_privmsg)
        assert h.numerics("alice") == ["417"]
        assert h.lines("bob") == []

    def test_7_message_to_self_with_echo_comes_twice(self, h: CoreHarness) -> None:
        with_caps(h, "foo", "echo-message", "labeled-response", "message-tags")
        for verb in ("PRIVMSG", "NOTICE"):
            h.send("foo", f"@label=12345 {verb} foo :hi")
            msgs = h.messages("foo")
            assert [m.command for m in msgs] == [verb, verb]
            assert sum("label" in m.tags for m in msgs) == 1
            assert msgs[0].tags["msgid"] == msgs[1].tags["msgid"]
        h.send("foo", "@label=t1;+typing=active TAGMSG foo")
        msgs = h.messages("foo")
        assert [(m.command, "label" in m.tags) for m in msgs] == [
            ("TAGMSG", False),
            ("TAGMSG", True),
        ]

    def test_7_without_echo_once(self, h: CoreHarness) -> None:
        """labeled-response: "When a client sends a message to itself, the server MUST NOT
        include the label tag, except for any acknowledgment sent with echo-message": without
        echo-message the delivery is unlabeled and the label gets ACK."""
        with_caps(h, "foo", "labeled-response", "batch")
        h.send("foo", "@label=1 PRIVMSG foo :hi")
        assert h.lines("foo") == [f":{src('foo')} PRIVMSG foo :hi", f"@label=1 :{SERVER} ACK"]

    def test_7_history_keeps_a_self_message_once(self) -> None:
        h = harness()
        h.core.history = MemoryHistory()
        h.core.extra_caps["draft/chathistory"] = ""
        with_caps(h, "foo", "echo-message", "message-tags", "draft/chathistory", "batch")
        h.send("foo", "PRIVMSG foo :note to self")
        msgids = {m.tags["msgid"] for m in h.messages("foo")}
        h.send("foo", "CHATHISTORY LATEST foo * 10")
        listed = [m for m in h.messages("foo") if m.command == "PRIVMSG"]
        assert [m.params for m in listed] == [("foo", "note to self")]
        assert {listed[0].tags["msgid"]} == msgids

    def test_10_ban_masks_compare_casefolded(self, h: CoreHarness) -> None:
        joined(h, "#c", "op")
        h.send("op", "MODE #c +b BAR!*@*")
        h.send("op", "MODE #c +b bar!*@*")  # the same mask: no change
        h.send("op", "MODE #c -b bar!*@*")
        assert h.lines("op") == [
            f":{src('op')} MODE #c +b BAR!*@*",
            f":{src('op')} MODE #c -b BAR!*@*",
        ]
        assert h.core.find_channel("#c").bans == []  # type: ignore[union-attr]
