"""The client through a fault-injecting proxy: every fault is noticed, survived, and accounted.

Alice talks to the real server through :class:`FaultProxy`; Bob is connected directly and counts
what reaches him. Alice sends messages before, during and after a fault. For each fault, and
for each delivery guarantee, the test proves:

- Alice notices within her timeout and reconnects;
- Bob got every message at most once (never a duplicate);
- ``exactly_once`` (the default against relaychat): Bob got every message, and every Delivery
  is confirmed exactly once, with its msgid;
- ``at_most_once``: every message Bob did not get was reported to Alice's code as not sent (by
  its Delivery and in ``Disconnected.unconfirmed``), and every message the server confirmed
  did reach Bob.

The long run of the same faults, with kill -9 of the server, is ``test_delivery_soak.py``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from relaychat.client import (
    Client,
    Connected,
    Delivery,
    Disconnected,
    Event,
    Message,
    Reconnecting,
)
from relaychat.server.listeners import Server
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT

#: Small timings so every fault is noticed in well under a second.
FAST = dict(
    ping_interval=0.3,
    ping_timeout=0.4,
    backoff_initial=0.05,
    backoff_max=0.2,
    connect_timeout=1.0,
    registration_timeout=2.0,
    ack_delay=0.02,
    pace_rate=500.0,
    pace_burst=50,
    request_timeout=TIMEOUT,
)
CHANNEL = "#faults"


@dataclass
class Tally:
    sent: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    received: Counter[str] = field(default_factory=Counter)
    alice_events: list[tuple[float, Event]] = field(default_factory=list)

    def of(self, kind: type[Event]) -> list[tuple[float, Event]]:
        return [(t, e) for t, e in self.alice_events if isinstance(e, kind)]


@pytest.fixture
async def proxy(server: Server) -> AsyncIterator[FaultProxy]:
    p = await FaultProxy(server.addresses[0]).start()
    yield p
    await p.stop()


async def _collect(it: AsyncIterator[Event], sink: Callable[[Event], None]) -> None:
    async for event in it:
        sink(event)


async def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(params=["exactly_once", "at_most_once"])
def delivery(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def exercise(
    server: Server,
    proxy: FaultProxy,
    fault: Callable[[], None],
    *,
    delivery: str = "exactly_once",
    reconnects: bool = True,
    per_phase: int = 10,
) -> Tally:
    """Run the before/during/after scenario around ``fault``; assert the accounting."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    host, port = server.addresses[0]
    bob = Client(host, port, nick="bob", **FAST)  # type: ignore[arg-type]
    alice = Client(*proxy.address, nick="alice", delivery=delivery, **FAST)  # type: ignore[arg-type]
    tasks: list[asyncio.Task[None]] = []
    try:
        await bob.connect(TIMEOUT)
        await bob.join(CHANNEL)
        tasks.append(
            asyncio.ensure_future(
                _collect(
                    bob.events(Message),
                    lambda e: tally.received.update([e.text]) if isinstance(e, Message) else None,
                )
            )
        )
        tasks.append(
            asyncio.ensure_future(
                _collect(alice.events(), lambda e: tally.alice_events.append((loop.time(), e)))
            )
        )
        await alice.connect(TIMEOUT)
        await alice.join(CHANNEL)

        async def phase(tag: str) -> None:
            for i in range(per_phase):
                text = f"{tag}-{i}"
                tally.sent.append(text)
                tally.deliveries.append(await alice.send(CHANNEL, text))
                await asyncio.sleep(0.01)

        await phase("before")
        await _until(
            lambda: all(d.done() for d in tally.deliveries), TIMEOUT, "confirmation of 'before'"
        )
        fault_at = loop.time()
        fault()
        await phase("during")
        if reconnects:
            await _until(lambda: len(tally.of(Connected)) >= 2, TIMEOUT, "the reconnection")
        await phase("after")
        for d in tally.deliveries:
            await d.settled(TIMEOUT)
        confirmed = {line.text for d in tally.deliveries if d.confirmed for line in d.lines}
        await _until(
            lambda: confirmed <= set(tally.received), TIMEOUT, "Bob to get every confirmed line"
        )
        await asyncio.sleep(0.2)  # let any duplicate show up

        # Exactly once, or reported.
        dupes = {t: n for t, n in tally.received.items() if n > 1}
        assert not dupes, f"delivered more than once: {dupes}"
        reported = {line.text for d in tally.deliveries if d.error for line in d.error.unsent}
        in_events = {
            line.text
            for _, e in tally.of(Disconnected)
            for line in e.unconfirmed  # type: ignore[attr-defined]
        }
        assert reported == in_events, "Delivery errors and Disconnected.unconfirmed disagree"
        missing = set(tally.sent) - set(tally.received)
        assert missing <= reported, f"lost silently: {sorted(missing - reported)}"
        assert set(tally.received) <= set(tally.sent)
        # Lines sent after the reconnect all arrive.
        assert {t for t in tally.sent if t.startswith("after-")} <= set(tally.received)
        assert alice.delivery == delivery
        if delivery == "exactly_once":
            assert set(tally.received) == set(tally.sent), "exactly once: nothing lost"
            assert all(d.exactly_once and d.msgid for d in tally.deliveries)
            assert not reported
        if reconnects:
            (first_drop, _), *_ = tally.of(Disconnected)
            assert first_drop - fault_at < FAST["ping_interval"] + FAST["ping_timeout"] + 0.5
            assert tally.of(Reconnecting)
        else:
            assert not tally.of(Disconnected)
        return tally
    finally:
        await alice.close(timeout=1.0)
        await bob.close(timeout=1.0)
        for t in tasks:
            t.cancel()


