"""Against a server that cannot deduplicate, the weaker guarantee holds and is the one reported.

One scenario, on three servers: relaychat, relaychat with ``idempotency.enabled = false``, and
ngIRCd (no IRCv3 tags at all). Alice (``relaychat.client``) posts through a fault proxy; the
proxy goes deaf (Alice's lines reach the server and are relayed, nothing comes back), then
resets the link. So two lines are *relayed but unconfirmed* when the link drops, the one case
where the guarantees differ:

- ``exactly_once`` (relaychat): written again, recognised by the server, relayed once;
- ``at_least_once``: written again and relayed again: a plain reader sees them twice; a reader
  built on the library drops the copy by its key where the server relays tags (relaychat);
  the Deliveries say "confirmed, maybe twice";
- ``at_most_once`` (``auto`` without the capability): never written again, reported as maybe
  delivered; they arrived once.

``delivery="exactly_once"`` against a server without the capability refuses to start.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from relaychat.client import Client, Delivery, GaveUpError, Message
from relaychat.config import Idempotency
from relaychat.server.listeners import Server
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT, LineClient, free_config
from tests.ngircd import NGIRCD, Ngircd

FAST = dict(
    ping_interval=1.0,
    ping_timeout=1.0,
    ack_delay=0.05,
    backoff_initial=0.05,
    backoff_max=0.2,
    connect_timeout=2.0,
    registration_timeout=3.0,
    request_timeout=TIMEOUT,
)
CHANNEL = "#fallback"


@dataclass
class Seen:
    plain: Counter[str] = field(default_factory=Counter)  # a raw IRC reader
    library: Counter[str] = field(default_factory=Counter)  # a relaychat.client reader
    deliveries: list[Delivery] = field(default_factory=list)
    delivery: str | None = None


async def _until(cond: object, what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def relayed_then_dropped(upstream: tuple[str, int], delivery: str) -> Seen:
    """Alice's lines "one" and "two" reach the server, their answers are lost, the link drops."""
    seen = Seen()
    proxy = await FaultProxy(upstream).start()
    plain = await LineClient.open(*upstream)
    reader = Client(*upstream, nick="libreader", channels=(CHANNEL,), **FAST)  # type: ignore[arg-type]
    alice = Client(*proxy.address, nick="alice", delivery=delivery, **FAST)  # type: ignore[arg-type]
    tasks: list[asyncio.Task[None]] = []

    async def read_plain() -> None:
        while True:
            line = await plain.readline(timeout=3600)
            if f"PRIVMSG {CHANNEL} :" in line:
                seen.plain[line.rsplit(":", 1)[1]] += 1

    async def read_library() -> None:
        async for event in reader.events(Message):
            assert isinstance(event, Message)
            seen.library[event.text] += 1

    try:
        await plain.register("plain")
        await plain.send(f"JOIN {CHANNEL}")
        await plain.expect(f" 366 plain {CHANNEL} ")
        tasks.append(asyncio.ensure_future(read_plain()))
        tasks.append(asyncio.ensure_future(read_library()))
        await reader.connect(TIMEOUT)
        await _until(lambda: reader.channels == [CHANNEL], "the library reader to join")
        await alice.connect(TIMEOUT)
        await alice.join(CHANNEL)
        seen.delivery = alice.delivery
        first = await alice.send(CHANNEL, "zero")
        await first.settled(TIMEOUT)
        seen.deliveries.append(first)
        proxy.deafen()
        for text in ("one", "two"):
            seen.deliveries.append(await alice.send(CHANNEL, text))
        await _until(lambda: seen.plain["two"] >= 1, "the server to relay the lines")
        proxy.reset()
        for d in seen.deliveries:
            await d.settled(TIMEOUT * 2)
        last = await alice.send(CHANNEL, "three")  # the link works again
        await last.settled(TIMEOUT)
        seen.deliveries.append(last)
        await _until(lambda: seen.plain["three"] and seen.library["three"], "the last line")
        await asyncio.sleep(0.3)  # room for a late copy
        return seen
    finally:
        for t in tasks:
            t.cancel()
        await alice.close(timeout=0.5)
        await reader.close(timeout=0.5)
        await plain.close()
        await proxy.stop()


@pytest.fixture
async def relaychat(make_server: object) -> AsyncIterator[tuple[str, int]]:
    srv: Server = await make_server()  # type: ignore[operator]
    yield srv.addresses[0]


