"""MODE for users and channels (RFC 2812 §3.1.5, §3.2.3; Modern IRC "Channel modes")."""

from __future__ import annotations

import pytest

from relaychat.server.state import Channel
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def chan(h: CoreHarness, name: str = "#a") -> Channel:
    channel = h.core.find_channel(name)
    assert channel is not None
    return channel


class TestUserModes:
    def test_query(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE alice")
        assert h.lines("alice") == [f":{SERVER} 221 alice +"]

    def test_invisible(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE Alice +i")
        assert h.lines("alice") == [f":{src('alice')} MODE alice +i"]
        h.send("alice", "MODE alice +i")
        assert h.lines("alice") == []
        h.send("alice", "MODE alice")
        assert h.lines("alice") == [f":{SERVER} 221 alice +i"]
        h.send("alice", "MODE alice -i")
        assert h.lines("alice") == [f":{src('alice')} MODE alice -i"]
        assert h.users["alice"].modes == set()

    def test_cannot_give_itself_oper(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE alice +o")
        h.send("alice", "MODE alice -o")
        assert h.lines("alice") == []
        assert not h.users["alice"].is_oper

    def test_unknown_flag(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE alice +x")
        assert h.lines("alice") == [f":{SERVER} 501 alice :Unknown MODE flag"]

    def test_unknown_flag_with_known(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE alice +xiy")
        assert h.lines("alice") == [
            f":{SERVER} 501 alice :Unknown MODE flag",
            f":{src('alice')} MODE alice +i",
        ]

    def test_other_user(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "MODE bob +i")
        h.send("alice", "MODE bob")
        assert h.lines("alice") == [f":{SERVER} 502 alice :Cant change mode for other users"] * 2
        assert h.users["bob"].modes == set()

    def test_no_such_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE ghost +i")
        h.send("alice", "MODE :a b")
        assert h.lines("alice") == [
            f":{SERVER} 401 alice ghost :No such nick/channel",
            f":{SERVER} 401 alice * :No such nick/channel",
        ]


class TestChannelQuery:
    def test_modes_and_creation_time(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #A")
        assert h.lines("alice") == [
            f":{SERVER} 324 alice #a +nt",
            f":{SERVER} 329 alice #a 1000000",
        ]

    def test_key_hidden_from_outsiders(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +kl sesame 10")
        h.connect("bob")
        h.clear()
        h.send("alice", "MODE #a")
        h.send("bob", "MODE #a")
        assert h.lines("alice")[0] == f":{SERVER} 324 alice #a +ntkl sesame 10"
        assert h.lines("bob")[0] == f":{SERVER} 324 bob #a +ntkl * 10"

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MODE #nowhere")
        h.send("alice", "MODE #nowhere +n")
        assert h.lines("alice") == [f":{SERVER} 403 alice #nowhere :No such channel"] * 2


class TestFlags:
    @pytest.mark.parametrize("flag", ["i", "m", "s"])
    def test_set_and_unset(self, h: CoreHarness, flag: str) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", f"MODE #a +{flag}")
        line = f":{src('alice')} MODE #a +{flag}"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert flag in chan(h).modes
        h.send("alice", f"MODE #a -{flag}")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -{flag}"]
        assert flag not in chan(h).modes

    @pytest.mark.parametrize("flag", ["n", "t"])
    def test_default_flags(self, h: CoreHarness, flag: str) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", f"MODE #a +{flag}")
        assert h.lines("alice") == []  # already set: nothing changed, nothing announced
        h.send("alice", f"MODE #a -{flag}")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -{flag}"]

    def test_one_broadcast_with_applied_changes_only(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +imnt-s")
        line = f":{src('alice')} MODE #a +im"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]

    def test_mixed_signs(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a -t+kl-n sesame 5")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -t+kl-n sesame 5"]
        assert chan(h).modes == set()
        assert chan(h).password == "sesame"
        assert chan(h).limit == 5

    def test_nothing_applied_nothing_sent(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a -ikl")
        assert h.lines("alice") == []
        assert h.lines("bob") == []


class TestPrivileges:
    def test_needs_op(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "MODE #a +m")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]
        assert "m" not in chan(h).modes
        assert h.lines("alice") == []

    def test_outsider_needs_op_too(self, h: CoreHarness) -> None:
        # Modern IRC: without the privileges, ERR_CHANOPRIVSNEEDED (482).
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "MODE #a +m")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]

    def test_one_482_for_many_changes(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "MODE #a +mi-t")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]

    def test_voice_is_not_enough(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +v bob")
        h.clear()
        h.send("bob", "MODE #a +v bob")
        assert h.numerics("bob") == ["482"]


class TestPrefixModes:
    def test_op_and_voice(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +ov BOB carol")
        line = f":{src('alice')} MODE #a +ov bob carol"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert h.lines("carol") == [line]
        ms = chan(h).members
        assert ms[h.users["bob"]].op and not ms[h.users["bob"]].voice
        assert ms[h.users["carol"]].voice and not ms[h.users["carol"]].op
        h.send("bob", "MODE #a -o+m alice")
        assert h.lines("carol") == [f":{src('bob')} MODE #a -o+m alice"]
        assert not ms[h.users["alice"]].op

    def test_already_set_is_not_announced(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +o alice")
        h.send("alice", "MODE #a -v bob")
        assert h.lines("alice") == []
        assert h.lines("bob") == []

    def test_target_not_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("alice", "MODE #a +o bob")
        assert h.lines("alice") == [f":{SERVER} 441 alice bob #a :They aren't on that channel"]

    def test_no_such_nick(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +vo ghost bob")
        assert h.lines("alice") == [
            f":{SERVER} 401 alice ghost :No such nick/channel",
            f":{src('alice')} MODE #a +o bob",
        ]

    def test_missing_nick(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +o")
        assert h.lines("alice") == [f":{SERVER} 461 alice MODE :Mode +o needs a nickname"]


class TestBans:
    def test_add_list_remove(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.advance(3)
        h.send("alice", "MODE #a +b bob")
        line = f":{src('alice')} MODE #a +b bob!*@*"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        h.send("bob", "MODE #a +b")
        assert h.lines("bob") == [
            f":{SERVER} 367 bob #a bob!*@* {src('alice')} 1000003",
            f":{SERVER} 368 bob #a :End of channel ban list",
        ]
        h.send("alice", "MODE #a -b bob!*@*")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -b bob!*@*"]
        h.send("bob", "MODE #a b")
        assert h.lines("bob") == [f":{SERVER} 368 bob #a :End of channel ban list"]

    def test_list_by_outsider(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +b *!*@evil.example")
        h.connect("bob")
        h.send("bob", "MODE #a +b")
        assert h.numerics("bob") == ["367", "368"]

    def test_duplicate_and_missing_are_silent(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +b x!*@*")
        h.clear()
        h.send("alice", "MODE #a +b x")
        h.send("alice", "MODE #a -b y")
        assert h.lines("alice") == []
        assert [b[0] for b in chan(h).bans] == ["x!*@*"]

    def test_list_and_change_in_one_command(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +bm")
        assert h.lines("alice") == [
            f":{SERVER} 368 alice #a :End of channel ban list",
            f":{src('alice')} MODE #a +m",
        ]

    def test_non_op_may_list_but_not_set(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "MODE #a +bm")
        assert h.lines("bob") == [
            f":{SERVER} 368 bob #a :End of channel ban list",
            f":{SERVER} 482 bob #a :You're not channel operator",
        ]
        h.send("bob", "MODE #a +b bob")
        assert h.numerics("bob") == ["482"]
        assert chan(h).bans == []

    def test_list_full(self) -> None:
        h = harness(limits={"maxbans": 2})
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +bbb a b c")
        assert h.lines("alice") == [
            f":{SERVER} 478 alice #a c!*@* :Channel list is full",
            f":{src('alice')} MODE #a +bb a!*@* b!*@*",
        ]

    def test_unsafe_mask_is_refused(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +b ::x")
        h.send("alice", "MODE #a +b :a b")
        assert h.lines("alice") == [
            f":{SERVER} 696 alice #a b * :Invalid ban mask",
            f":{SERVER} 696 alice #a b * :Invalid ban mask",
        ]
        assert chan(h).bans == []
        h.send("alice", "MODE #a +b")
        assert h.numerics("alice") == ["368"]


class TestKey:
    def test_set_and_remove(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +k sesame")
        assert h.lines("bob") == [f":{src('alice')} MODE #a +k sesame"]
        h.send("alice", "MODE #a -k whatever")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -k *"]
        assert chan(h).password is None

    def test_minus_k_without_param(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +k sesame")
        h.clear()
        h.send("alice", "MODE #a -k")
        assert h.lines("alice") == [f":{src('alice')} MODE #a -k *"]

    def test_missing_key(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +k")
        assert h.lines("alice") == [f":{SERVER} 461 alice MODE :Mode +k needs a key"]

    @pytest.mark.parametrize(
        "line",
        [
            "MODE #a +k a,b",
            "MODE #a +k :a b",
            "MODE #a +k " + "k" * 24,
            "MODE #a +k ::x",
            "MODE #a +k :",  # issue 11 #3: an empty key was 461 (as if none was given)
        ],
    )
    def test_bad_key(self, h: CoreHarness, line: str) -> None:
        """Modern IRC, key mode: an invalid key SHOULD get ERR_INVALIDMODEPARAM (696)."""
        joined(h, "#a", "alice")
        h.send("alice", line)
        assert h.lines("alice") == [
            f":{SERVER} 696 alice #a k * :Invalid key: 1 to 23 characters, without spaces or commas"
        ]
        assert chan(h).password is None


class TestLimit:
    def test_set_and_remove(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +l 010")
        assert h.lines("bob") == [f":{src('alice')} MODE #a +l 10"]
        assert chan(h).limit == 10
        h.send("alice", "MODE #a -l")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -l"]
        assert chan(h).limit is None

    @pytest.mark.parametrize(
        ("value", "shown"), [("abc", "abc"), ("0", "0"), ("-5", "-5"), (":1 2", "*"), ("²", "²")]
    )
    def test_bad_limit(self, h: CoreHarness, value: str, shown: str) -> None:
        joined(h, "#a", "alice")
        h.send("alice", f"MODE #a +l {value}")
        assert h.lines("alice") == [
            f":{SERVER} 696 alice #a l {shown} :Invalid limit: a positive number is needed"
        ]
        assert chan(h).limit is None

    def test_missing_limit(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +l")
        assert h.lines("alice") == [
            f":{SERVER} 696 alice #a l * :Invalid limit: a positive number is needed"
        ]

    def test_minus_l_takes_no_parameter(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +l 5")
        h.clear()
        h.send("alice", "MODE #a -l+v bob")
        assert h.lines("bob") == [f":{src('alice')} MODE #a -l+v bob"]


class TestUnknownAndLimits:
    def test_unknown_mode(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +zm")
        assert h.lines("alice") == [
            f":{SERVER} 472 alice z :is unknown mode char to me for #a",
            f":{src('alice')} MODE #a +m",
        ]

    def test_unknown_unsafe_letter(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a :+m :")
        assert h.lines("alice") == [
            f":{SERVER} 472 alice * :is unknown mode char to me for #a",
            f":{SERVER} 472 alice * :is unknown mode char to me for #a",
            f":{src('alice')} MODE #a +m",
        ]

    def test_modes_limit_on_parametered_changes(self) -> None:
        h = harness(limits={"modes": 3})
        joined(h, "#a", "alice", "v1", "v2", "v3", "v4")
        h.send("alice", "MODE #a +vvvvm v1 v2 v3 v4")
        assert h.lines("v1") == [f":{src('alice')} MODE #a +vvvm v1 v2 v3"]
        assert not chan(h).members[h.users["v4"]].voice
        assert "m" in chan(h).modes

    def test_flags_do_not_count_against_modes(self) -> None:
        h = harness(limits={"modes": 1})
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +imsv bob")
        assert h.lines("bob") == [f":{src('alice')} MODE #a +imsv bob"]
