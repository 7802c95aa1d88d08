"""What callers hold: Delivery outcomes and bounded event streams."""

from __future__ import annotations

import pytest

from relaychat.client import Connected, Message, NotSent, Rejected, SlowConsumer
from relaychat.client.delivery import END, Delivery, EventStream
from relaychat.client.events import Event, Outgoing


def _lines(n: int) -> tuple[Outgoing, ...]:
    return tuple(Outgoing(i, "PRIVMSG", "#c", f"part {i}") for i in range(n))


async def test_confirmed_when_every_line_is() -> None:
    lines = _lines(2)
    d = Delivery(lines)
    d._settle(lines[0])
    assert not d.done()
    d._settle(lines[1])
    assert d.confirmed and await d.settled(1.0) is None
    await d  # does not raise


async def test_failure_lists_exactly_the_lines_lost() -> None:
    lines = _lines(3)
    d = Delivery(lines)
    d._settle(lines[0])
    d._settle(lines[2], "connection reset", maybe=True)
    d._settle(lines[1])
    err = await d.settled(1.0)
    assert isinstance(err, NotSent) and err.unsent == (lines[2],) and err.maybe_delivered
    with pytest.raises(NotSent):
        await d


async def test_rejection() -> None:
    (line,) = _lines(1)
    d = Delivery((line,))
    d._rejection = ("404", "Cannot send to channel")
    d._settle(line, "404 Cannot send to channel")
    err = d.error
    assert isinstance(err, Rejected) and err.code == "404"


async def test_event_stream_filters_and_ends() -> None:
    owner: list[EventStream] = []
    stream = EventStream(owner, 10, (Message,))
    owner.append(stream)
    stream.put(Connected("me"))
    stream.put(Message("amy", "#c", "hi"))
    stream.put(END)
    got: list[Event] = [e async for e in stream]
    assert got == [Message("amy", "#c", "hi")]
    assert owner == []


async def test_a_slow_consumer_is_told() -> None:
    owner: list[EventStream] = []
    stream = EventStream(owner, 2, (Event,))
    for i in range(5):
        stream.put(Connected(f"n{i}"))
    assert await stream.__anext__() == Connected("n0")
    assert await stream.__anext__() == Connected("n1")
    with pytest.raises(SlowConsumer):
        await stream.__anext__()