async def test_drop_mid_stream(server: Server, proxy: FaultProxy, delivery: str) -> None:
    tally = await exercise(server, proxy, proxy.drop, delivery=delivery)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    # EOF, or RST when the client wrote into the socket the peer had closed.
    assert "closed" in event.reason or "reset" in event.reason


async def test_reset(server: Server, proxy: FaultProxy, delivery: str) -> None:
    tally = await exercise(server, proxy, proxy.reset, delivery=delivery)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    assert "reset" in event.reason or "closed" in event.reason


async def test_stall_half_open(server: Server, proxy: FaultProxy, delivery: str) -> None:
    """Nothing is closed and nothing goes through: only the missing PONG reveals it."""
    tally = await exercise(server, proxy, proxy.stall, delivery=delivery)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    assert "ping timeout" in event.reason
    # The stalled ghost still holds the nick on the server: the client fell back to another.
    connected = [e for _, e in tally.of(Connected)]
    assert [e.nick for e in connected if isinstance(e, Connected)] == ["alice", "alice_"]


async def test_garbage(server: Server, proxy: FaultProxy, delivery: str) -> None:
    """A burst of unparseable bytes means a corrupt stream: reconnect for a clean one."""
    garbage = b"\x00\xff\xfe\x01garbage\r\n" + b"::: \x00\r\n" * 3 + b"\x80" * 20000 + b"\r\n"
    tally = await exercise(server, proxy, lambda: proxy.inject(garbage), delivery=delivery)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    assert "garbage" in event.reason


async def test_one_bad_line_is_tolerated(server: Server, proxy: FaultProxy) -> None:
    await exercise(server, proxy, lambda: proxy.inject(b"\x00 not irc\r\n"), reconnects=False)


async def test_small_delay_needs_no_reconnect(server: Server, proxy: FaultProxy) -> None:
    await exercise(server, proxy, lambda: proxy.slow(0.1), reconnects=False)


async def test_cut_in_the_middle_of_a_line(
    server: Server, proxy: FaultProxy, delivery: str
) -> None:
    """The server is left with half a line: it never relays it; the client writes it again."""
    tally = await exercise(server, proxy, proxy.cut, delivery=delivery)
    assert any(link.cuts for link in proxy.links)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    assert "closed" in event.reason or "reset" in event.reason or "pipe" in event.reason


async def test_delay_past_the_timeout_reconnects(
    server: Server, proxy: FaultProxy, delivery: str
) -> None:
    tally = await exercise(server, proxy, lambda: proxy.slow(1.5), delivery=delivery)
    _, event = tally.of(Disconnected)[0]
    assert isinstance(event, Disconnected)
    assert "ping timeout" in event.reason


async def test_close_as_a_connection_completes_ends_the_client(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() cancels the connecting task just as its TCP connection completes: the client
    ends, and that connection is closed, not used. (On Python 3.11, ``asyncio.wait_for``
    swallowed a cancel landing at that moment: the client connected, registered and kept
    ``close()`` waiting forever; ``relaychat send`` hung after a reset this way.)"""
    real = asyncio.open_connection
    opened: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def open_connection(
        *args: object, **kwargs: object
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        pair = await real(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(pair)
        return pair

    monkeypatch.setattr(asyncio, "open_connection", open_connection)
    client = Client(*server.addresses[0], nick="late", **FAST)  # type: ignore[arg-type]
    client.start()
    while not opened:  # step the loop one turn at a time: close() comes right after the open
        await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(client.close(timeout=1.0), TIMEOUT * 2)
    assert loop.time() - began < 1.0, "close() waited for a session it should not have begun"
    assert opened[0][1].transport.is_closing()
    assert not client.connected
