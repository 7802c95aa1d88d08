"""Keepalive and dead-peer detection with an injected clock: no test sleeps."""

from __future__ import annotations

import pytest

from relaychat.client.keepalive import Keepalive
from tests.unit.test_client_protocol import SRV, Wire, tokens


class TestKeepalive:
    def test_idle_then_ping_then_dead(self) -> None:
        k = Keepalive(interval=10.0, timeout=5.0)
        k.start(100.0)
        assert k.deadline() == 110.0
        assert not k.ping_due(109.9)
        assert k.ping_due(110.0)
        k.sent("t1", 110.0)
        assert not k.ping_due(111.0) and k.waiting
        assert k.deadline() == 115.0
        assert not k.dead(114.9)
        assert k.dead(115.0)

    def test_input_delays_the_ping_but_does_not_answer_it(self) -> None:
        k = Keepalive(interval=10.0, timeout=5.0)
        k.start(0.0)
        k.received(8.0)
        assert not k.ping_due(10.0) and k.ping_due(18.0)
        k.sent("t1", 18.0)
        k.received(19.0)  # data from the server proves one direction only
        assert k.dead(23.0)

    def test_a_pong_answers_its_ping_and_every_older_one(self) -> None:
        k = Keepalive(interval=10.0, timeout=5.0)
        k.start(0.0)
        k.sent("a", 1.0)
        k.sent("b", 2.0)
        k.sent("c", 3.0)
        assert not k.answered("zzz")
        assert k.answered("b")
        assert k.deadline() == 8.0  # only "c" is left
        assert k.answered("c") and not k.waiting

    def test_start_forgets_the_previous_connection(self) -> None:
        k = Keepalive(interval=10.0, timeout=5.0)
        k.start(0.0)
        k.sent("a", 1.0)
        k.start(50.0)
        assert not k.waiting and not k.dead(100.0) and k.ping_due(60.0)

    def test_bad_settings(self) -> None:
        with pytest.raises(ValueError):
            Keepalive(interval=0.0, timeout=1.0)


class TestProtocolKeepalive:
    def test_idle_link_is_pinged_and_a_silent_one_declared_dead(self) -> None:
        w = Wire(ping_interval=30.0, ping_timeout=20.0)
        w.register()
        w.advance(29.0)
        assert w.sent() == []
        w.advance(1.0)
        (ping,) = w.sent()
        assert ping.startswith("PING ")
        assert w.p.next_deadline(w.now) == w.now + 20.0
        w.advance(19.9)
        assert w.p.dead is None
        w.advance(0.1)
        assert w.p.dead == "ping timeout: no PONG in 20 s"

    def test_pong_keeps_it_alive(self) -> None:
        w = Wire(ping_interval=30.0, ping_timeout=20.0)
        w.register()
        for _ in range(5):
            w.advance(30.0)
            (token,) = tokens(w.sent())
            w.advance(10.0)
            w.pong(token)
        assert w.p.dead is None

    def test_unanswered_confirmation_ping_also_detects_a_dead_peer(self) -> None:
        """Half-open while sending: the server keeps talking, our lines vanish."""
        w = Wire(ping_interval=30.0, ping_timeout=5.0)
        w.register()
        w.p.send_text("#c", "into the void", w.now)
        assert tokens(w.sent())
        for _ in range(4):
            w.advance(1.0)
            w.feed(":amy!a@h PRIVMSG #c :still talking")
        w.advance(1.0)
        assert w.p.dead is not None and "ping timeout" in w.p.dead

    def test_no_timer_when_disconnected(self) -> None:
        w = Wire()
        assert w.p.next_deadline(w.now) is None
        w.connect()
        w.p.connection_lost("EOF", w.now)
        assert w.p.next_deadline(w.now) is None

    def test_server_ping_is_answered_even_when_paced_out(self) -> None:
        w = Wire(pace_rate=0.1, pace_burst=1)
        w.register()
        w.feed(f"PING {SRV[1:]}")
        assert w.sent() == [f"PONG {SRV[1:]}"]


def test_lag_is_the_round_trip_of_the_answered_ping() -> None:
    from relaychat.client.keepalive import Keepalive

    k = Keepalive(interval=10, timeout=5)
    k.start(100.0)
    assert k.lag is None
    k.sent("a", 101.0)
    k.sent("b", 102.0)
    assert k.answered("b", 102.25)
    assert k.lag == 0.25
    assert not k.answered("a", 103.0)  # answered already, with b
    k.start(200.0)
    assert k.lag is None
