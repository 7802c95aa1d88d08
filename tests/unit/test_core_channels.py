"""Channel operations of the core: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE (RFC 2812 §3.2)."""

from __future__ import annotations

import pytest

from relaychat.server.state import Channel
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def chan(h: CoreHarness, name: str) -> Channel:
    channel = h.core.find_channel(name)
    assert channel is not None, name
    return channel


def members(h: CoreHarness, name: str) -> list[str]:
    return sorted(u.nick for u in chan(h, name).members)


class TestJoin:
    """RFC 2812 §3.2.1."""

    def test_first_joiner_creates_and_is_op(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "JOIN #a")
        assert h.lines("alice") == [
            f":{src('alice')} JOIN #a",
            f":{SERVER} 353 alice = #a @alice",
            f":{SERVER} 366 alice #a :End of /NAMES list",
        ]
        assert chan(h, "#a").members[h.users["alice"]].op

    def test_second_joiner(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.lines("bob") == [
            f":{src('bob')} JOIN #a",
            f":{SERVER} 353 bob = #a :@alice bob",
            f":{SERVER} 366 bob #a :End of /NAMES list",
        ]
        assert h.lines("alice") == [f":{src('bob')} JOIN #a"]
        assert not chan(h, "#a").members[h.users["bob"]].op

    def test_join_shows_topic(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.advance(5)
        h.send("alice", "TOPIC #a :the topic")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.lines("bob") == [
            f":{src('bob')} JOIN #a",
            f":{SERVER} 332 bob #a :the topic",
            f":{SERVER} 333 bob #a {src('alice')} 1000005",
            f":{SERVER} 353 bob = #a :@alice bob",
            f":{SERVER} 366 bob #a :End of /NAMES list",
        ]

    def test_several_channels(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "JOIN #a,#b")
        assert h.numerics("alice") == ["JOIN", "353", "366", "JOIN", "353", "366"]
        assert sorted(h.users["alice"].channels) == ["#a", "#b"]

    def test_case_insensitive_name_keeps_first_spelling(self, h: CoreHarness) -> None:
        joined(h, "#Chan", "alice")
        h.connect("bob")
        h.send("bob", "JOIN #CHAN")
        assert h.lines("bob")[0] == f":{src('bob')} JOIN #Chan"
        assert list(h.core.channels) == ["#chan"]

    def test_joining_again_is_silent(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "JOIN #A")
        assert h.lines("bob") == []
        assert h.lines("alice") == []

    def test_join_zero_parts_everything(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        joined(h, "#b", "alice")
        h.send("alice", "JOIN 0")
        assert h.lines("alice") == [
            f":{src('alice')} PART #a alice",
            f":{src('alice')} PART #b alice",
        ]
        assert h.lines("bob") == [f":{src('alice')} PART #a alice"]
        assert h.users["alice"].channels == {}
        assert list(h.core.channels) == ["#a"]

    def test_join_zero_in_no_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "JOIN 0")
        assert h.lines("alice") == []

    @pytest.mark.parametrize("name", ["#", "#a:b", "#a\x07b", "#" + "x" * 64])
    def test_bad_channel_mask(self, h: CoreHarness, name: str) -> None:
        h.connect("alice")
        h.send("alice", f"JOIN {name}")
        assert h.lines("alice") == [f":{SERVER} 476 alice {name} :Bad Channel Mask"]
        assert h.core.channels == {}

    @pytest.mark.parametrize("name", ["a", "&local", "+x", "!abc"])
    def test_no_such_channel(self, h: CoreHarness, name: str) -> None:
        h.connect("alice")
        h.send("alice", f"JOIN {name}")
        assert h.lines("alice") == [f":{SERVER} 403 alice {name} :No such channel"]

    def test_bad_name_with_space(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "JOIN :#a b")
        assert h.lines("alice") == [f":{SERVER} 476 alice * :Bad Channel Mask"]

    def test_longest_name_is_fine(self, h: CoreHarness) -> None:
        h.connect("alice")
        name = "#" + "x" * 63
        h.send("alice", f"JOIN {name}")
        assert h.lines("alice")[0] == f":{src('alice')} JOIN {name}"

    def test_too_many_channels(self) -> None:
        h = harness(limits={"chanlimit": 2})
        h.connect("alice")
        h.send("alice", "JOIN #a,#b,#c")
        lines = h.lines("alice")
        assert lines[-1] == f":{SERVER} 405 alice #c :You have joined too many channels"
        assert [line.split(" ")[1] for line in lines] == [
            "JOIN", "353", "366", "JOIN", "353", "366", "405"
        ]  # fmt: skip
        assert sorted(h.users["alice"].channels) == ["#a", "#b"]

    def test_many_channels_bounded_by_chanlimit_not_maxtargets(self) -> None:
        # Clients auto-join many channels in one JOIN; CHANLIMIT bounds it, MAXTARGETS does not.
        h = harness(limits={"maxtargets": 2, "chanlimit": 3})
        h.connect("alice")
        h.send("alice", "JOIN #a,#b,#c,#d")
        assert f":{SERVER} 405 alice #d :You have joined too many channels" in h.lines("alice")
        assert sorted(h.users["alice"].channels) == ["#a", "#b", "#c"]

    def test_full_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +l 2")
        h.connect("carol")
        h.send("carol", "JOIN #a")
        assert h.lines("carol") == [f":{SERVER} 471 carol #a :Cannot join channel (+l)"]
        h.send("bob", "PART #a")
        h.send("carol", "JOIN #a")
        assert h.numerics("carol") == ["JOIN", "353", "366"]

    def test_invite_only(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +i")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.lines("bob") == [f":{SERVER} 473 bob #a :Cannot join channel (+i)"]

    def test_invite_overrides_invite_only_once(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "carol")
        h.send("alice", "MODE #a +i")
        h.connect("bob")
        h.send("alice", "INVITE bob #a")
        h.clear()
        h.send("bob", "JOIN #a")
        assert h.numerics("bob") == ["JOIN", "353", "366"]
        h.send("bob", "PART #a")
        h.send("bob", "JOIN #a")
        assert h.lines("bob")[-1] == f":{SERVER} 473 bob #a :Cannot join channel (+i)"

    def test_banned(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +b bob")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.lines("bob") == [f":{SERVER} 474 bob #a :Cannot join channel (+b)"]
        h.connect("Bobby")
        h.send("Bobby", "JOIN #a")
        assert h.numerics("Bobby") == ["JOIN", "353", "366"]

    def test_ban_by_host(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +b *!*@127.0.0.*")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.numerics("bob") == ["474"]
        h.connect("carol", ip="10.0.0.1")
        h.send("carol", "JOIN #a")
        assert h.numerics("carol") == ["JOIN", "353", "366"]

    def test_key(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +k sesame")
        h.connect("bob")
        h.send("bob", "JOIN #a")
        h.send("bob", "JOIN #a wrong")
        assert h.lines("bob") == [f":{SERVER} 475 bob #a :Cannot join channel (+k)"] * 2
        h.send("bob", "JOIN #a sesame")
        assert h.numerics("bob") == ["JOIN", "353", "366"]

    def test_keys_pair_with_channels(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#b", "alice")
        h.send("alice", "MODE #b +k kb")
        h.connect("bob")
        h.send("bob", "JOIN #a,#b,#c x,kb")
        assert h.numerics("bob") == ["JOIN", "353", "366"] * 3

    def test_key_is_ignored_without_mode_k(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "JOIN #a anything")
        assert h.numerics("bob") == ["JOIN", "353", "366"]


class TestPart:
    """RFC 2812 §3.2.2."""

    def test_part_with_reason(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "PART #a :see you")
        line = f":{src('bob')} PART #a :see you"
        assert h.lines("bob") == [line]
        assert h.lines("alice") == [line]
        assert members(h, "#a") == ["alice"]
        assert h.users["bob"].channels == {}

    def test_part_without_reason(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "PART #A")
        assert h.lines("alice") == [f":{src('bob')} PART #a"]

    def test_last_one_out_ends_the_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "PART #a")
        assert h.core.channels == {}
        h.connect("bob")
        h.send("bob", "JOIN #a")
        assert h.lines("bob")[1] == f":{SERVER} 353 bob = #a @bob"

    def test_several(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#b", "alice")
        h.send("alice", "PART #a,#b :bye")
        assert h.lines("alice") == [
            f":{src('alice')} PART #a bye",
            f":{src('alice')} PART #b bye",
        ]

    def test_not_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "PART #A")
        assert h.lines("bob") == [f":{SERVER} 442 bob #a :You're not on that channel"]

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "PART #nowhere")
        h.send("alice", "PART :#a b")
        assert h.lines("alice") == [
            f":{SERVER} 403 alice #nowhere :No such channel",
            f":{SERVER} 403 alice * :No such channel",
        ]


class TestTopic:
    """RFC 2812 §3.2.4."""

    def test_no_topic(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "TOPIC #a")
        assert h.lines("alice") == [f":{SERVER} 331 alice #a :No topic is set"]

    def test_set_and_query(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.advance(30)
        h.send("alice", "TOPIC #a :Welcome all")
        line = f":{src('alice')} TOPIC #a :Welcome all"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        h.send("bob", "TOPIC #A")
        assert h.lines("bob") == [
            f":{SERVER} 332 bob #a :Welcome all",
            f":{SERVER} 333 bob #a {src('alice')} 1000030",
        ]

    def test_clear(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "TOPIC #a :something")
        h.send("alice", "TOPIC #a :")
        assert h.lines("bob")[-1] == f":{src('alice')} TOPIC #a :"
        h.send("bob", "TOPIC #a")
        assert h.lines("bob") == [f":{SERVER} 331 bob #a :No topic is set"]

    def test_protected_topic_needs_op(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "TOPIC #a :mine now")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]
        assert chan(h, "#a").topic == ""
        assert h.lines("alice") == []

    def test_unprotected_topic(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a -t")
        h.clear()
        h.send("bob", "TOPIC #a :mine now")
        assert h.lines("alice") == [f":{src('bob')} TOPIC #a :mine now"]

    def test_set_from_outside(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "TOPIC #a :hi")
        assert h.lines("bob") == [f":{SERVER} 442 bob #a :You're not on that channel"]

    def test_query_from_outside(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "TOPIC #a :public")
        h.connect("bob")
        h.send("bob", "TOPIC #a")
        assert h.numerics("bob") == ["332", "333"]

    def test_query_secret_from_outside(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +s")
        h.connect("bob")
        h.send("bob", "TOPIC #a")
        assert h.lines("bob") == [f":{SERVER} 442 bob #a :You're not on that channel"]

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "TOPIC #nowhere")
        h.send("alice", "TOPIC :#a b")
        assert h.lines("alice") == [
            f":{SERVER} 403 alice #nowhere :No such channel",
            f":{SERVER} 403 alice * :No such channel",
        ]

    def test_truncated_to_topiclen(self) -> None:
        h = harness(limits={"topiclen": 10})
        joined(h, "#a", "alice")
        h.send("alice", "TOPIC #a :0123456789abcdef")
        assert h.lines("alice") == [f":{src('alice')} TOPIC #a 0123456789"]


class TestNames:
    """RFC 2812 §3.2.5."""

    def test_prefixes(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "MODE #a +v bob")
        h.send("alice", "MODE #a +v alice")
        h.clear()
        h.send("carol", "NAMES #a")
        assert h.lines("carol") == [
            f":{SERVER} 353 carol = #a :@alice +bob carol",
            f":{SERVER} 366 carol #a :End of /NAMES list",
        ]

    def test_multi_prefix(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +v alice")
        h.send("bob", "CAP REQ multi-prefix")
        h.clear()
        h.send("bob", "NAMES #a")
        assert h.lines("bob")[0] == f":{SERVER} 353 bob = #a :@+alice bob"

    def test_secret_channel_symbol(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +s")
        h.clear()
        h.send("alice", "NAMES #a")
        assert h.lines("alice")[0] == f":{SERVER} 353 alice @ #a @alice"

    def test_secret_channel_hidden(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +s")
        h.connect("bob")
        h.send("bob", "NAMES #a")
        assert h.lines("bob") == [f":{SERVER} 366 bob #a :End of /NAMES list"]

    def test_outsider_sees_public_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "NAMES #a")
        assert h.lines("bob") == [
            f":{SERVER} 353 bob = #a @alice",
            f":{SERVER} 366 bob #a :End of /NAMES list",
        ]

    def test_invisible_hidden_from_outsiders(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("bob", "MODE bob +i")
        h.connect("dave")
        h.clear()
        h.send("dave", "NAMES #a")
        assert h.lines("dave")[0] == f":{SERVER} 353 dave = #a :@alice carol"
        h.send("carol", "NAMES #a")  # members see everyone
        assert h.lines("carol")[0] == f":{SERVER} 353 carol = #a :@alice bob carol"
        joined(h, "#b", "bob", "dave")  # sharing a channel makes bob visible to dave
        h.send("dave", "NAMES #a")
        assert h.lines("dave")[0] == f":{SERVER} 353 dave = #a :@alice bob carol"

    def test_several_channels(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#b", "bob")
        h.send("alice", "NAMES #a,#b,#nowhere")
        # Issue 11 #5: RFC 1459/2812 §3.2.5 (and irctest): one 366 at the end, naming the list.
        assert h.lines("alice") == [
            f":{SERVER} 353 alice = #a @alice",
            f":{SERVER} 353 alice = #b @bob",
            f":{SERVER} 366 alice #a,#b,#nowhere :End of /NAMES list",
        ]

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NAMES #nowhere")
        h.send("alice", "NAMES :#a b")
        assert h.lines("alice") == [
            f":{SERVER} 366 alice #nowhere :End of /NAMES list",
            f":{SERVER} 366 alice * :End of /NAMES list",
        ]

    def test_without_params(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "NAMES")
        assert h.lines("alice") == [f":{SERVER} 366 alice * :End of /NAMES list"]

    def test_long_list_is_split_under_512_bytes(self) -> None:
        h = harness(limits={"nicklen": 30, "channellen": 64})
        channel = "#" + "c" * 63
        nicks = [f"user{i:03d}" + "x" * 23 for i in range(60)]
        joined(h, channel, *nicks)
        h.send(nicks[0], "CAP REQ multi-prefix")
        h.send(nicks[0], f"MODE {channel} +v {nicks[0]}")
        h.clear()
        h.send(nicks[0], f"NAMES {channel}")
        raw = h.peers[nicks[0]].buffer
        lines = h.lines(nicks[0])
        assert len(lines) > 2
        for wire in raw.split(b"\r\n")[:-1]:
            assert len(wire) + 2 <= 512
        assert lines[-1] == f":{SERVER} 366 {nicks[0]} {channel} :End of /NAMES list"
        seen: list[str] = []
        for line in lines[:-1]:
            head, _, names = line.partition(" :")
            assert head == f":{SERVER} 353 {nicks[0]} = {channel}"
            seen.extend(names.split(" "))
        assert seen == ["@+" + nicks[0], *nicks[1:]]


class TestList:
    """RFC 2812 §3.2.6."""

    def test_list_all(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "TOPIC #a :hello there")
        joined(h, "#b", "carol")
        h.clear()
        h.send("carol", "LIST")
        assert h.lines("carol") == [
            f":{SERVER} 321 carol Channel :Users  Name",
            f":{SERVER} 322 carol #a 2 :hello there",
            f":{SERVER} 322 carol #b 1 :",
            f":{SERVER} 323 carol :End of /LIST",
        ]

    def test_list_named(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#b", "alice")
        h.send("alice", "LIST #B,#nowhere")
        assert h.lines("alice") == [
            f":{SERVER} 321 alice Channel :Users  Name",
            f":{SERVER} 322 alice #b 1 :",
            f":{SERVER} 323 alice :End of /LIST",
        ]

    def test_secret_hidden_from_outsiders(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#s", "alice")
        h.send("alice", "MODE #s +s")
        h.connect("bob")
        h.clear()
        h.send("bob", "LIST")
        h.send("bob", "LIST #s")
        assert h.numerics("bob") == ["321", "322", "323", "321", "323"]
        h.send("alice", "LIST")
        assert h.numerics("alice")[1:3] == ["322", "322"]


class TestKick:
    """RFC 2812 §3.2.8."""

    def test_kick_with_reason(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol")
        h.send("alice", "KICK #a bob :behave")
        line = f":{src('alice')} KICK #a bob behave"
        assert h.lines("alice") == [line]
        assert h.lines("bob") == [line]
        assert h.lines("carol") == [line]
        assert members(h, "#a") == ["alice", "carol"]
        assert h.users["bob"].channels == {}

    def test_default_reason_is_kicker_nick(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "KICK #a BOB")
        assert h.lines("bob") == [f":{src('alice')} KICK #a bob alice"]

    def test_several(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob", "carol", "dave")
        h.send("alice", "KICK #a bob,carol :out")
        assert h.lines("dave") == [
            f":{src('alice')} KICK #a bob out",
            f":{src('alice')} KICK #a carol out",
        ]
        assert members(h, "#a") == ["alice", "dave"]

    def test_needs_op(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("bob", "KICK #a alice")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]
        assert members(h, "#a") == ["alice", "bob"]

    def test_target_not_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("alice", "KICK #a bob")
        assert h.lines("alice") == [f":{SERVER} 441 alice bob #a :They aren't on that channel"]

    def test_kicker_not_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "KICK #a alice")
        assert h.lines("bob") == [f":{SERVER} 442 bob #a :You're not on that channel"]

    def test_no_such_nick(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "KICK #a ghost")
        h.send("alice", "KICK #a :g h")
        assert h.lines("alice") == [
            f":{SERVER} 401 alice ghost :No such nick/channel",
            f":{SERVER} 401 alice * :No such nick/channel",
        ]

    def test_no_such_channel(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "KICK #nowhere bob")
        assert h.lines("alice") == [f":{SERVER} 403 alice #nowhere :No such channel"]

    def test_kick_self_as_last_member_ends_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "KICK #a alice,bob")
        assert h.lines("alice") == [f":{src('alice')} KICK #a alice alice"]
        assert h.core.channels == {}

    def test_kick_self_then_others_stops(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "KICK #a alice,bob")
        assert h.lines("bob") == [f":{src('alice')} KICK #a alice alice"]
        assert members(h, "#a") == ["bob"]

    def test_reason_truncated_to_kicklen(self) -> None:
        h = harness(limits={"kicklen": 5})
        joined(h, "#a", "alice", "bob")
        h.send("alice", "KICK #a bob :abcdefgh")
        assert h.lines("bob") == [f":{src('alice')} KICK #a bob abcde"]


class TestInvite:
    """RFC 2812 §3.2.7."""

    def test_invite(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "carol")
        h.connect("bob")
        h.send("alice", "INVITE Bob #A")
        assert h.lines("alice") == [f":{SERVER} 341 alice bob #a"]
        assert h.lines("bob") == [f":{src('alice')} INVITE bob #a"]
        assert h.lines("carol") == []

    def test_invite_to_away_user(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.send("bob", "AWAY :at lunch")
        h.send("alice", "INVITE bob #a")
        assert h.lines("alice") == [
            f":{SERVER} 341 alice bob #a",
            f":{SERVER} 301 alice bob :at lunch",
        ]

    def test_already_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "INVITE bob #a")
        assert h.lines("alice") == [f":{SERVER} 443 alice bob #a :is already on channel"]
        assert h.lines("bob") == []

    def test_inviter_not_on_channel(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.connect("bob")
        h.connect("carol")
        h.send("bob", "INVITE carol #a")
        assert h.lines("bob") == [f":{SERVER} 442 bob #a :You're not on that channel"]
        assert h.lines("carol") == []

    def test_invite_only_needs_op(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "MODE #a +i")
        h.connect("carol")
        h.clear()
        h.send("bob", "INVITE carol #a")
        assert h.lines("bob") == [f":{SERVER} 482 bob #a :You're not channel operator"]
        assert h.lines("carol") == []

    def test_member_may_invite_without_invite_only(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.connect("carol")
        h.send("bob", "INVITE carol #a")
        assert h.lines("bob") == [f":{SERVER} 341 bob carol #a"]

    def test_no_such_nick(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "INVITE ghost #a")
        assert h.lines("alice") == [f":{SERVER} 401 alice ghost :No such nick/channel"]

    def test_channel_that_does_not_exist(self, h: CoreHarness) -> None:
        # RFC 2812 §3.2.7: there is no requirement that the channel exists.
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "INVITE bob #empty")
        assert h.lines("alice") == [f":{SERVER} 341 alice bob #empty"]
        assert h.lines("bob") == [f":{src('alice')} INVITE bob #empty"]

    def test_invalid_channel_name(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "INVITE bob :#a b")
        h.send("alice", "INVITE bob nochan")
        assert h.lines("alice") == [
            f":{SERVER} 403 alice * :No such channel",
            f":{SERVER} 403 alice nochan :No such channel",
        ]
        assert h.lines("bob") == []

    def test_invite_follows_nick_change(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +i")
        h.connect("bob")
        h.send("alice", "INVITE bob #a")
        h.send("bob", "NICK robert")
        # Someone else takes the invited nick: the invite is not theirs.
        h.open("other")
        h.send("other", "NICK bob")
        h.send("other", "USER other 0 * :Other")
        h.clear()
        h.send("other", "JOIN #a")
        assert h.numerics("other") == ["473"]
        h.send("bob", "JOIN #a")
        assert h.numerics("bob") == ["JOIN", "353", "366"]

    def test_invite_not_inherited_after_quit(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +i")
        h.connect("bob")
        h.send("alice", "INVITE bob #a")
        h.send("bob", "QUIT")
        h.open("other")
        h.send("other", "NICK bob")
        h.send("other", "USER other 0 * :Other")
        h.clear()
        h.send("other", "JOIN #a")
        assert h.numerics("other") == ["473"]

    def test_stale_invites_are_dropped_on_nick_change(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        joined(h, "#b", "alice")
        h.send("alice", "MODE #a +i")
        h.send("alice", "MODE #b +i")
        h.connect("bob")
        h.send("alice", "INVITE bob #a")
        h.send("alice", "INVITE bob #b")
        h.send("alice", "PART #a")  # #a ends
        h.send("alice", "MODE #b -i")  # #b's invites are cleared
        h.send("bob", "NICK robert")
        assert h.users["bob"].invited == set()

    def test_invites_cleared_by_minus_i(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice")
        h.send("alice", "MODE #a +i")
        h.connect("bob")
        h.send("alice", "INVITE bob #a")
        h.send("alice", "MODE #a -i")
        h.send("alice", "MODE #a +i")
        h.clear()
        h.send("bob", "JOIN #a")
        assert h.numerics("bob") == ["473"]
