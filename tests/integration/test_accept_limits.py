"""Issue 14: connections refused at accept, real sockets.

- The rate of new connections per address group (``throttle.connect_*``): a burst of 200
  connections from one address gets the limit and a clear ``ERROR`` while another address
  (127.0.0.2: loopback aliases work on Linux) connects normally; the TLS port refuses before the
  handshake; a reload takes new values.
- A D-lined address is refused on the TLS port at accept, without a handshake.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from pathlib import Path

import pytest
import trustme

from relaychat.config import Throttle
from relaychat.server.bans import Ban
from relaychat.server.listeners import Server
from relaychat.server.reload import ConfigSource
from tests.harness import TIMEOUT, LineClient
from tests.integration.tls_support import client_context, tls_config

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs the 127.0.0.0/8 loopback aliases of Linux"
)

REFUSAL = b"ERROR :Too many connections from your host"
Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def first_line(reader: asyncio.StreamReader) -> bytes:
    """The first line the server sends (``b""``: closed without one)."""
    try:
        return await reader.readline()
    except ConnectionError:
        return b""


async def burst(host: str, port: int, source: str, count: int) -> list[Pair]:
    """Open ``count`` connections from ``source`` as fast as possible (none registers)."""
    return [await asyncio.open_connection(host, port, local_addr=(source, 0)) for _ in range(count)]


async def sort_out(server: Server, group: str, pairs: list[Pair]) -> tuple[int, list[bytes]]:
    """Wait until every connection of ``pairs`` is either held by the server or refused.

    Returns:
        How many the server holds from ``group``, and the first line of each refused one.
    """
    reads = [asyncio.ensure_future(first_line(r)) for r, _ in pairs]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4 * TIMEOUT
    try:
        while True:
            held = server.core.per_ip.get(group, 0)
            refused = [t.result() for t in reads if t.done()]
            if held + len(refused) == len(pairs):
                return held, refused
            assert loop.time() < deadline, (held, len(refused))
            await asyncio.sleep(0.02)
    finally:
        for t in reads:
            t.cancel()


def close_all(pairs: list[Pair]) -> None:
    for _, w in pairs:
        w.close()


async def test_a_burst_from_one_address_is_limited_while_another_connects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relaychat")
    conf = tmp_path / "relaychat.toml"
    defaults = Throttle()
    conf.write_text(
        f"[throttle]\nconnect_burst = {defaults.connect_burst}\n"
        f"connect_per_minute = {defaults.connect_per_minute}\n"
    )
    overrides = {"host": "127.0.0.1", "port": 0, "plain_port": 0, "http.port": 0}
    source = ConfigSource(file=str(conf), overrides={**overrides, "data_dir": str(tmp_path)})
    server = Server(source.load(), source=source)
    await server.start()
    host, port = server.addresses[0]
    attack: list[Pair] = []
    try:
        attack = await burst(host, port, "127.0.0.1", 200)
        held, refused = await sort_out(server, "127.0.0.1", attack)
        # The burst, and perhaps a token or two earned (one a second) while it ran.
        assert defaults.connect_burst <= held <= defaults.connect_burst + 10, held
        assert len(refused) == 200 - held
        assert all(line.startswith(REFUSAL) for line in refused), set(refused)
        assert b"try again in 1 seconds" in refused[-1]
        # One line in the log for the whole burst (rate-limited), not 170.
        lines = [r for r in caplog.records if "connects faster" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]

        # Another address is not affected.
        other = await LineClient.open(host, port, local_addr=("127.0.0.2", 0))
        await other.register("other")
        await other.close()

        # A reload takes new values: a burst of 5 for a fresh address...
        conf.write_text("[throttle]\nconnect_burst = 5\nconnect_per_minute = 60\n")
        assert server.ops.reloader is not None
        assert server.ops.reloader.reload("test") == (str(conf), None)
        await server.ops.reloader.pending
        assert server.core.throttles.connect.burst == 5.0
        fresh = await burst(host, port, "127.0.0.3", 20)
        attack += fresh
        held3, refused3 = await sort_out(server, "127.0.0.3", fresh)
        assert 5 <= held3 <= 7 and all(line.startswith(REFUSAL) for line in refused3)

        # ...and no limit at all: the address refused before now connects.
        conf.write_text("[throttle]\nconnect_per_minute = 0\n")
        assert server.ops.reloader.reload("test") == (str(conf), None)
        await server.ops.reloader.pending
        again = await LineClient.open(host, port, local_addr=("127.0.0.1", 0))
        await again.register("again")
        await again.close()
    finally:
        close_all(attack)
        await server.stop()


async def test_the_tls_port_refuses_before_the_handshake(tmp_path: Path) -> None:
    """Too fast on the TLS port: the socket is closed at once, no handshake is started."""
    config = tls_config(
        trustme.CA(),
        tmp_path,
        throttle=Throttle(connect_burst=3, connect_per_minute=1.0),
    )
    server = Server(config)
    await server.start()
    pairs: list[Pair] = []
    try:
        tls_port = server.addresses_of("tls")[0][1]
        pairs = await burst("127.0.0.1", tls_port, "127.0.0.1", 6)
        held, refused = await sort_out(server, "127.0.0.1", pairs)
        assert held == 3 and refused == [b""] * 3  # closed without a byte: nothing to read
        assert server.handshaking == 3  # the held ones wait for their handshake
    finally:
        close_all(pairs)
        await server.stop()


async def test_a_dlined_address_is_refused_before_the_tls_handshake(tmp_path: Path) -> None:
    ca = trustme.CA()
    server = Server(tls_config(ca, tmp_path))
    await server.start()
    pairs: list[Pair] = []
    try:
        tls_port = server.addresses_of("tls")[0][1]
        server.core.bans.add(Ban("D", "127.0.0.2/32", "range", "test", time.time()))
        # A client that never starts its handshake is closed at once, with nothing sent: the
        # server cannot have handshaken with it.
        pairs = await burst("127.0.0.1", tls_port, "127.0.0.2", 3)
        held, refused = await sort_out(server, "127.0.0.2", pairs)
        assert held == 0 and refused == [b""] * 3
        assert server.handshaking == 0
        # A real TLS client from there fails its handshake; from another address it works.
        context = client_context(ca)
        with pytest.raises((ConnectionError, ssl.SSLError)):
            await asyncio.open_connection(
                "127.0.0.1", tls_port, ssl=context, local_addr=("127.0.0.2", 0)
            )
        fine = await LineClient.open("127.0.0.1", tls_port, ssl=context)
        await fine.register("fine")
        await fine.close()
    finally:
        close_all(pairs)
        await server.stop()


async def test_the_client_library_waits_as_long_as_the_refusal_says() -> None:
    """relaychat.client refused for the connection rate waits the "try again in N seconds" it
    was told (not its own much shorter backoff), then gets in."""
    from relaychat.client import Client, Reconnecting
    from tests.harness import free_config

    server = Server(free_config(throttle={"connect_burst": 1, "connect_per_minute": 30.0}))
    await server.start()
    host, port = server.addresses[0]
    first = await asyncio.open_connection(host, port)  # takes the one token: next in 2 s
    bot = Client(host, port, nick="waiter", backoff_initial=0.05, backoff_max=0.2)
    waits: list[Reconnecting] = []

    async def collect() -> None:
        async for event in bot.events(Reconnecting):
            assert isinstance(event, Reconnecting)
            waits.append(event)

    collector = asyncio.ensure_future(collect())
    await asyncio.sleep(0)
    try:
        await bot.connect(4 * TIMEOUT)
        assert waits, "the first attempt was not refused: nothing was tested"
        assert "Too many connections" in waits[0].reason
        assert waits[0].delay >= 1.0, waits  # the backoff alone would be at most 0.2 s
        assert len(waits) <= 2, waits  # it did not hammer the server meanwhile
    finally:
        collector.cancel()
        await bot.close(timeout=1.0)
        close_all([first])
        await server.stop()
