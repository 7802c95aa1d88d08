"""Connection lifecycle in the core: keepalive and deadlines on the injected clock (never sleep),
connection limits, shutdown, and containment of a failing handler."""

from __future__ import annotations

import dataclasses

import pytest

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.server.core import COMMANDS, Replies, ServerCore
from relaychat.server.state import User
from tests.harness import CoreHarness
from tests.unit.core_support import SERVER, harness, joined, src

PING = f"PING {SERVER}"


@pytest.fixture
def h() -> CoreHarness:
    # The defaults, spelled out: PING after 90 s of silence, drop 60 s later.
    return harness(ping_interval=90.0, ping_timeout=60.0, registration_timeout=60.0)


class TestPing:
    def test_idle_client_is_pinged(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.advance(89)
        assert h.lines("alice") == []
        h.advance(1)
        assert h.lines("alice") == [PING]
        h.advance(30)
        assert h.lines("alice") == []  # one PING per silence, not one per tick

    def test_silent_client_is_dropped(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.advance(90)
        h.send("bob", "PONG x")  # bob answers; alice does not
        h.clear()
        h.advance(59)
        assert h.peers["alice"].closed is None
        h.advance(1)
        reason = "Ping timeout: 150 seconds"
        assert h.peers["alice"].closed == f"Closing Link: 127.0.0.1 ({reason})"
        assert h.lines("bob") == [f":{src('alice')} QUIT :{reason}"]
        assert h.core.find_user("alice") is None
        assert h.peers["bob"].closed is None

    def test_pong_resets(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.advance(90)
        assert h.lines("alice") == [PING]
        h.advance(30)
        h.send("alice", f"PONG {SERVER}")
        h.advance(60)
        assert h.peers["alice"].closed is None
        assert h.lines("alice") == []
        h.advance(30)  # 90 s after the PONG
        assert h.lines("alice") == [PING]

    def test_any_input_resets(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.advance(90)
        h.send("alice", "LUSERS")
        h.lines("alice")
        h.advance(89)
        assert h.lines("alice") == []
        assert h.peers["alice"].closed is None

    def test_unknown_command_also_resets(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.advance(80)
        h.send("alice", "FROB")
        h.lines("alice")
        h.advance(80)
        assert h.lines("alice") == []

    def test_custom_intervals(self) -> None:
        h = harness(ping_interval=5.0, ping_timeout=2.0)
        h.connect("alice")
        h.advance(5)
        assert h.lines("alice") == [PING]
        h.advance(2)
        assert h.peers["alice"].closed == "Closing Link: 127.0.0.1 (Ping timeout: 7 seconds)"

    def test_one_ping_bytes_for_everyone(self, h: CoreHarness) -> None:
        h.connect("alice")
        h.connect("bob")
        h.advance(90)
        assert h.peers["alice"].buffer == h.peers["bob"].buffer == f"{PING}\r\n".encode()


class TestRegistrationTimeout:
    def test_unregistered_is_dropped(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.advance(59)
        assert h.peers["c"].closed is None
        h.advance(1)
        assert h.peers["c"].closed == "Closing Link: 127.0.0.1 (Registration timed out)"
        assert h.core.connections == {}
        assert h.core.users == {}
        assert h.core.per_ip == {}

    def test_unregistered_is_not_pinged(self, h: CoreHarness) -> None:
        h.open("c")
        h.send("c", "NICK alice")
        h.advance(45)
        h.send("c", "PING x")
        assert h.lines("c") == [f":{SERVER} PONG {SERVER} x"]
        h.advance(15)  # input does not extend the registration deadline
        assert h.peers["c"].closed == "Closing Link: 127.0.0.1 (Registration timed out)"

    def test_registered_in_time_stays(self, h: CoreHarness) -> None:
        h.open("c")
        h.advance(50)
        h.send("c", "NICK alice")
        h.send("c", "USER alice 0 * :Alice")
        h.advance(20)
        assert h.peers["c"].closed is None
        assert h.users["c"].registered


class TestLimits:
    def test_max_clients(self) -> None:
        h = harness(limits={"max_clients": 2})
        assert h.open("a") is not None
        assert h.open("b", ip="10.0.0.2") is not None
        assert h.open("c", ip="10.0.0.3") is None
        assert h.peers["c"].closed == "Closing Link: 10.0.0.3 (Server is full)"
        h.send("a", "QUIT")
        assert h.open("d", ip="10.0.0.4") is not None

    def test_max_per_ip(self) -> None:
        h = harness(limits={"max_per_ip": 2})
        assert h.open("a") is not None
        assert h.open("b") is not None
        assert h.open("c") is None
        assert h.peers["c"].closed == "Too many connections from your host"
        assert h.open("d", ip="10.0.0.1") is not None
        h.send("a", "QUIT")
        assert h.open("e") is not None
        assert h.core.per_ip == {"127.0.0.1": 2, "10.0.0.1": 1}

    def test_max_per_ip_zero_means_no_limit(self) -> None:
        h = harness(limits={"max_per_ip": 0})
        for i in range(5):
            assert h.open(f"c{i}") is not None

    def test_refused_connection_is_not_counted(self) -> None:
        h = harness(limits={"max_per_ip": 1})
        h.connect("alice")
        assert h.open("c") is None
        h.send("alice", "LUSERS")
        assert " 253 " not in " ".join(h.lines("alice"))


class TestShutdown:
    def test_everyone_closed_without_quit(self, h: CoreHarness) -> None:
        joined(h, "#a", "alice", "bob")
        h.open("unreg")
        h.core.shutdown()
        for name in ("alice", "bob", "unreg"):
            assert h.peers[name].closed == "Server shutting down"
            assert h.lines(name) == []
        assert h.core.connections == {}
        assert h.core.channels == {}


def _boom(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    out.numeric(N.RPL_NOTOPIC)  # collected before the failure: must not reach the client
    raise RuntimeError("handler bug")


class TestContainment:
    """An unexpected exception in a handler is contained to the one client and command."""

    @pytest.fixture
    def broken(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(
            COMMANDS, "TOPIC", dataclasses.replace(COMMANDS["TOPIC"], handler=_boom)
        )

    @pytest.mark.usefixtures("broken")
    def test_client_gets_an_error_and_others_carry_on(
        self, h: CoreHarness, caplog: pytest.LogCaptureFixture
    ) -> None:
        joined(h, "#a", "alice", "bob")
        h.send("alice", "TOPIC #a :boom")  # must not raise
        assert h.lines("alice") == [
            f":{SERVER} 400 alice TOPIC :Internal error; the command was not carried out"
        ]
        assert h.lines("bob") == []
        assert "handler for TOPIC failed" in caplog.text
        # The failing client is still connected and usable; so is everyone else.
        assert h.peers["alice"].closed is None
        h.send("alice", "PRIVMSG #a :still here")
        assert h.lines("bob") == [f":{src('alice')} PRIVMSG #a :still here"]
        h.send("bob", "PRIVMSG #a :me too")
        assert h.lines("alice") == [f":{src('bob')} PRIVMSG #a :me too"]
        h.send("bob", "TOPIC #a")
        assert h.numerics("bob") == ["400"]

    @pytest.mark.usefixtures("broken")
    def test_shared_checks_still_run_first(self, h: CoreHarness) -> None:
        assert COMMANDS["TOPIC"].handler is _boom
        h.open("c")
        h.send("c", "TOPIC #a")
        assert h.lines("c") == [f":{SERVER} 451 * :You have not registered"]
