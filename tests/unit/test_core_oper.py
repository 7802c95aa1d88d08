"""Operator commands: OPER and KILL (RFC 2812 §3.1.4, §3.7.1)."""

from __future__ import annotations

from functools import cache

import pytest

from relaychat.config import Oper
from relaychat.passwords import hash_password
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src


@cache
def oper_hash() -> str:
    """One argon2 hash for the whole module (hashing is deliberately slow)."""
    return hash_password("hunter2")


@pytest.fixture
def h() -> CoreHarness:
    return harness(opers=(Oper("root", oper_hash()),))


def make_oper(h: CoreHarness, nick: str) -> None:
    """Give ``nick`` +o without paying for a password check."""
    h.core.set_oper(h.users[nick], True)
    h.users[nick].oper_name = "root"


class TestOper:
    def test_success(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "OPER root hunter2")
        assert h.lines("alice") == [
            f":{SERVER} 381 alice :You are now an IRC operator",
            f":{src('alice')} MODE alice +o",
        ]
        assert h.users["alice"].is_oper
        assert h.users["alice"].oper_name == "root"
        h.send("alice", "LUSERS")
        assert f":{SERVER} 252 alice 1 :operator(s) online" in h.lines("alice")

    def test_wrong_password(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "OPER root hunter3")
        assert h.lines("alice") == [f":{SERVER} 464 alice :Password incorrect"]
        assert not h.users["alice"].is_oper

    def test_wrong_name(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.send("alice", "OPER admin hunter2")
        assert h.lines("alice") == [f":{SERVER} 464 alice :Password incorrect"]
        assert h.core.oper_count == 0

    def test_no_opers_configured(self) -> None:
        h = harness()
        h.connect("alice")
        h.send("alice", "OPER root hunter2")
        assert h.lines("alice") == [f":{SERVER} 464 alice :Password incorrect"]

    def test_again_when_oper(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "OPER root hunter2")
        assert h.lines("alice") == [f":{SERVER} 381 alice :You are now an IRC operator"]
        assert h.core.oper_count == 1

    def test_deoper_with_mode(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "MODE alice -o")
        assert h.lines("alice") == [f":{src('alice')} MODE alice -o"]
        assert not h.users["alice"].is_oper
        assert h.users["alice"].oper_name is None
        assert h.core.oper_count == 0

    def test_oper_quitting_updates_count(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        make_oper(h, "alice")
        h.send("alice", "QUIT")
        assert h.core.oper_count == 0
        h.send("bob", "LUSERS")
        assert " 252 " not in " ".join(h.lines("bob"))


class TestKill:
    def test_needs_oper(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "KILL bob :bye")
        assert h.lines("alice") == [
            f":{SERVER} 481 alice :Permission Denied- You're not an IRC operator"
        ]
        assert h.peers["bob"].closed is None

    def test_no_such_nick(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "KILL ghost :bye")
        assert h.lines("alice") == [f":{SERVER} 401 alice ghost :No such nick/channel"]

    def test_cannot_kill_server(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", f"KILL {SERVER} :bye")
        assert h.lines("alice") == [f":{SERVER} 483 alice :You can't kill a server!"]

    def test_needs_reason(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "KILL bob")
        assert h.lines("alice") == [f":{SERVER} 461 alice KILL :Not enough parameters"]

    def test_kill(self, h: CoreHarness) -> None:
        joined(h, "#a", "bob", "carol")
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "KILL BOB :spamming")
        reason = "Killed (alice (spamming))"
        assert h.lines("carol") == [f":{src('bob')} QUIT :{reason}"]
        assert h.lines("alice") == []
        assert h.peers["bob"].closed == f"Closing Link: 127.0.0.1 ({reason})"
        assert h.core.find_user("bob") is None
        assert [u.nick for u in h.core.find_channel("#a").members] == ["carol"]  # type: ignore[union-attr]
        h.send("alice", "WHOWAS bob")
        assert h.numerics("alice") == ["314", "312", "369"]

    def test_kill_self(self, h: CoreHarness) -> None:
        h.connect("alice")
        make_oper(h, "alice")
        h.send("alice", "KILL alice :oops")
        assert h.peers["alice"].closed == "Closing Link: 127.0.0.1 (Killed (alice (oops)))"
        assert h.core.connections == {}
        assert h.core.oper_count == 0
