"""MONITOR (https://ircv3.net/specs/extensions/monitor) and extended-monitor
(https://ircv3.net/specs/extensions/extended-monitor), in memory."""

from __future__ import annotations

import pytest

from relaychat.protocol.message import parse
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, src
from tests.unit.test_core_ircv3 import with_caps


@pytest.fixture
def h() -> CoreHarness:
    return harness()


def isupport(h: CoreHarness) -> dict[str, str]:
    h.send("alice", "VERSION")
    tokens: dict[str, str] = {}
    for line in h.lines("alice"):
        msg = parse(line)
        if msg.command == "005":
            for tok in msg.params[1:-1]:
                key, _, value = tok.partition("=")
                tokens[key] = value
    return tokens


class TestMonitorCommand:
    def test_isupport_announces_the_limit(self) -> None:
        h = harness(limits={"monitor": 7})
        h.connect("alice")
        assert isupport(h)["MONITOR"] == "7"

    def test_add_offline_then_online_then_offline(self, h: CoreHarness) -> None:
        """Spec: 731 for an offline target; 730 when it comes; 731 when it quits."""
        h.connect("alice")
        h.send("alice", "MONITOR + bob")
        assert h.lines("alice") == [f":{SERVER} 731 alice bob"]
        h.connect("bob")
        assert h.lines("alice") == [f":{SERVER} 730 alice {src('bob')}"]
        h.send("bob", "QUIT :bye")
        assert h.lines("alice") == [f":{SERVER} 731 alice bob"]

    def test_add_online_and_offline_together(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "MONITOR + bob,carol")
        assert h.lines("alice") == [
            f":{SERVER} 730 alice {src('bob')}",
            f":{SERVER} 731 alice carol",
        ]

    def test_unregistered_nick_is_not_online(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.open("bob")
        h.send("bob", "NICK bob")  # no USER yet: not online
        h.send("alice", "MONITOR + bob")
        assert h.lines("alice") == [f":{SERVER} 731 alice bob"]
        h.send("bob", "USER bob 0 * :Bob")
        assert h.lines("alice") == [f":{SERVER} 730 alice {src('bob')}"]

    def test_nick_changes(self, h: CoreHarness) -> None:
        """irctest testNickChange: online on a NICK to it, nothing for a case change, offline
        (with the current spelling) on a NICK away from it."""
        h.connect("alice")
        h.send("alice", "MONITOR + qux")
        h.connect("baz")
        h.clear()
        h.send("baz", "NICK qux")
        assert h.lines("alice") == [f":{SERVER} 730 alice {src('qux').replace('~qux', '~baz')}"]
        h.send("baz", "NICK QUX")
        assert h.lines("alice") == []
        h.send("baz", "NICK other")
        assert h.lines("alice") == [f":{SERVER} 731 alice QUX"]

    def test_remove_and_clear_are_silent(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MONITOR + bob,carol")
        h.clear()
        h.send("alice", "MONITOR - BOB")
        assert h.lines("alice") == []
        h.connect("bob")
        assert h.lines("alice") == []
        h.send("alice", "MONITOR C")
        h.connect("carol")
        assert h.lines("alice") == []
        assert h.core.monitors == {}

    def test_list_and_status(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "MONITOR L")
        assert h.lines("alice") == [f":{SERVER} 733 alice :End of MONITOR list"]
        h.send("alice", "MONITOR + Bob,carol,bob")
        h.clear()
        h.send("alice", "MONITOR L")
        assert h.lines("alice") == [
            f":{SERVER} 732 alice Bob,carol",
            f":{SERVER} 733 alice :End of MONITOR list",
        ]
        h.send("alice", "MONITOR S")
        assert h.lines("alice") == [
            f":{SERVER} 730 alice {src('bob')}",
            f":{SERVER} 731 alice carol",
        ]

    def test_masks_are_never_monitored(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MONITOR + *!bob@*,bo*")
        assert h.lines("alice") == []
        h.connect("bob")
        assert h.lines("alice") == []

    def test_list_is_bounded(self) -> None:
        h = harness(limits={"monitor": 2})
        h.connect("alice")
        h.send("alice", "MONITOR + a1,a2,a3,a4")
        assert h.lines("alice") == [
            f":{SERVER} 734 alice 2 a3,a4 :Monitor list is full",
            f":{SERVER} 731 alice a1,a2",
        ]
        h.send("alice", "MONITOR + a5")
        assert h.lines("alice") == [f":{SERVER} 734 alice 2 a5 :Monitor list is full"]

    def test_long_lists_are_split_to_fit_a_line(self) -> None:
        h = harness(limits={"monitor": 300})
        h.connect("alice")
        nicks = [f"nick{i:05d}" for i in range(300)]
        h.send("alice", "MONITOR + " + ",".join(nicks[:40]))
        for i in range(40, 300, 40):
            h.send("alice", "MONITOR + " + ",".join(nicks[i : i + 40]))
        h.lines("alice")
        h.send("alice", "MONITOR L")
        lines = h.lines("alice")
        assert all(len(line.encode()) <= 512 for line in lines)
        listed = [n for line in lines[:-1] for n in parse(line).params[-1].split(",")]
        assert listed == nicks

    def test_errors(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MONITOR")
        h.send("alice", "MONITOR +")
        h.send("alice", "MONITOR X")
        assert h.lines("alice") == [
            f":{SERVER} 461 alice MONITOR :Not enough parameters",
            f":{SERVER} 461 alice MONITOR :Not enough parameters",
            f":{SERVER} FAIL MONITOR INVALID_PARAMS X :Use MONITOR + - C L or S",
        ]

    def test_watcher_leaving_is_forgotten(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "MONITOR + bob")
        h.send("alice", "QUIT")
        assert h.core.monitors == {}
        h.connect("bob")  # nobody to tell: no error

    def test_two_watchers_one_removes(self, h: CoreHarness) -> None:
        h.connect("foo")
        h.connect("bar")
        h.send("foo", "MONITOR + qux")
        h.send("bar", "MONITOR + qux")
        h.send("bar", "MONITOR - qux")
        h.clear()
        h.connect("qux")
        assert h.numerics("foo") == ["730"]
        assert h.lines("bar") == []


class TestExtendedMonitor:
    def test_away_reaches_a_watcher_with_both_caps(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "extended-monitor", "away-notify")
        h.connect("bob")
        h.send("alice", "MONITOR + bob")
        h.clear()
        h.send("bob", "AWAY lunch")
        assert h.lines("alice") == [f":{src('bob')} AWAY lunch"]
        h.send("bob", "AWAY")
        assert h.lines("alice") == [f":{src('bob')} AWAY"]

    @pytest.mark.parametrize(
        "caps",
        [("extended-monitor",), ("away-notify",), ()],
        ids=["no-away-notify", "no-ext", "none"],
    )
    def test_away_needs_both_caps(self, h: CoreHarness, caps: tuple[str, ...]) -> None:
        with_caps(h, "alice", *caps)
        h.connect("bob")
        h.send("alice", "MONITOR + bob")
        h.clear()
        h.send("bob", "AWAY lunch")
        assert h.lines("alice") == []

    def test_sharing_a_channel_and_monitoring_gets_one_copy(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "extended-monitor", "away-notify")
        h.connect("bob")
        h.send("alice", "JOIN #a")
        h.send("bob", "JOIN #a")
        h.send("alice", "MONITOR + bob")
        h.clear()
        h.send("bob", "AWAY lunch")
        assert h.lines("alice") == [f":{src('bob')} AWAY lunch"]

    def test_setname_and_chghost(self) -> None:
        h = harness()
        with_caps(h, "alice", "extended-monitor", "setname", "chghost")
        with_caps(h, "bob", "setname")
        h.send("alice", "MONITOR + bob")
        h.clear()
        h.send("bob", "SETNAME :New Name")
        assert h.lines("alice") == [f":{src('bob')} SETNAME :New Name"]
        h.core.set_oper(h.users["alice"], True)
        h.send("alice", "CHGHOST bob ~b example.org")
        assert f":{src('bob')} CHGHOST ~b example.org" in h.lines("alice")

    def test_account_change(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "extended-monitor", "account-notify")
        h.connect("bob")
        h.send("alice", "MONITOR + bob")
        h.clear()
        h.core.set_account(h.users["bob"], "bobacct")
        assert h.lines("alice") == [f":{src('bob')} ACCOUNT bobacct"]

    def test_away_target_added_or_coming_online(self, h: CoreHarness) -> None:
        with_caps(h, "alice", "extended-monitor", "away-notify")
        h.connect("bob")
        h.send("bob", "AWAY gone")
        h.send("alice", "MONITOR + bob")
        assert h.lines("alice") == [
            f":{SERVER} 730 alice {src('bob')}",
            f":{src('bob')} AWAY gone",
        ]
