"""The plain-line client over real loopback sockets: lines both ways, the pause that ends a
reply without a newline, reconnecting with the IRC client's backoff, and unsent lines reported."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relaychat.client import (
    Connected,
    Disconnected,
    Event,
    GaveUp,
    NotSent,
    OutboxFull,
    Reconnecting,
)
from relaychat.client.plain import LineReceived, PlainClient
from tests.harness import TIMEOUT

FAST: dict[str, Any] = dict(backoff_initial=0.05, backoff_max=0.1, connect_timeout=1.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def next_of(events: AsyncIterator[Event], kind: type[Event]) -> Any:
    async def find() -> Event:
        async for event in events:
            if isinstance(event, kind):
                return event
        raise AssertionError(f"the events ended before a {kind.__name__}")

    return await asyncio.wait_for(find(), TIMEOUT)


async def test_lines_both_ways_and_a_reply_without_newline() -> None:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.readline())
        writer.write(b"first\nsecond w/o newline")  # the tutorial's server sends no newline
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = PlainClient("127.0.0.1", port, pause=0.1, **FAST)
    events = link.events()
    link.start()
    assert (await next_of(events, Connected)).server == f"127.0.0.1:{port}"
    delivery = await link.send("hello ünicode")
    assert await delivery.settled(TIMEOUT) is None
    first = await next_of(events, LineReceived)
    second = await next_of(events, LineReceived)
    assert (first.text, first.unterminated) == ("first", False)
    assert (second.text, second.unterminated) == ("second w/o newline", True)
    assert got == ["hello ünicode\n".encode()]
    assert await link.close(timeout=1.0) == ()
    server.close()
    await server.wait_closed()


async def test_reconnects_when_the_service_comes_back_and_sends_what_waited() -> None:
    port = free_port()
    link = PlainClient("127.0.0.1", port, **FAST)
    events = link.events()
    link.start()
    retry = await next_of(events, Reconnecting)
    assert retry.attempt == 1 and "connection refused" in retry.reason
    waiting = await link.send("said while away")
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await received.put(await reader.readline())
        writer.close()  # the service goes away again

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    await next_of(events, Connected)
    assert await asyncio.wait_for(received.get(), TIMEOUT) == b"said while away\n"
    assert await waiting.settled(TIMEOUT) is None
    gone = await next_of(events, Disconnected)
    assert gone.reason == "the service closed the connection"
    assert (await next_of(events, Reconnecting)).attempt == 1  # a fresh backoff after a link
    await link.close(timeout=1.0)
    server.close()
    await server.wait_closed()


async def test_gives_up_after_max_attempts_and_reports_unsent_lines() -> None:
    link = PlainClient("127.0.0.1", free_port(), max_attempts=1, **FAST)
    events = link.events()
    link.start()
    delivery = await link.send("never\nsent")
    gave_up = await next_of(events, GaveUp)
    assert "(after 2 attempts)" in gave_up.reason
    assert [line.text for line in gave_up.unsent] == ["never", "sent"]
    error = await delivery.settled(TIMEOUT)
    assert isinstance(error, NotSent) and not error.maybe_delivered
    with pytest.raises(Exception, match="gave up"):
        await link.send("more")
    await link.close()


async def test_the_outbox_is_bounded_and_close_returns_what_was_never_sent() -> None:
    link = PlainClient("127.0.0.1", free_port(), outbox_size=2, **FAST)
    link.start()
    first = await link.send("one")
    with pytest.raises(OutboxFull) as refused:
        await link.send("two\nthree")  # all or nothing
    assert [line.text for line in refused.value.unsent] == ["two", "three"]
    await link.send("two")
    unsent = await link.close(timeout=0.2)
    assert [line.text for line in unsent] == ["one", "two"]
    error = await first.settled(TIMEOUT)
    assert error is not None and error.reason == "client closed"


async def test_every_line_is_delivered_unconfirmed_or_unsent_when_a_stuck_service_drops() -> None:
    # The service never reads: lines wait in the outbox (flow control), a batch in the buffers.
    peers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = PlainClient("127.0.0.1", port, max_attempts=0, **FAST)
    events = link.events()
    await link.connect(TIMEOUT)
    line = "x" * 50_000
    deliveries = [await link.send(f"{i} {line}") for i in range(200)]  # 10 MB
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not peers or sum(d.done() for d in deliveries) == 0:  # the kernel took some
        assert loop.time() < deadline, "nothing was written"
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert not all(d.done() for d in deliveries), "the outbox should still hold lines"
    peers[0].transport.abort()  # the service goes away with our bytes unread
    gone = await next_of(events, Disconnected)
    gave_up = await next_of(events, GaveUp)
    errors = [await d.settled(TIMEOUT) for d in deliveries]
    delivered = [i for i, e in enumerate(errors) if e is None]
    maybe = [i for i, e in enumerate(errors) if e is not None and e.maybe_delivered]
    unsent = [i for i, e in enumerate(errors) if e is not None and not e.maybe_delivered]
    assert delivered and maybe and unsent
    assert delivered + maybe + unsent == list(range(200))  # each line once, in order
    assert [int(o.text.split()[0]) for o in gone.unconfirmed] == maybe
    assert [int(o.text.split()[0]) for o in gave_up.unsent] == unsent
    await link.close()
    server.close()
    await server.wait_closed()
