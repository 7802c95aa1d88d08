"""Issue 14: the rate of new connections per address group (``throttle.connect_*``), in memory."""

from __future__ import annotations

from relaychat.config import Throttle
from tests.unit.core_support import harness


def test_burst_then_per_minute_by_address_group() -> None:
    h = harness(throttle=Throttle(connect_burst=3, connect_per_minute=30.0))
    for i in range(3):
        assert h.open(f"a{i}", ip="192.0.2.1") is not None
    assert h.open("refused", ip="192.0.2.1") is None
    assert h.peers["refused"].closed == (
        "Too many connections from your host (try again in 2 seconds)"
    )
    # Another address, and another IPv6 /64, are not affected; one /64 is one group.
    assert h.open("b", ip="192.0.2.2") is not None
    for i in range(3):
        assert h.open(f"v6-{i}", ip=f"2001:db8::{i + 1}") is not None
    assert h.open("v6-more", ip="2001:db8::ffff") is None
    assert h.open("v6-other", ip="2001:db8:0:1::1") is not None
    # Refusals spend nothing: one token every two seconds.
    h.advance(2.0)
    assert h.open("later", ip="192.0.2.1") is not None
    assert h.open("too-soon", ip="192.0.2.1") is None
    # A refused connection was never counted.
    assert h.core.per_ip["192.0.2.1"] == 4


def test_zero_per_minute_is_no_limit() -> None:
    h = harness(throttle=Throttle(connect_burst=1, connect_per_minute=0.0))
    assert all(h.open(f"c{i}") is not None for i in range(50))


def test_reconfigure_keeps_the_buckets() -> None:
    h = harness(throttle=Throttle(connect_burst=2, connect_per_minute=60.0))
    assert h.open("a") is not None and h.open("b") is not None
    assert h.open("c") is None
    h.core.throttles.reconfigure(Throttle(connect_burst=10, connect_per_minute=6.0))
    assert h.core.throttles.connect.interval == 10.0
    assert h.open("d") is None  # still empty: what the bucket remembers stays
    h.advance(10.0)
    assert h.open("e") is not None
