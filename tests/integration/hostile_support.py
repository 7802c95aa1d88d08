"""Helpers for the hostile-user tests (not itself a test module): an idle *bystander* that
measures its PING round trips while an *attacker* works inside the flood limits.

The thresholds the tests use are generous (a loaded 2-core CI box running two test workers):
the defects they catch stalled the bystander for hundreds of milliseconds to seconds on every
attack line, the fixed server answers in about a millisecond.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import statistics
from collections.abc import AsyncIterator

from tests.harness import TIMEOUT, LineClient

__all__ = ["Bystander", "Drain", "connect", "p90", "plain", "sasl_connect"]


async def connect(host: str, port: int, nick: str, *, local: str | None = None) -> LineClient:
    """A registered client (from the loopback address ``local`` when given)."""
    kwargs = {"local_addr": (local, 0)} if local else {}
    c = await LineClient.open(host, port, **kwargs)
    await c.register(nick)
    return c


def plain(account: str, password: str) -> str:
    """The AUTHENTICATE parameter of a SASL PLAIN login."""
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


async def sasl_connect(
    host: str, port: int, nick: str, password: str, *, local: str | None = None
) -> tuple[LineClient, str]:
    """Connect, log in with SASL PLAIN as ``nick``; return the client and the numeric it got
    (903 for a success, 904 for a failure)."""
    kwargs = {"local_addr": (local, 0)} if local else {}
    c = await LineClient.open(host, port, **kwargs)
    await c.send("CAP LS 302")
    await c.send("CAP REQ sasl")
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick}")
    await c.expect(r" ACK :?sasl")
    await c.send("AUTHENTICATE PLAIN")
    await c.expect(r"^AUTHENTICATE \+$")
    await c.send(f"AUTHENTICATE {plain(nick, password)}")
    m = await c.expect(r" (903|904|905) ", timeout=TIMEOUT * 4)
    return c, m.group(1)


def p90(values: list[float]) -> float:
    """The 90th percentile of ``values``."""
    return statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]


class Bystander:
    """A registered, idle client that PINGs every ``every`` seconds while :meth:`watch` runs
    (the default stays inside the flood limit: 10 lines a second after a burst of 30).

    Attributes:
        rtts: every round trip measured, in seconds.
    """

    def __init__(self, client: LineClient, every: float = 0.15) -> None:
        self.client = client
        self.every = every
        self.rtts: list[float] = []

    async def _loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while not stop.is_set():
            n += 1
            started = loop.time()
            await self.client.send(f"PING :by{n}")
            await self.client.expect(rf"PONG \S+ :?by{n}$", timeout=TIMEOUT * 4)
            self.rtts.append(loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[None]:
        """Measure while the body runs (the attack)."""
        stop = asyncio.Event()
        task = asyncio.create_task(self._loop(stop))
        try:
            yield
        finally:
            stop.set()
            await task

    def summary(self) -> str:
        ms = sorted(r * 1000 for r in self.rtts)
        middle = ms[len(ms) // 2]
        return f"{len(ms)} pings, p50 {middle:.1f}, p90 {p90(ms):.1f}, max {ms[-1]:.1f} ms"


class Drain:
    """Reads and counts everything a client is sent, in the background (an attacker that reads
    its replies, so the server never stops it for its send queue)."""

    def __init__(self, client: LineClient) -> None:
        self.client = client
        self.lines: list[str] = []
        self.closed = asyncio.Event()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        reader = self.client.reader
        while True:
            raw = await reader.readline()
            if not raw:
                self.closed.set()
                return
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)

    async def until(self, needle: str, count: int, timeout: float = TIMEOUT * 4) -> None:
        """Wait until ``count`` lines contain ``needle``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.count(needle) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"{self.count(needle)}/{count} lines with {needle!r}; last {self.lines[-3:]}"
                )
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._task
