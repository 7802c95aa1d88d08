"""relaychat.client against the real server over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from relaychat.client import (
    Client,
    ClientClosed,
    Connected,
    Disconnected,
    Event,
    GaveUp,
    GaveUpError,
    Join,
    Message,
    OutboxFull,
    Reconnecting,
    RequestFailed,
)
from relaychat.client.sync import send_message
from relaychat.server.listeners import Server
from tests.harness import TIMEOUT

FAST: dict[str, Any] = dict(
    ping_interval=0.5,
    ping_timeout=0.5,
    backoff_initial=0.05,
    backoff_max=0.1,
    connect_timeout=1.0,
    ack_delay=0.02,
    pace_rate=200.0,
    pace_burst=20,
    request_timeout=TIMEOUT,
)


async def _until(cond: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def _record(client: Client, *types: type[Event]) -> list[Event]:
    seen: list[Event] = []

    @client.on(*types)
    def keep(event: Event) -> None:
        seen.append(event)

    return seen


async def test_two_clients_chat(server: Server) -> None:
    host, port = server.addresses[0]
    async with (
        Client(host, port, nick="alice", **FAST) as alice,
        Client(host, port, nick="bob", **FAST) as bob,
    ):
        heard = _record(bob, Message, Join)
        answers: list[Message] = []

        @alice.on(Message)
        async def answer(event: Message) -> None:
            answers.append(event)
            await alice.send(event.reply_to, "hi " + event.sender)

        await alice.join("#chat")
        await bob.join("#chat")
        assert alice.channels == ["#chat"]
        await bob.send("#chat", "hello alice", confirm=True)
        await _until(lambda: any(isinstance(e, Message) for e in heard), "alice's answer")
        (reply,) = [e for e in heard if isinstance(e, Message)]
        assert (reply.sender, reply.target, reply.text) == ("alice", "#chat", "hi bob")
        assert answers[0].text == "hello alice" and answers[0].reply_to == "#chat"
        # A private message: reply_to is the sender.
        await bob.send("alice", "psst", confirm=True)
        await _until(lambda: len(answers) == 2, "the private message")
        assert answers[1].target == "alice" and answers[1].reply_to == "bob"


async def test_long_text_is_split_and_arrives_whole(server: Server) -> None:
    host, port = server.addresses[0]
    text = "Grüße, мир! 🎉 " * 200  # multi-byte characters all along
    async with (
        Client(host, port, nick="alice", **FAST) as alice,
        Client(host, port, nick="bob", **FAST) as bob,
    ):
        heard = _record(bob, Message)
        await alice.join("#c")
        await bob.join("#c")
        delivery = await alice.send("#c", text, confirm=True)
        assert len(delivery.lines) > 5
        await _until(lambda: len(heard) == len(delivery.lines), "every piece")
        pieces = [e.text for e in heard if isinstance(e, Message)]
        assert " ".join(pieces).rstrip() == text.rstrip()


async def test_nick_fallback(server: Server) -> None:
    host, port = server.addresses[0]
    # Entered in order: each one finds the nicks of the ones before it taken.
    async with (
        Client(host, port, nick="same", **FAST) as first,
        Client(host, port, nick="same", **FAST) as second,
        Client(host, port, nick="same", **FAST) as third,
    ):
        assert [first.nick, second.nick, third.nick] == ["same", "same_", "same__"]


async def test_requests_pair_replies(server: Server) -> None:
    host, port = server.addresses[0]
    async with (
        Client(host, port, nick="alice", **FAST) as alice,
        Client(host, port, nick="bob", **FAST),
    ):
        whois, missing, names = await asyncio.gather(
            alice.request("WHOIS", "bob"),
            alice.request("WHOIS", "nobody"),
            alice.request("NAMES", "#none"),
        )
        assert whois.ok and whois.numerics()[0] == "311" and whois.numerics()[-1] == "318"
        assert not missing.ok and missing.numerics() == ["401", "318"]
        assert names.numerics() == ["366"]
        with pytest.raises(RequestFailed) as info:
            await alice.join("nochan")
        assert info.value.reply.numerics() == ["403"]
        assert alice.channels == []


async def test_rejoin_after_server_restart(make_server: Callable[..., Any]) -> None:
    """The server goes away and comes back on the same port: both clients reconnect and rejoin,
    and what Alice sent while it was down is delivered afterwards."""
    srv: Server = await make_server()
    host, port = srv.addresses[0]
    # Bob retries fast; Alice waits about a second, so Bob is back in the channel first.
    slow = dict(FAST, backoff_initial=1.0, backoff_max=1.0)
    async with (
        Client(host, port, nick="alice", rand=lambda: 0.99, **slow) as alice,
        Client(host, port, nick="bob", **FAST) as bob,
    ):
        alice_events = _record(alice, Connected, Disconnected, Reconnecting)
        bob_events = _record(bob, Connected, Join, Message)
        await alice.join("#c")
        await bob.join("#c")
        await srv.stop()
        await _until(lambda: not alice.connected and not bob.connected, "both to notice")
        queued = [await alice.send("#c", f"while down {i}") for i in range(3)]
        await make_server(port=port)
        await _until(lambda: bob.connected and bob.channels == ["#c"], "Bob's rejoin")
        await asyncio.gather(*(d.wait(TIMEOUT) for d in queued))
        await _until(
            lambda: sum(isinstance(e, Message) for e in bob_events) == 3, "the queued lines"
        )
        assert [e.text for e in bob_events if isinstance(e, Message)] == [
            f"while down {i}" for i in range(3)
        ]
        assert alice.channels == ["#c"]
        disconnected = [e for e in alice_events if isinstance(e, Disconnected)]
        assert "Server shutting down" in disconnected[0].reason
        assert any(isinstance(e, Reconnecting) for e in alice_events)
        assert sum(isinstance(e, Connected) for e in alice_events) == 1  # recorded after start


async def test_tls_failure_gives_up_with_unsent(server: Server) -> None:
    host, port = server.addresses[0]
    client = Client(
        host, port, nick="tls", tls=True, max_attempts=1, **dict(FAST, connect_timeout=0.3)
    )
    events = client.events()
    with pytest.raises(GaveUpError) as info:
        await client.connect(TIMEOUT)
    assert "TLS" in info.value.reason or "timed out" in info.value.reason
    seen = [e async for e in events]
    assert isinstance(seen[0], Reconnecting)
    assert isinstance(seen[-1], GaveUp)
    await client.close()


async def test_outbox_reports_what_was_never_sent(server: Server) -> None:
    host, port = server.addresses[0]
    await server.stop()  # nobody there: lines wait in the outbox until the client gives up
    client = Client(host, port, nick="lonely", max_attempts=2, outbox_size=3, **FAST)
    client.start()
    deliveries = [await client.send("#c", f"line {i}") for i in range(3)]
    with pytest.raises(OutboxFull) as full:
        await client.send("#c", "one too many")
    assert [line.text for line in full.value.unsent] == ["one too many"]
    with pytest.raises(GaveUpError) as gave_up:
        await client.connect(TIMEOUT)
    assert [line.text for line in gave_up.value.unsent] == ["line 0", "line 1", "line 2"]
    for d in deliveries:
        assert d.done() and d.error is not None and not d.error.maybe_delivered
    await client.close()


async def test_pacing_keeps_a_chatty_bot_under_the_flood_limit(
    make_server: Callable[..., Any],
) -> None:
    """The same 40-line burst: paced, all of it arrives; unpaced, the server drops the client."""
    limits = {"flood_rate": 50.0, "flood_burst": 5, "recvq": 1024}
    srv: Server = await make_server(limits=limits)
    host, port = srv.addresses[0]
    burst = "\n".join(f"chatty line number {i:03d} " + "x" * 30 for i in range(40))
    paced = dict(FAST, pace_rate=45.0, pace_burst=5, reconnect=False)
    async with (
        Client(host, port, nick="bot", **paced) as bot,
        Client(host, port, nick="reader", **FAST) as reader,
    ):
        heard = _record(reader, Message)
        await bot.join("#c")
        await reader.join("#c")
        delivery = await bot.send("#c", burst)
        assert len(delivery.lines) == 40
        await delivery.wait(TIMEOUT)
        await _until(lambda: len(heard) == 40, "every line")
        assert bot.connected
    unpaced = dict(FAST, pace_rate=0.0, reconnect=False)
    async with Client(host, port, nick="rude", **unpaced) as rude:
        dropped = _record(rude, Disconnected)
        await rude.join("#c")
        delivery = await rude.send("#c", burst)
        await _until(lambda: bool(dropped), "the flood disconnect")
        assert "Excess Flood" in dropped[0].reason  # type: ignore[attr-defined]
        assert await delivery.settled(TIMEOUT) is not None


async def test_sync_send_message(server: Server) -> None:
    host, port = server.addresses[0]
    async with Client(host, port, nick="reader", **FAST) as reader:
        heard = _record(reader, Message)
        await reader.join("#ops")
        await asyncio.to_thread(
            send_message, host, port, "#ops", "deployed", nick="script", timeout=TIMEOUT
        )
        await _until(lambda: len(heard) == 1, "the script's line")
        assert heard[0].text == "deployed"  # type: ignore[attr-defined]


async def test_close_sends_what_is_queued_first(server: Server) -> None:
    host, port = server.addresses[0]
    async with Client(host, port, nick="reader", **FAST) as reader:
        heard = _record(reader, Message)
        await reader.join("#c")
        writer = Client(host, port, nick="writer", **dict(FAST, pace_rate=20.0, pace_burst=2))
        await writer.connect(TIMEOUT)
        await writer.join("#c")
        deliveries = [await writer.send("#c", f"last words {i}") for i in range(6)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await writer.close(timeout=TIMEOUT) == ()
        assert loop.time() - started < 2.0  # returns once confirmed, not at the timeout
        assert all(d.confirmed for d in deliveries)
        await _until(lambda: len(heard) == 6, "every queued line")
        with pytest.raises(ClientClosed):
            await writer.send("#c", "too late")


async def test_lag_is_measured_from_the_delivery_pings(server: Server) -> None:
    host, port = server.addresses[0]
    async with Client(host, port, nick="lagger", **FAST) as client:
        assert client.lag is None or client.lag >= 0
        await client.join("#lag")
        delivery = await client.send("#lag", "measure me")
        await delivery  # confirmed by a PING the server answered
        assert client.lag is not None and 0 <= client.lag < TIMEOUT
