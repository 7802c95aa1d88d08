"""``limits.flood_action`` (issue 14: Ergo-style fakelag instead of disconnect), real sockets.

The same flood (300 lines at once, more than ``limits.recvq`` bytes) meets each action:
``throttle`` (the default) delays the lines and drops the client past ``recvq``; ``fakelag``
delays them and never drops it; ``disconnect`` drops it as soon as it passes the burst.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from relaychat.config import Oper, load_config
from relaychat.errors import ConfigError
from relaychat.passwords import hash_password
from relaychat.server.listeners import Server
from relaychat.server.reload import ConfigSource
from tests.harness import TIMEOUT, LineClient

MakeServer = Callable[..., Any]
OPER_HASH = hash_password("the-right-one")
LINES = 300
RATE = 200.0
BURST = 5


async def connect(srv: Server, nick: str) -> LineClient:
    host, port = srv.addresses[0]
    client = await LineClient.open(host, port)
    await client.register(nick)
    return client


def flood() -> bytes:
    """``LINES`` private messages at once: about 14 KB, past a 2 KiB recvq."""
    return b"".join(b"PRIVMSG polite :spam %d spam spam spam spam\r\n" % i for i in range(LINES))


async def flood_server(make_server: MakeServer, action: str) -> Server:
    server: Server = await make_server(
        limits={"flood_rate": RATE, "flood_burst": BURST, "recvq": 2048, "flood_action": action}
    )
    return server


async def test_throttle_drops_past_the_recvq(make_server: MakeServer) -> None:
    srv = await flood_server(make_server, "throttle")
    polite = await connect(srv, "polite")
    flooder = await connect(srv, "flooder")
    flooder.writer.write(flood())
    lines = await flooder.closed()
    assert any("Excess Flood" in line for line in lines), lines[-3:]
    await polite.send("PING :alive")
    await polite.expect("alive")


async def test_fakelag_delays_every_line_and_never_drops(make_server: MakeServer) -> None:
    srv = await flood_server(make_server, "fakelag")
    polite = await connect(srv, "polite")
    flooder = await connect(srv, "flooder")
    started = time.monotonic()
    flooder.writer.write(flood())
    for i in range(LINES):  # every line relayed, in order, none dropped
        await polite.expect(rf"PRIVMSG polite :spam {i} ", timeout=4 * TIMEOUT)
    elapsed = time.monotonic() - started
    # Past the burst, no faster than the rate (it cannot be quicker; slower is the machine).
    assert elapsed >= 0.9 * (LINES - BURST) / RATE, elapsed
    await flooder.send("PING :still-here")
    await flooder.expect("still-here")
    # While it was lagged, another client was answered at once.
    await polite.send("PING :alive")
    await polite.expect("alive")


async def test_disconnect_drops_past_the_burst(make_server: MakeServer) -> None:
    srv = await flood_server(make_server, "disconnect")
    polite = await connect(srv, "polite")
    flooder = await connect(srv, "flooder")
    # The burst itself is fine (once the bucket is full again after registering).
    await asyncio.sleep(BURST / RATE + 0.05)
    flooder.writer.write(b"".join(b"PING :%d\r\n" % i for i in range(BURST)))
    for i in range(BURST):
        await flooder.expect(rf"PONG \S+ :?{i}$")
    await asyncio.sleep(BURST / RATE + 0.05)  # the bucket refills (200 lines/s)
    flooder.writer.write(b"".join(b"PING :%d\r\n" % i for i in range(3 * BURST)))
    lines = await flooder.closed()
    assert any("Excess Flood" in line for line in lines), lines[-3:]
    # It was dropped as it passed the burst, not after a recvq's worth.
    assert sum(" PONG " in line for line in lines) <= BURST + 1, lines
    await polite.send("PING :alive")
    await polite.expect("alive")


async def test_a_reload_changes_the_action_of_connected_clients(make_server: MakeServer) -> None:
    srv = await flood_server(make_server, "fakelag")
    polite = await connect(srv, "polite")
    flooder = await connect(srv, "flooder")
    new = replace(srv.config, limits=replace(srv.config.limits, flood_action="throttle"))
    assert srv.ops.reloader is not None
    srv.ops.reloader.source = ConfigSource(fixed=new)
    assert srv.ops.reloader.reload("test")[1] is None
    flooder.writer.write(flood())
    lines = await flooder.closed()
    assert any("Excess Flood" in line for line in lines), lines[-3:]
    await polite.close()


def test_a_wrong_action_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"limits\.flood_action.*'drop' is not"):
        load_config(environ={}, overrides={"limits.flood_action": "drop"})


async def pending_flood(make_server: MakeServer, action: str) -> list[str]:
    """A command held pending for a second (an OPER refused after the tarpit), and meanwhile
    40 long lines, past ``recvq``; what the client reads until the last answer or the end."""
    server: Server = await make_server(
        limits={"flood_rate": 1000.0, "flood_burst": 50, "recvq": 2048, "flood_action": action},
        throttle={"oper_failures": 1, "tarpit": 1.0},
        opers=(Oper("admin", OPER_HASH),),
    )
    c = await connect(server, "pending")
    await c.send("OPER admin wrong")  # a failure: locked out of OPER
    await c.expect(r" 464 pending :Password incorrect$")
    lines = [f"PING :{i}-" + "x" * 300 for i in range(40)]
    c.writer.write(("OPER admin wrong\r\n" + "\r\n".join(lines) + "\r\n").encode())
    seen: list[str] = []
    try:
        while True:
            seen.append(await c.readline(timeout=4 * TIMEOUT))
            if seen[-1].startswith("ERROR") or re.search(r" PONG \S+ :?39-x", seen[-1]):
                return seen
    except ConnectionError:
        return seen


async def test_throttle_drops_a_flood_held_behind_a_pending_command(
    make_server: MakeServer,
) -> None:
    seen = await pending_flood(make_server, "throttle")
    assert any("Excess Flood" in line for line in seen), seen[-3:]


async def test_fakelag_keeps_a_flood_behind_a_pending_command_in_order(
    make_server: MakeServer,
) -> None:
    seen = await pending_flood(make_server, "fakelag")
    assert not any(line.startswith("ERROR") for line in seen), seen[-3:]
    assert "too many failed attempts" in seen[0], seen[:2]  # the OPER's answer first
    pongs = [m.group(1) for line in seen if (m := re.search(r" PONG \S+ :?(\d+)-x", line))]
    assert pongs == [str(i) for i in range(40)]
