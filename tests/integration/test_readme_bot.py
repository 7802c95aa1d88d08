"""The README's bot (``docs/examples/bot.py``), as written, behind a slow proxy that resets the
connection every 2.5 s: 300 messages at 50 a second, every one reaches a reader exactly once.

This is the scenario of the issue that asked for exactly-once sending: before, a member got
151 of 300 (the rest were reported "maybe delivered"). The bot's code is run unchanged; only
its pace (the client's ``pace_rate``, from the documented ``RELAYCHAT_CLIENT_CONFIG`` file) is
raised so that 300 messages take seconds, not the library's polite 4 per second.
"""

from __future__ import annotations

import asyncio
import runpy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relaychat.client import Client, Message
from relaychat.server.listeners import Server
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT, LineClient

BOT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "bot.py"
COUNT = 300
RATE = 50.0  # messages a second
RESET_EVERY = 2.5
LATENCY = 0.04


async def test_the_readme_bot_gets_300_messages_through_resets_exactly_once(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = server.addresses[0]
    # A slow link (40 ms each way): a few lines are always on their way when it resets.
    proxy = await FaultProxy((host, port), latency=LATENCY).start()
    settings = tmp_path / "client.toml"
    settings.write_text("pace_rate = 100.0\npace_burst = 20\nbackoff_max = 0.5\n")
    monkeypatch.setenv("RELAYCHAT_HOST", proxy.address[0])
    monkeypatch.setenv("RELAYCHAT_PORT", str(proxy.address[1]))
    monkeypatch.setenv("RELAYCHAT_CLIENT_CONFIG", str(settings))
    bot: Any = runpy.run_path(str(BOT))["main"]

    plain = await LineClient.open(host, port)  # what the server relays, on the wire
    reader = Client(host, port, nick="reader", channels=("#bots",))
    wire: Counter[int] = Counter()
    got: list[int] = []
    tasks: list[asyncio.Task[Any]] = []

    async def read_wire() -> None:
        while True:
            line = await plain.readline(timeout=3600)
            if "PRIVMSG #bots :tick " in line:
                wire[int(line.rsplit(" ", 1)[1])] += 1

    async def read() -> None:
        async for event in reader.events(Message):
            assert isinstance(event, Message)
            got.append(int(event.text.split()[1]))

    async def resets() -> None:
        while True:
            await asyncio.sleep(RESET_EVERY)
            proxy.reset()

    try:
        await plain.register("plain")
        await plain.send("JOIN #bots")
        await plain.expect(" 366 plain #bots ")
        tasks += [asyncio.ensure_future(read_wire()), asyncio.ensure_future(read())]
        await reader.connect(TIMEOUT)
        tasks.append(asyncio.ensure_future(resets()))
        await asyncio.wait_for(bot(COUNT, 1 / RATE), TIMEOUT * 12)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT * 2
        while len(got) < COUNT and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    finally:
        for t in tasks:
            t.cancel()
        await reader.close(timeout=0.5)
        await plain.close()
        await proxy.stop()
    assert proxy.counts["reset"] >= 2, "the resets did not happen while the bot was posting"
    assert got == list(range(COUNT)), (
        f"{len(got)} of {COUNT}, missing {set(range(COUNT)) - set(got)}"
    )
    assert wire == Counter(range(COUNT)), "the server relayed a tick twice, or not at all"