@pytest.fixture
async def relaychat_without_keys(make_server: object) -> AsyncIterator[tuple[str, int]]:
    config = free_config(idempotency=Idempotency(enabled=False))
    srv: Server = await make_server(config)  # type: ignore[operator]
    yield srv.addresses[0]


@pytest.fixture
async def ngircd() -> AsyncIterator[tuple[str, int]]:
    if not NGIRCD:
        pytest.skip("ngircd is not installed (apt-get install ngircd; .ci/run does)")
    server = await Ngircd.start()
    try:
        yield server.host, server.port
    finally:
        await server.stop()


def texts(ds: list[Delivery]) -> list[str]:
    return [line.text for d in ds for line in d.lines]


# --- relaychat: the server recognises the repeat ------------------------------------------------


async def test_exactly_once_against_relaychat(relaychat: tuple[str, int]) -> None:
    seen = await relayed_then_dropped(relaychat, "auto")
    assert seen.delivery == "exactly_once"
    assert seen.plain == Counter({"zero": 1, "one": 1, "two": 1, "three": 1})
    assert seen.library == seen.plain
    assert all(d.exactly_once and d.msgid for d in seen.deliveries)


# --- relaychat with the capability off --------------------------------------------------------


async def test_auto_falls_back_to_at_most_once(relaychat_without_keys: tuple[str, int]) -> None:
    seen = await relayed_then_dropped(relaychat_without_keys, "auto")
    assert seen.delivery == "at_most_once"
    assert seen.plain == Counter({"zero": 1, "one": 1, "two": 1, "three": 1})
    lost = [d for d in seen.deliveries if not d.confirmed]
    assert texts(lost) == ["one", "two"]  # reported: arrived, but nobody could tell
    assert all(d.error is not None and d.error.maybe_delivered for d in lost)


async def test_at_least_once_repeats_and_says_so(relaychat_without_keys: tuple[str, int]) -> None:
    seen = await relayed_then_dropped(relaychat_without_keys, "at_least_once")
    assert seen.delivery == "at_least_once"
    assert seen.plain == Counter({"zero": 1, "one": 2, "two": 2, "three": 1})
    # The library's reader drops the second copy by its idempotency key.
    assert seen.library == Counter({"zero": 1, "one": 1, "two": 1, "three": 1})
    assert all(d.confirmed for d in seen.deliveries)
    twice = [line.text for d in seen.deliveries for line in d.maybe_duplicated]
    assert twice == ["one", "two"]
    assert [d.exactly_once for d in seen.deliveries] == [True, False, False, True]


async def test_exactly_once_is_refused_without_the_capability(
    relaychat_without_keys: tuple[str, int],
) -> None:
    client = Client(*relaychat_without_keys, nick="strict", delivery="exactly_once", **FAST)  # type: ignore[arg-type]
    with pytest.raises(GaveUpError, match=r"relaychat\.dev/idempotency"):
        await client.connect(TIMEOUT)
    await client.close()


# --- ngIRCd: no IRCv3 tags at all -----------------------------------------------------------


async def test_ngircd_auto_is_at_most_once(ngircd: tuple[str, int]) -> None:
    seen = await relayed_then_dropped(ngircd, "auto")
    assert seen.delivery == "at_most_once"
    assert seen.plain == Counter({"zero": 1, "one": 1, "two": 1, "three": 1})
    lost = [d for d in seen.deliveries if not d.confirmed]
    assert texts(lost) == ["one", "two"]
    assert all(d.error is not None and d.error.maybe_delivered for d in lost)


async def test_ngircd_at_least_once(ngircd: tuple[str, int]) -> None:
    seen = await relayed_then_dropped(ngircd, "at_least_once")
    assert seen.delivery == "at_least_once"
    # Every line arrived; those written twice arrived twice, and only they.
    assert seen.plain == Counter({"zero": 1, "one": 2, "two": 2, "three": 1})
    assert seen.library == seen.plain  # no tags: no key for a reader to recognise
    twice = [line.text for d in seen.deliveries for line in d.maybe_duplicated]
    assert twice == ["one", "two"] and all(d.confirmed for d in seen.deliveries)


async def test_ngircd_refuses_exactly_once(ngircd: tuple[str, int]) -> None:
    client = Client(*ngircd, nick="strict", delivery="exactly_once", **FAST)  # type: ignore[arg-type]
    with pytest.raises(GaveUpError, match="exactly-once"):
        await client.connect(TIMEOUT)
    await client.close()
