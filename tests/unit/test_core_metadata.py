"""draft/metadata-2 (https://ircv3.net/specs/extensions/metadata), in memory: the spec's
subcommands, limits and errors, notifications, before-connect, and account persistence."""

from __future__ import annotations

import pytest

from relaychat.protocol.message import Message, parse
from tests.harness import CoreHarness
from tests.unit.accounts_support import add_account, plain, sasl_client
from tests.unit.accounts_support import harness as accounts_harness
from tests.unit.core_support import SERVER, harness
from tests.unit.test_core_ircv3 import with_caps

CAP = "draft/metadata-2"


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def meta(h: CoreHarness, nick: str, *caps: str) -> None:
    """Register ``nick`` with the metadata cap and batch (and ``caps``)."""
    with_caps(h, nick, CAP, "batch", *caps)


def unbatch(lines: list[str], kind: str = "metadata") -> tuple[list[str], list[Message]]:
    """The batch's parameters after its type, and the messages inside it (checked tagged)."""
    msgs = [parse(line) for line in lines]
    start, *inner, end = msgs
    assert start.command == "BATCH" and start.params[0][0] == "+" and start.params[1] == kind
    ref = start.params[0][1:]
    assert end.command == "BATCH" and end.params == (f"-{ref}",)
    assert all(m.tags.get("batch") == ref for m in inner)
    return list(start.params[2:]), inner


def sub(h: CoreHarness, nick: str, *keys: str) -> None:
    h.lines(nick)
    h.send(nick, "METADATA * SUB " + " ".join(keys))
    assert h.numerics(nick) == ["770"]


class TestCapability:
    def test_value_carries_the_limits(self) -> None:
        h = harness()
        h.open("c")
        h.send("c", "CAP LS 302")
        words = " ".join(parse(line).params[-1] for line in h.lines("c")).split()
        assert f"{CAP}=before-connect,max-subs=50,max-keys=20,max-value-bytes=300" in words

    def test_value_follows_config(self) -> None:
        h = harness(
            metadata={"before_connect": False, "max_subs": 3, "max_keys": 4, "max_value_bytes": 5}
        )
        h.open("c")
        h.send("c", "CAP LS 302")
        words = " ".join(parse(line).params[-1] for line in h.lines("c")).split()
        assert f"{CAP}=max-subs=3,max-keys=4,max-value-bytes=5" in words


