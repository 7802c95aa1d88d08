"""Registration and connection commands of the core: PASS, NICK, USER, CAP, PING, PONG, QUIT,
the welcome burst (RFC 2812 §3.1, §5.1; IRCv3 capability negotiation), LUSERS and MOTD."""

from __future__ import annotations

import pytest

from relaychat import __version__ as VERSION
from relaychat.passwords import hash_password
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src

WELCOME_BURST = ["001", "002", "003", "004", "005", "005", "251", "255", "265", "266", "422"]


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def isupport(lines: list[str]) -> dict[str, str]:
    """The 005 tokens of ``lines`` as a dict (a token without ``=`` maps to "")."""
    tokens: dict[str, str] = {}
    for line in lines:
        parts = line.split(" ")
        if parts[1] != "005":
            continue
        text_at = line.index(" :")
        assert line[text_at:] == " :are supported by this server"
        middle = line[:text_at].split(" ")[3:]
        assert 1 <= len(middle) <= 13  # at most 13 tokens per 005 line
        for token in middle:
            key, _, value = token.partition("=")
            tokens[key] = value
    return tokens


class TestRegistration:
    """RFC 2812 §3.1: NICK and USER in either order complete registration."""

    def test_nick_then_user(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        assert h.lines("c") == []
        h.send("c", "USER alice 0 * :Alice Liddell")
        assert h.numerics("c") == WELCOME_BURST
        assert h.users["c"].registered

    def test_user_then_nick(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "USER alice 0 * :Alice Liddell")
        assert h.lines("c") == []
        h.send("c", "NICK alice")
        assert h.numerics("c") == WELCOME_BURST

    def test_welcome_lines(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice Liddell")
        lines = h.lines("c")
        assert lines[:4] == [
            f":{SERVER} 001 alice :Welcome to the relaychat IRC Network alice!~alice@127.0.0.1",
            f":{SERVER} 002 alice :Your host is {SERVER}, running version relaychat-{VERSION}",
            f":{SERVER} 003 alice :This server was created 1970-01-12 13:46:40 UTC",
            f":{SERVER} 004 alice {SERVER} relaychat-{VERSION} Biosw Ibeiklmnoqstv Ibeklovq",
        ]
        assert lines[-5:] == [
            f":{SERVER} 251 alice :There are 1 users and 0 invisible on 1 servers",
            f":{SERVER} 255 alice :I have 1 clients and 0 servers",
            f":{SERVER} 265 alice 1 1 :Current local users 1, max 1",
            f":{SERVER} 266 alice 1 1 :Current global users 1, max 1",
            f":{SERVER} 422 alice :MOTD File is missing",
        ]

    def test_isupport_tokens(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        tokens = isupport(h.lines("c"))
        expected = {
            "CASEMAPPING": "rfc1459",
            "CHANTYPES": "#",
            "PREFIX": "(ov)@+",
            "CHANMODES": "beIq,k,l,imnst",
            "CHANLIMIT": "#:50",
            "NICKLEN": "30",
            "CHANNELLEN": "64",
            "TOPICLEN": "390",
            "KICKLEN": "390",
            "AWAYLEN": "390",
            "MAXTARGETS": "4",
            "MODES": "4",
            "NETWORK": "relaychat",
            "STATUSMSG": "@+",
            "MAXLIST": "beIq:100",
            "EXCEPTS": "e",
            "INVEX": "I",
        }
        assert {k: tokens.get(k) for k in expected} == expected

    def test_isupport_follows_config(self) -> None:
        h = harness(
            network="TestNet",
            limits={"nicklen": 12, "channellen": 20, "maxtargets": 7, "modes": 3},
        )
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        tokens = isupport(h.lines("c"))
        assert tokens["NETWORK"] == "TestNet"
        assert tokens["NICKLEN"] == "12"
        assert tokens["CHANNELLEN"] == "20"
        assert tokens["MAXTARGETS"] == "7"
        assert tokens["MODES"] == "3"
        assert tokens["TARGMAX"] == "JOIN:,KICK:7,LIST:7,NAMES:7,NOTICE:7,PART:,PRIVMSG:7,WHOIS:1"

    def test_nick_needed_before_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "USER alice 0 * :Alice")
        h.send("c", "JOIN #a")
        assert h.lines("c") == [f":{SERVER} 451 * :You have not registered"]
        assert not h.users["c"].registered

    def test_nick_can_change_before_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK first")
        h.send("c", "NICK second")
        h.send("c", "USER x 0 * :X")
        assert h.lines("c")[0].startswith(f":{SERVER} 001 second :")
        # The first nick was released when the unregistered client changed it.
        h.connect("first")

    def test_unregistered_client_holds_its_nick(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.open("d")
        h.send("d", "NICK alice")
        assert h.lines("d") == [f":{SERVER} 433 * alice :Nickname is already in use"]

    def test_username_is_sanitised(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER a$l/ice!@x 0 * :Alice")
        assert h.users["c"].prefix == "alice!~alicex@127.0.0.1"


class TestProtocolErrors:
    def test_line_too_long_gets_417_and_the_link_lives(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PRIVMSG bob :" + "x" * 600)
        assert h.lines("alice") == [f":{SERVER} 417 alice :Input line was too long"]
        h.send("alice", "PING x")
        assert h.numerics("alice") == ["PONG"]

    def test_nul_is_refused(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", b"PRIVMSG #a :a\x00b")
        h.send("alice", b"QUIT :a\x00b")
        assert h.lines("bob") == []
        assert h.peers["alice"].closed is None
        assert h.core.find_user("alice") is h.users["alice"]


CAPS = (
    "account-notify account-tag away-notify batch cap-notify chghost draft/channel-rename "
    "draft/metadata-2 draft/multiline echo-message extended-join extended-monitor "
    "invite-notify labeled-response message-tags multi-prefix server-time setname "
    "standard-replies userhost-in-names"
)
#: The same with CAP LS 302 values (draft/multiline and draft/metadata-2 carry their limits).
CAPS_302 = CAPS.replace("draft/multiline", "draft/multiline=max-bytes=4096,max-lines=100").replace(
    "draft/metadata-2",
    "draft/metadata-2=before-connect,max-subs=50,max-keys=20,max-value-bytes=300",
)


def ls_302(target: str) -> list[str]:
    """The CAP LS 302 reply: :data:`CAPS_302` split (spec: a line before the last is marked
    ``*``) where the server splits it, after 380 characters of capabilities."""
    lines: list[str] = []
    current = ""
    for word in CAPS_302.split():
        if current and len(current) + len(word) + 1 > 380:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return [
        f":{SERVER} CAP {target} LS * :{line}"
        if i < len(lines) - 1
        else f":{SERVER} CAP {target} LS :{line}"
        for i, line in enumerate(lines)
    ]


class TestCap:
    """IRCv3 capability negotiation: https://ircv3.net/specs/extensions/capability-negotiation"""

    def test_ls_holds_registration_until_end(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP LS")
        assert h.lines("c") == [f":{SERVER} CAP * LS :{CAPS}"]
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.lines("c") == []
        assert not h.users["c"].registered
        h.send("c", "CAP END")
        assert h.numerics("c") == WELCOME_BURST

    def test_ls_302(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP LS 302")
        assert h.lines("c") == ls_302("*")
        assert h.users["c"].cap_version == 302
        assert h.users["c"].caps == {"cap-notify"}  # implied by 302

    def test_req_alone_holds_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "CAP REQ :multi-prefix")
        h.send("c", "USER alice 0 * :Alice")
        # Once the client has a nick, CAP replies are addressed to it.
        assert h.lines("c") == [f":{SERVER} CAP alice ACK multi-prefix"]
        h.send("c", "CAP END")
        assert h.numerics("c") == WELCOME_BURST
        assert h.users["c"].caps == {"multi-prefix"}

    def test_req_ack_and_list(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP LS 302")
        h.send("c", "CAP LIST")
        h.send("c", "CAP REQ :multi-prefix")
        h.send("c", "CAP LIST")
        assert h.lines("c") == [
            *ls_302("*"),
            f":{SERVER} CAP * LIST cap-notify",
            f":{SERVER} CAP * ACK multi-prefix",
            f":{SERVER} CAP * LIST :cap-notify multi-prefix",
        ]

    def test_req_unknown_is_nak(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP REQ :bogus-cap")
        assert h.lines("c") == [f":{SERVER} CAP * NAK bogus-cap"]

    def test_req_is_all_or_nothing(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP REQ :multi-prefix bogus")
        h.send("c", "CAP LIST")
        assert h.lines("c") == [
            f":{SERVER} CAP * NAK :multi-prefix bogus",
            f":{SERVER} CAP * LIST :",
        ]
        assert h.users["c"].caps == set()

    def test_req_removal(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP REQ multi-prefix")
        h.send("c", "CAP REQ -multi-prefix")
        assert h.lines("c") == [
            f":{SERVER} CAP * ACK multi-prefix",
            f":{SERVER} CAP * ACK -multi-prefix",
        ]
        assert h.users["c"].caps == set()

    def test_empty_req_is_nak(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP REQ :")
        assert h.lines("c") == [f":{SERVER} CAP * NAK :"]

    def test_invalid_subcommand(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP FOO")
        assert h.lines("c") == [f":{SERVER} 410 * FOO :Invalid CAP subcommand"]

    def test_invalid_subcommand_unsafe_param(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP :a b")
        assert h.lines("c") == [f":{SERVER} 410 * * :Invalid CAP subcommand"]

    def test_cap_without_subcommand(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP")
        assert h.lines("c") == [f":{SERVER} 461 * CAP :Not enough parameters"]

    def test_end_without_negotiation_is_harmless(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "CAP END")
        assert h.lines("c") == []
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.numerics("c") == WELCOME_BURST

    def test_cap_after_registration(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "CAP LS 302")
        h.send("alice", "CAP REQ multi-prefix")
        h.send("alice", "CAP END")
        assert h.lines("alice") == [
            *ls_302("alice"),
            f":{SERVER} CAP alice ACK multi-prefix",
        ]
        assert h.users["alice"].caps == {"cap-notify", "multi-prefix"}


class TestPass:
    """RFC 2812 §3.1.1: PASS must match the server password, else 464 and the link closes."""

    def test_correct_plain_password(self) -> None:
        h = harness(password="sesame")
        h.open("c")
        h.send("c", "PASS sesame")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.numerics("c") == WELCOME_BURST
        assert h.peers["c"].closed is None

    def test_correct_hashed_password(self) -> None:
        h = harness(password=hash_password("sesame"))
        h.open("c")
        h.send("c", "PASS sesame")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.numerics("c")[0] == "001"

    def test_wrong_password(self) -> None:
        h = harness(password="sesame")
        h.open("c")
        h.send("c", "PASS open")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.lines("c") == [f":{SERVER} 464 alice :Password incorrect"]
        assert h.peers["c"].closed == "Closing Link: 127.0.0.1 (Bad password)"
        assert h.core.connections == {}
        assert h.core.users == {}  # the nick was released

    def test_missing_password(self) -> None:
        h = harness(password="sesame")
        h.open("c")
        h.send("c", "USER alice 0 * :Alice")
        h.send("c", "NICK alice")
        assert h.lines("c") == [f":{SERVER} 464 alice :Password incorrect"]
        assert h.peers["c"].closed == "Closing Link: 127.0.0.1 (Bad password)"

    def test_password_checked_at_cap_end(self) -> None:
        h = harness(password="sesame")
        h.open("c")
        h.send("c", "CAP LS")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        h.send("c", "PASS sesame")
        h.lines("c")
        h.send("c", "CAP END")
        assert h.numerics("c") == WELCOME_BURST

    def test_pass_ignored_without_server_password(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "PASS whatever")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        assert h.numerics("c") == WELCOME_BURST

    def test_pass_needs_a_parameter(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "PASS")
        assert h.lines("c") == [f":{SERVER} 461 * PASS :Not enough parameters"]


class TestAlreadyRegistered:
    def test_user_again(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "USER other 0 * :Other")
        assert h.lines("alice") == [f":{SERVER} 462 alice :You may not reregister"]
        assert h.users["alice"].prefix == src("alice")

    def test_pass_again(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PASS x")
        assert h.lines("alice") == [f":{SERVER} 462 alice :You may not reregister"]

    def test_user_twice_before_nick(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "USER one 0 * :One")
        h.send("c", "USER two 0 * :Two")
        assert h.lines("c") == [f":{SERVER} 462 * :You may not reregister"]
        h.send("c", "NICK alice")
        assert h.users["c"].prefix == "alice!~one@127.0.0.1"


class TestNick:
    """RFC 2812 §3.1.2."""

    def test_no_nick_given(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NICK")
        h.send("alice", "NICK :")
        assert h.lines("alice") == [f":{SERVER} 431 alice :No nickname given"] * 2

    @pytest.mark.parametrize("bad", ["1abc", "-dash", "#chan", "a,b", "a.b", "x" * 31, "é"])
    def test_erroneous(self, h: CoreHarness, bad: str) -> None:
        h.connect("alice")
        h.send("alice", f"NICK {bad}")
        assert h.lines("alice") == [f":{SERVER} 432 alice {bad} :Erroneous nickname"]
        assert h.users["alice"].nick == "alice"

    def test_erroneous_unsafe_param(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NICK :a b")
        h.send("alice", "NICK ::x")
        assert h.lines("alice") == [f":{SERVER} 432 alice * :Erroneous nickname"] * 2

    @pytest.mark.parametrize("good", ["a", "[x]", "{x}", "x_y-z", "`^|\\", "x" * 30])
    def test_valid(self, h: CoreHarness, good: str) -> None:
        h.connect("alice")
        h.send("alice", f"NICK {good}")
        assert h.lines("alice") == [f":{src('alice')} NICK {good}"]

    def test_erroneous_before_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK 9lives")
        assert h.lines("c") == [f":{SERVER} 432 * 9lives :Erroneous nickname"]

    def test_in_use(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "NICK alice")
        h.send("bob", "NICK ALICE")
        assert h.lines("bob") == [
            f":{SERVER} 433 bob alice :Nickname is already in use",
            f":{SERVER} 433 bob ALICE :Nickname is already in use",
        ]

    def test_in_use_at_registration(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.open("c")
        h.send("c", "NICK Alice")
        h.send("c", "USER x 0 * :X")
        assert h.lines("c") == [f":{SERVER} 433 * Alice :Nickname is already in use"]
        assert not h.users["c"].registered

    def test_change_reaches_self_and_neighbours_once(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        joined(h, "#b", "alice", "bob", "carol")
        h.connect("dave")  # shares no channel
        h.send("alice", "NICK alicia")
        line = f":{src('alice')} NICK alicia"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert h.lines("carol") == [line]
        assert h.lines("dave") == []
        assert h.users["alice"].prefix == "alicia!~alice@127.0.0.1"
        assert h.core.find_user("alice") is None
        assert h.core.find_user("ALICIA") is h.users["alice"]

    def test_change_frees_the_old_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NICK alicia")
        h.connect("alice2")
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER x 0 * :X")
        assert h.numerics("c")[0] == "001"

    def test_case_only_change(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "NICK ALICE")
        line = f":{src('alice')} NICK ALICE"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert h.core.find_user("alice") is h.users["alice"]
        assert h.users["alice"].nick == "ALICE"
        h.send("bob", "NAMES #a")
        assert h.lines("bob")[0] == f":{SERVER} 353 bob = #a :@ALICE bob"

    def test_same_nick_is_silent(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "NICK alice")
        assert h.lines("alice") == []
        assert h.lines("bob") == []

    def test_change_is_remembered_by_whowas(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NICK alicia")
        h.lines("alice")
        h.send("alice", "WHOWAS alice")
        assert h.numerics("alice") == ["314", "312", "369"]


class TestCommandChecks:
    """The shared checks of the command table: 451, 421, 461."""

    @pytest.mark.parametrize("line", ["JOIN #a", "PRIVMSG bob :hi", "MODE alice", "WHOIS bob"])
    def test_not_registered(self, h: CoreHarness, line: str) -> None:
        h.open("c")
        h.send("c", line)
        assert h.lines("c") == [f":{SERVER} 451 * :You have not registered"]

    def test_unknown_before_registration_is_451(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "FROB x")
        assert h.lines("c") == [f":{SERVER} 451 * :You have not registered"]

    def test_unknown_after_registration(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "FROB x")
        h.send("alice", "frob")
        assert h.lines("alice") == [f":{SERVER} 421 alice FROB :Unknown command"] * 2

    @pytest.mark.parametrize(
        ("line", "verb"),
        [
            ("JOIN", "JOIN"),
            ("PART", "PART"),
            ("TOPIC", "TOPIC"),
            ("KICK #a", "KICK"),
            ("INVITE bob", "INVITE"),
            ("MODE", "MODE"),
            ("WHOIS", "WHOIS"),
            ("WHOWAS", "WHOWAS"),
            ("ISON", "ISON"),
            ("USERHOST", "USERHOST"),
            ("OPER name", "OPER"),
        ],
    )
    def test_need_more_params(self, h: CoreHarness, line: str, verb: str) -> None:
        h.connect("alice")
        h.send("alice", line)
        assert h.lines("alice") == [f":{SERVER} 461 alice {verb} :Not enough parameters"]

    def test_user_needs_four_params(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "USER alice 0 *")
        assert h.lines("c") == [f":{SERVER} 461 * USER :Not enough parameters"]


class TestLusersMotd:
    def test_lusers_counts(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "MODE bob +i")
        h.send("alice", "JOIN #a")
        h.open("unreg")
        h.clear()
        h.send("alice", "LUSERS")
        assert h.lines("alice") == [
            f":{SERVER} 251 alice :There are 1 users and 1 invisible on 1 servers",
            f":{SERVER} 253 alice 1 :unknown connection(s)",
            f":{SERVER} 254 alice 1 :channels formed",
            f":{SERVER} 255 alice :I have 2 clients and 0 servers",
            f":{SERVER} 265 alice 2 2 :Current local users 2, max 2",
            f":{SERVER} 266 alice 2 2 :Current global users 2, max 2",
        ]

    def test_lusers_max_is_kept(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "QUIT")
        h.send("alice", "LUSERS")
        assert h.lines("alice")[-1] == f":{SERVER} 266 alice 1 2 :Current global users 1, max 2"

    def test_motd(self) -> None:
        h = harness(motd="Hello\nWorld")
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        motd = [
            f":{SERVER} 375 alice :- {SERVER} Message of the day - ",
            f":{SERVER} 372 alice :- Hello",
            f":{SERVER} 372 alice :- World",
            f":{SERVER} 376 alice :End of /MOTD command.",
        ]
        assert h.lines("c")[-4:] == motd
        h.send("c", "MOTD")
        assert h.lines("c") == motd
        h.send("c", f"MOTD {SERVER}")
        assert h.lines("c") == motd

    def test_no_motd(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MOTD")
        assert h.lines("alice") == [f":{SERVER} 422 alice :MOTD File is missing"]

    def test_motd_other_server(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MOTD irc.example.org")
        assert h.lines("alice") == [f":{SERVER} 402 alice irc.example.org :No such server"]


class TestQuit:
    def test_quit_with_reason(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        joined(h, "#b", "alice", "bob")
        h.connect("carol")
        h.send("alice", "QUIT :gone fishing")
        assert h.lines("bob") == [f":{src('alice')} QUIT :Quit: gone fishing"]
        assert h.lines("carol") == []
        assert h.lines("alice") == []
        assert h.peers["alice"].closed == "Closing Link: 127.0.0.1 (Quit: gone fishing)"
        assert h.core.find_user("alice") is None
        assert list(h.core.find_channel("#a").members) == [h.users["bob"]]  # type: ignore[union-attr]

    def test_quit_without_reason(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "QUIT")
        assert h.lines("bob") == [f":{src('alice')} QUIT :Client Quit"]
        assert h.peers["alice"].closed == "Closing Link: 127.0.0.1 (Client Quit)"

    def test_quit_empties_channels(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "QUIT")
        assert h.core.channels == {}
        assert h.core.registered_count == 0

    def test_quit_before_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "QUIT :bye")
        assert h.peers["c"].closed == "Closing Link: 127.0.0.1 (Quit: bye)"
        assert h.core.connections == {}
        assert h.core.users == {}

    def test_input_after_quit_is_ignored(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "QUIT")
        h.send("alice", "JOIN #a")
        assert h.lines("alice") == []
        assert h.core.channels == {}


class TestPingPong:
    def test_ping(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PING token123")
        h.send("alice", "PING :two words")
        assert h.lines("alice") == [
            f":{SERVER} PONG {SERVER} token123",
            f":{SERVER} PONG {SERVER} :two words",
        ]

    def test_ping_before_registration(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "PING x")
        assert h.lines("c") == [f":{SERVER} PONG {SERVER} x"]

    def test_ping_without_origin(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PING")
        h.send("alice", "PING :")
        assert h.lines("alice") == [f":{SERVER} 409 alice :No origin specified"] * 2

    def test_pong_is_silent(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", f"PONG {SERVER}")
        h.send("alice", "PONG")
        assert h.lines("alice") == []


class TestCasemapping:
    """CASEMAPPING=rfc1459 (RFC 1459 §2.2): ``[]\\~`` are the upper case of ``{}|^``.

    ``~`` cannot be in a nickname (RFC 2812 §2.3.1), so that pair shows in channel names only.
    """

    @pytest.mark.parametrize(
        ("held", "wanted"),
        [("[alice]", "{ALICE}"), ("{x}", "[X]"), ("a\\b", "A|B"), ("a|b", "a\\b")],
    )
    def test_nick_collision(self, h: CoreHarness, held: str, wanted: str) -> None:
        h.open("one")
        h.send("one", f"NICK {held}")
        h.send("one", "USER one 0 * :One")
        h.open("two")
        h.send("two", f"NICK {wanted}")
        assert h.lines("two") == [f":{SERVER} 433 * {wanted} :Nickname is already in use"]

    def test_ascii_only_nicks_do_not_collide_with_specials(self, h: CoreHarness) -> None:
        h.open("one")
        h.send("one", "NICK a^")
        h.send("one", "USER one 0 * :One")
        h.open("two")
        h.send("two", "NICK a_")
        h.send("two", "USER two 0 * :Two")
        assert h.numerics("two")[0] == "001"

    def test_message_to_folded_nick(self, h: CoreHarness) -> None:
        h.open("one")
        h.send("one", "NICK [bot]")
        h.send("one", "USER bot 0 * :Bot")
        h.connect("alice")
        h.lines("one")
        h.send("alice", "PRIVMSG {BOT} :hi")
        assert h.lines("one") == [f":{src('alice')} PRIVMSG [bot] :hi"]

    def test_channel_names_fold(self, h: CoreHarness) -> None:
        joined(h, "#[ops]~", "alice")
        h.connect("bob")
        h.send("bob", "JOIN #{OPS}^")
        assert h.lines("bob")[0] == f":{src('bob')} JOIN #[ops]~"
        h.send("alice", "PRIVMSG #{Ops}^ :hello")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG #[ops]~ :hello"]
        assert list(h.core.channels) == ["#{ops}^"]

    def test_case_only_nick_change_with_specials(self, h: CoreHarness) -> None:
        h.open("one")
        h.send("one", "NICK [x]")
        h.send("one", "USER x 0 * :X")
        h.lines("one")
        h.send("one", "NICK {X}")
        assert h.lines("one") == [":[x]!~x@127.0.0.1 NICK {X}"]
        assert h.core.find_user("[x]") is h.users["one"]


class TestLengths:
    """Relayed lines must fit in 512 bytes even with the longest names (RFC 1459 §2.3)."""

    def test_quit_reason_cut_to_kicklen(self) -> None:
        h = harness(limits={"kicklen": 10})
        joined(h, "#a", "alice", "bob")
        h.send("alice", "QUIT :0123456789abcdef")
        assert h.lines("bob") == [f":{src('alice')} QUIT :Quit: 0123456789"]

    def test_long_quit_reason_fits(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "QUIT :" + "q" * 500)
        assert len(h.peers["bob"].buffer) <= 512
        assert h.peers["bob"].buffer.startswith(f":{src('alice')} QUIT :Quit: qqq".encode())

    def test_long_part_reason_fits(self, h: CoreHarness) -> None:
        nick = "n" * 30
        channel = "#" + "c" * 63
        joined(h, channel, nick, "bob")
        h.send(nick, f"PART {channel} :" + "r " * 200)
        data = h.peers["bob"].buffer
        assert len(data) <= 512
        assert data.startswith(f":{src(nick)} PART {channel} :r r ".encode())

    def test_long_kick_reason_fits(self, h: CoreHarness) -> None:
        nick = "k" * 30
        channel = "#" + "c" * 63
        joined(h, channel, nick, "v" * 30)
        h.send(nick, f"KICK {channel} {'v' * 30} :" + "r " * 195)
        data = h.peers["v" * 30].buffer
        assert len(data) <= 512
        assert data.startswith(f":{src(nick)} KICK {channel} {'v' * 30} :r r ".encode())