class TestGetSetList:
    def test_get_unset_keys_in_a_batch(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * GET display-name avatar")
        params, inner = unbatch(h.lines("foo"))
        assert params == ["foo"]
        assert [(m.command, m.params) for m in inner] == [
            ("766", ("foo", "foo", "display-name", "key not set")),
            ("766", ("foo", "foo", "avatar", "key not set")),
        ]

    @pytest.mark.parametrize("set_target", ["*", "foo", "FOO"])
    def test_set_then_get(self, h: CoreHarness, set_target: str) -> None:
        meta(h, "foo")
        h.send("foo", f"METADATA {set_target} SET display-name :Foo The First")
        assert h.lines("foo") == [f":{SERVER} 761 foo foo display-name * :Foo The First"]
        h.send("foo", "METADATA * GET display-name")
        _, inner = unbatch(h.lines("foo"))
        assert [m.params for m in inner] == [("foo", "foo", "display-name", "*", "Foo The First")]

    def test_set_again_and_delete(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * SET display-name :one")
        h.send("foo", "METADATA * SET display-name :two")
        h.send("foo", "METADATA * SET display-name")
        h.send("foo", "METADATA * SET display-name")
        assert h.lines("foo") == [
            f":{SERVER} 761 foo foo display-name * one",
            f":{SERVER} 761 foo foo display-name * two",
            f":{SERVER} 766 foo foo display-name :key not set",
            f":{SERVER} FAIL METADATA KEY_NOT_SET foo display-name :That key is not set",
        ]

    def test_empty_value_is_a_value(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * SET status :")
        assert h.lines("foo") == [f":{SERVER} 761 foo foo status * :"]
        assert h.users["foo"].meta is not None and h.users["foo"].meta.values == {"status": ""}

    def test_list(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * LIST")
        assert unbatch(h.lines("foo")) == (["foo"], [])
        h.send("foo", "METADATA * SET pronouns :they/them")
        h.send("foo", "METADATA * SET avatar :https://example.org/a.png")
        h.clear()
        h.send("foo", "METADATA foo LIST")
        _, inner = unbatch(h.lines("foo"))
        assert [m.params[2:] for m in inner] == [
            ("avatar", "*", "https://example.org/a.png"),
            ("pronouns", "*", "they/them"),
        ]

    def test_get_another_user_without_telling_anyone(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #chan")
        h.send("bar", "JOIN #chan")
        h.clear()
        h.send("foo", "METADATA * SET display-name :Foo")
        assert h.lines("bar") == []  # not subscribed
        h.send("bar", "METADATA foo GET display-name")
        _, inner = unbatch(h.lines("bar"))
        assert inner[0].params == ("bar", "foo", "display-name", "*", "Foo")

    def test_setting_another_user_is_refused(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "METADATA bar SET display-name :Totally Not Foo")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA KEY_NO_PERMISSION bar display-name "
            ":You may not change this target's keys"
        ]
        assert h.lines("bar") == []

    def test_an_operator_may_set_another_user_who_is_told(self, h: CoreHarness) -> None:
        meta(h, "op")
        meta(h, "bar")
        sub(h, "bar", "display-name")
        h.core.set_oper(h.users["op"], True)
        h.send("op", "METADATA bar SET display-name :Bar")
        assert h.numerics("op") == ["761"]
        assert h.lines("bar") == [f":{SERVER} METADATA bar display-name * Bar"]

    def test_invalid_target(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA foobar LIST")
        h.send("foo", "METADATA #nowhere GET x")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA INVALID_TARGET foobar "
            ":No such nick or channel (before registration: *)",
            f":{SERVER} FAIL METADATA INVALID_TARGET #nowhere "
            ":No such nick or channel (before registration: *)",
        ]

    def test_secret_channel_is_invisible_from_outside(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #s")
        h.send("foo", "MODE #s +s")
        h.send("foo", "METADATA #s SET url :https://example.org")
        h.clear()
        h.send("bar", "METADATA #s GET url")
        assert h.numerics("bar") == ["FAIL"]

    @pytest.mark.parametrize("key", ["Display-Name", "a:b", "", "x" * 33, "é"])
    def test_invalid_keys(self, h: CoreHarness, key: str) -> None:
        meta(h, "foo")
        h.send("foo", f"METADATA * SET {key or ':'} :v")
        assert [m.params[:2] for m in h.messages("foo")] == [("METADATA", "KEY_INVALID")]
        h.send("foo", f"METADATA * GET ok {key or ':'}")
        _, inner = unbatch(h.lines("foo"))
        assert [m.command for m in inner] == ["766", "FAIL"]

    def test_unknown_subcommand(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * FROB")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA SUBCOMMAND_INVALID FROB :Unknown METADATA subcommand"
        ]

    @pytest.mark.parametrize("line", ["METADATA *", "METADATA * GET", "METADATA * SET"])
    def test_missing_parameters(self, h: CoreHarness, line: str) -> None:
        meta(h, "foo")
        h.send("foo", line)
        assert h.numerics("foo") == ["461"]


class TestLimits:
    def test_value_too_long(self) -> None:
        h = harness(metadata={"max_value_bytes": 10})
        meta(h, "foo")
        h.send("foo", "METADATA * SET k :" + "é" * 6)  # 12 bytes
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA VALUE_INVALID :Value is too long (at most 10 bytes)"
        ]
        h.send("foo", "METADATA * SET k :" + "é" * 5)
        assert h.numerics("foo") == ["761"]

    def test_value_not_utf8_is_refused_and_not_relayed(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #chan")
        h.send("bar", "JOIN #chan")
        sub(h, "bar", "display-name")
        h.clear()
        h.send("foo", b"METADATA * SET display-name :invalid UTF-8: \xc3")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA INVALID_UTF8 :Message rejected: your IRC software must use "
            "UTF-8 encoding on this network"
        ]
        assert h.lines("bar") == []

    def test_key_limit(self) -> None:
        h = harness(metadata={"max_keys": 2})
        meta(h, "foo")
        h.send("foo", "METADATA * SET a :1")
        h.send("foo", "METADATA * SET b :2")
        h.send("foo", "METADATA * SET c :3")
        h.send("foo", "METADATA * SET a :again")  # replacing is fine at the limit
        assert h.numerics("foo") == ["761", "761", "FAIL", "761"]

    def test_subscription_limit_stops_at_the_first_key_that_does_not_fit(self) -> None:
        h = harness(metadata={"max_subs": 2})
        meta(h, "foo")
        h.send("foo", "METADATA * SUB a BAD b c d")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA KEY_INVALID BAD :Keys are 1-32 characters of a-z 0-9 _ . / -",
            f":{SERVER} FAIL METADATA TOO_MANY_SUBS c :At most 2 subscriptions",
            f":{SERVER} 770 foo a b",
        ]
        h.send("foo", "METADATA * SUB a")  # already subscribed: acknowledged
        assert h.lines("foo") == [f":{SERVER} 770 foo a"]

    def test_rate_limit(self) -> None:
        h = harness(metadata={"set_burst": 2, "set_rate": 0.5})
        meta(h, "foo")
        h.send("foo", "METADATA * SET a :1")
        h.send("foo", "METADATA * SET a :2")
        h.send("foo", "METADATA * SET a :3")
        assert h.lines("foo")[-1] == (
            f":{SERVER} FAIL METADATA RATE_LIMITED foo a 2 :Too many changes; retry in 2 s"
        )
        h.now += 2
        h.send("foo", "METADATA * SET a :3")
        assert h.numerics("foo") == ["761"]
        assert h.users["foo"].meta is not None and h.users["foo"].meta.values["a"] == "3"

    def test_longest_replies_fit_a_line(self) -> None:
        h = harness()
        nick = "n" * 30
        meta(h, nick)
        h.send(nick, "JOIN #" + "c" * 63)
        h.clear()
        key, value = "k" * 32, "v" * 300
        h.send(nick, f"METADATA #{'c' * 63} SET {key} :{value}")
        (line,) = h.lines(nick)
        assert parse(line).params[-1] == value
        # With the longest server name (63) too, the line stays within 512 bytes.
        assert len(line.encode()) - len(SERVER) + 63 + 2 <= 512


class TestSubscriptions:
    def test_subscribed_members_are_told_of_changes(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        meta(h, "baz")
        h.connect("qux")  # no cap
        for nick in ("foo", "bar", "baz", "qux"):
            h.send(nick, "JOIN #chan")
        sub(h, "bar", "avatar", "display-name")
        sub(h, "foo", "display-name")
        h.clear()
        h.send("foo", "METADATA * SET display-name :Foo")
        assert h.lines("foo") == [f":{SERVER} 761 foo foo display-name * Foo"]  # not a notice
        assert h.lines("bar") == [f":{SERVER} METADATA foo display-name * Foo"]
        assert h.lines("baz") == []  # not subscribed
        assert h.lines("qux") == []  # no cap
        h.send("foo", "METADATA * SET display-name")
        assert h.lines("bar") == [f":{SERVER} METADATA foo display-name *"]

    def test_no_shared_channel_no_notice(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        sub(h, "bar", "display-name")
        h.send("foo", "METADATA * SET display-name :Foo")
        assert h.lines("bar") == []

    def test_joining_gets_members_keys_once(self, h: CoreHarness) -> None:
        """irctest testSubUserSetBeforeJoin."""
        meta(h, "foo")
        meta(h, "bar")
        sub(h, "bar", "display-name", "avatar")
        h.send("foo", "METADATA * SET display-name :Foo The First")
        h.send("foo", "JOIN #chan")
        h.clear()
        h.send("bar", "JOIN #chan")
        lines = h.lines("bar")
        metadata = [parse(line) for line in lines if " METADATA " in line]
        assert [m.params for m in metadata] == [("foo", "display-name", "*", "Foo The First")]
        assert parse(lines[-1]).command == "BATCH"  # the batch comes after NAMES

    def test_members_get_the_joiners_keys(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        sub(h, "foo", "display-name")
        h.send("foo", "JOIN #chan")
        h.send("bar", "METADATA * SET display-name :Bar")
        h.clear()
        h.send("bar", "JOIN #chan")
        assert h.lines("foo")[-1] == f":{SERVER} METADATA bar display-name * Bar"

    def test_big_channel_says_sync_later(self) -> None:
        h = harness(metadata={"sync_members": 2})
        meta(h, "foo")
        sub(h, "foo", "display-name")
        for nick in ("a1", "a2"):
            meta(h, nick)
            h.send(nick, "JOIN #big")
            h.send(nick, f"METADATA * SET display-name :{nick}")
        h.clear()
        h.send("foo", "JOIN #big")
        assert h.lines("foo")[-1] == f":{SERVER} 774 foo #big"
        h.send("foo", "METADATA #big SYNC")
        params, inner = unbatch(h.lines("foo"))
        assert params == ["#big"]
        assert sorted(m.params[0] for m in inner) == ["a1", "a2"]

    def test_sub_sends_current_values(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #chan")
        h.send("bar", "JOIN #chan")
        h.send("foo", "METADATA * SET avatar :a.png")
        h.send("foo", "METADATA #chan SET url :https://example.org")
        h.clear()
        h.send("bar", "METADATA * SUB avatar url")
        assert h.lines("bar") == [
            f":{SERVER} 770 bar avatar url",
            f":{SERVER} METADATA #chan url * https://example.org",
            f":{SERVER} METADATA foo avatar * a.png",
        ]

    def test_unsub_and_subs(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "METADATA * SUBS")
        assert unbatch(h.lines("foo"), "metadata-subs") == (["foo"], [])
        sub(h, "foo", "b", "a", "c")
        h.send("foo", "METADATA * UNSUB c never BAD")
        assert h.lines("foo") == [
            f":{SERVER} FAIL METADATA KEY_INVALID BAD :Keys are 1-32 characters of a-z 0-9 _ . / -",
            f":{SERVER} 771 foo c never",
        ]
        h.send("foo", "METADATA * SUBS")
        _, inner = unbatch(h.lines("foo"), "metadata-subs")
        assert [m.params for m in inner] == [("foo", "a", "b")]

    def test_clear(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #chan")
        h.send("bar", "JOIN #chan")
        sub(h, "bar", "a", "b")
        h.send("foo", "METADATA * SET a :1")
        h.send("foo", "METADATA * SET b :2")
        h.clear()
        h.send("foo", "METADATA * CLEAR")
        _, inner = unbatch(h.lines("foo"))
        assert [(m.command, m.params[2]) for m in inner] == [("766", "a"), ("766", "b")]
        assert h.lines("bar") == [
            f":{SERVER} METADATA foo a *",
            f":{SERVER} METADATA foo b *",
        ]
        h.send("bar", "METADATA foo CLEAR")
        assert h.numerics("bar") == ["FAIL"]

    def test_without_batch_cap_lines_come_plain(self, h: CoreHarness) -> None:
        with_caps(h, "foo", CAP)
        h.send("foo", "METADATA * SET a :1")
        h.send("foo", "METADATA * GET a")
        assert h.lines("foo") == [
            f":{SERVER} 761 foo foo a * 1",
            f":{SERVER} 761 foo foo a * 1",
        ]


class TestChannels:
    def test_operators_set_members_are_told(self, h: CoreHarness) -> None:
        meta(h, "foo")
        meta(h, "bar")
        h.send("foo", "JOIN #chan")
        h.send("bar", "JOIN #chan")
        sub(h, "bar", "display-name")
        h.clear()
        h.send("foo", "METADATA #chan SET display-name :Hash Channel")
        assert h.lines("foo") == [f":{SERVER} 761 foo #chan display-name * :Hash Channel"]
        assert h.lines("bar") == [f":{SERVER} METADATA #chan display-name * :Hash Channel"]
        h.send("bar", "METADATA #chan SET display-name :Sharp Channel")
        assert h.lines("bar") == [
            f":{SERVER} FAIL METADATA KEY_NO_PERMISSION #chan display-name "
            ":You may not change this target's keys"
        ]
        assert h.lines("foo") == []
        h.send("bar", "METADATA #CHAN GET display-name")
        _, inner = unbatch(h.lines("bar"))
        assert inner[0].params == ("bar", "#chan", "display-name", "*", "Hash Channel")

    def test_joiner_gets_the_channels_keys(self, h: CoreHarness) -> None:
        """irctest testSubChannelSetBeforeJoin."""
        meta(h, "foo")
        meta(h, "bar")
        sub(h, "bar", "display-name")
        h.send("foo", "JOIN #chan")
        h.send("foo", "METADATA #chan SET display-name :Hash Channel")
        assert h.lines("bar") == []
        h.send("bar", "JOIN #chan")
        metadata = [parse(line) for line in h.lines("bar") if " METADATA " in line]
        assert [m.params for m in metadata] == [("#chan", "display-name", "*", "Hash Channel")]

    def test_keys_end_with_the_channel(self, h: CoreHarness) -> None:
        meta(h, "foo")
        h.send("foo", "JOIN #chan")
        h.send("foo", "METADATA #chan SET url :x")
        h.send("foo", "PART #chan")
        h.send("foo", "JOIN #chan")
        h.clear()
        h.send("foo", "METADATA #chan LIST")
        assert unbatch(h.lines("foo")) == (["#chan"], [])


class TestRegistration:
    def test_own_keys_set_before_connect_come_in_the_burst(self, h: CoreHarness) -> None:
        """irctest testSetGetValidBeforeConnect."""
        h.open("c")
        h.send("c", "CAP LS 302")
        h.send("c", f"CAP REQ :{CAP} batch")
        h.lines("c")
        h.send("c", "METADATA * SET display-name :Foo The First")
        assert h.lines("c") == [f":{SERVER} 761 * * display-name * :Foo The First"]
        h.send("c", "METADATA foo SET display-name :x")  # only * before registration
        assert h.numerics("c") == ["FAIL"]
        h.send("c", "NICK foo")
        h.send("c", "USER foo 0 * :foo")
        h.send("c", "CAP END")
        lines = h.lines("c")
        start = next(i for i, line in enumerate(lines) if " BATCH +" in line)
        params, inner = unbatch(lines[start : start + 3])
        assert params == ["foo"]
        assert inner[0].params == ("foo", "display-name", "*", "Foo The First")

    def test_burst_has_an_empty_batch_when_nothing_is_set(self, h: CoreHarness) -> None:
        meta(h, "foo")  # with_caps drops the burst: do it again by hand
        h.open("c")
        h.send("c", f"CAP REQ :{CAP} batch")
        h.send("c", "NICK c")
        h.send("c", "USER c 0 * :c")
        h.send("c", "CAP END")
        lines = h.lines("c")
        start = next(i for i, line in enumerate(lines) if " BATCH +" in line)
        assert unbatch(lines[start : start + 2]) == (["c"], [])

    def test_cap_enabled_later_sends_own_keys(self, h: CoreHarness) -> None:
        with_caps(h, "foo", "batch")
        h.send("foo", "METADATA * SET a :1")
        h.clear()
        h.send("foo", f"CAP REQ {CAP}")
        lines = h.lines("foo")
        assert parse(lines[0]).params[1:] == ("ACK", CAP)
        assert unbatch(lines[1:])[1][0].params == ("foo", "a", "*", "1")

    def test_before_connect_can_be_turned_off(self) -> None:
        h = harness(metadata={"before_connect": False})
        h.open("c")
        h.send("c", "METADATA * SET a :1")
        assert h.numerics("c") == ["451"]


class TestMonitor:
    def test_monitors_with_extended_monitor_get_keys_and_changes(self, h: CoreHarness) -> None:
        meta(h, "foo", "extended-monitor")
        sub(h, "foo", "avatar")
        meta(h, "bar")
        h.send("bar", "METADATA * SET avatar :a.png")
        h.clear()
        h.send("foo", "MONITOR + bar")
        assert h.lines("foo") == [
            f":{SERVER} 730 foo bar!~bar@127.0.0.1",
            f":{SERVER} METADATA bar avatar * a.png",
        ]
        h.send("bar", "METADATA * SET avatar :b.png")
        assert h.lines("foo") == [f":{SERVER} METADATA bar avatar * b.png"]

    def test_monitors_without_extended_monitor_get_nothing(self, h: CoreHarness) -> None:
        meta(h, "foo")
        sub(h, "foo", "avatar")
        meta(h, "bar")
        h.send("foo", "MONITOR + bar")
        h.clear()
        h.send("bar", "METADATA * SET avatar :a.png")
        assert h.lines("foo") == []


class TestAccounts:
    """A logged-in user's keys are saved to its account and come back at its next login."""

    def test_keys_persist_across_logins(self) -> None:
        h, svc = accounts_harness()
        add_account(svc, "jilles")
        for conn in ("one", "two"):
            sasl_client(h, conn, nick=f"j{conn}")
            h.send(conn, f"CAP REQ :{CAP} batch")
            h.send(conn, "AUTHENTICATE PLAIN")
            h.send(conn, "AUTHENTICATE " + plain("jilles"))
            h.send(conn, "CAP END")
            lines = h.lines(conn)
            assert any(" 903 " in line for line in lines)
            start = next(i for i, line in enumerate(lines) if " BATCH +" in line)
            inner = unbatch(lines[start : start + 2 + (conn == "two")])[1]
            if conn == "one":
                assert inner == []
                h.send(conn, "METADATA * SET pronouns :she/her")
                h.send(conn, "QUIT")
            else:
                assert inner[0].params == ("jtwo", "pronouns", "*", "she/her")
        assert svc.store.metadata("JILLES") == {"pronouns": "she/her"}
        h.send("two", "METADATA * CLEAR")
        assert svc.store.metadata("jilles") == {}

    def test_keys_set_before_login_win_and_are_saved(self) -> None:
        h, svc = accounts_harness()
        add_account(svc, "jilles")
        svc.store.set_metadata("jilles", "avatar", "old.png")
        svc.store.set_metadata("jilles", "pronouns", "he/him")
        sasl_client(h, "c", nick="j")
        h.send("c", f"CAP REQ :{CAP} batch")
        h.send("c", "METADATA * SET avatar :new.png")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", "AUTHENTICATE " + plain("jilles"))
        h.send("c", "CAP END")
        user = h.users["c"]
        assert user.meta is not None
        assert user.meta.values == {"avatar": "new.png", "pronouns": "he/him"}
        assert svc.store.metadata("jilles") == {"avatar": "new.png", "pronouns": "he/him"}

    def test_not_logged_in_nothing_is_saved(self) -> None:
        h, svc = accounts_harness()
        add_account(svc, "jilles")
        meta(h, "j")
        h.send("j", "METADATA * SET avatar :a.png")
        assert svc.store.metadata("jilles") == {}
