"""The exactly-once soak: senders behind fault-injecting proxies, a reader connected directly.

Several :class:`~relaychat.client.Client` senders each post a numbered stream of messages to
their own channel, each through its own :class:`FaultProxy`, which keeps injecting faults of
every kind (RST, a half-open stall, a drop in the middle of a line, delays, garbage). The server
is the real ``relaychat serve`` with a data directory, and is killed with ``kill -9`` and
restarted during the run. A reader connected directly (also the library: it resumes through
CHATHISTORY after the server restarts) must see every message exactly once, in order per
sender; every sender must see every message confirmed exactly once, with its msgid.

``make test`` runs the bounded pass below; ``make soak-delivery`` a long one. Sizes come from
the environment: ``RELAYCHAT_SOAK_MESSAGES`` (total), ``RELAYCHAT_SOAK_FAULTS`` (total),
``RELAYCHAT_SOAK_SENDERS``, ``RELAYCHAT_SOAK_KILLS``; the numbers are printed at the end (and
appended to the file ``RELAYCHAT_SOAK_REPORT`` names, if set).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from relaychat.client import Client, Connected, Delivery, Disconnected, Message, OutboxFull
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT, ServerProcess, scratch_dir

ENV = os.environ
MESSAGES = int(ENV.get("RELAYCHAT_SOAK_MESSAGES", "20000"))
FAULTS = int(ENV.get("RELAYCHAT_SOAK_FAULTS", "1000"))
SENDERS = int(ENV.get("RELAYCHAT_SOAK_SENDERS", "8"))
KILLS = int(ENV.get("RELAYCHAT_SOAK_KILLS", "2"))
#: The whole run must end within this (it is a bound, not a measure: ~1 minute is usual).
DEADLINE = float(ENV.get("RELAYCHAT_SOAK_DEADLINE", "400")) * TIMEOUT / 5.0

KINDS = ("reset", "stall", "cut", "delay", "garbage")
#: Unreadable bytes: every line of it holds a NUL, and there are more than the client tolerates.
GARBAGE = b"\x00\xff\xfe\x01garbage\r\n" + b"::: \x00\r\n" * 3 + b"\x80" * 2000 + b"\x00\r\n"

#: Senders notice a dead link within a fraction of a second, and retry at once.
SENDER = dict(
    ping_interval=0.5,
    ping_timeout=0.5,
    ack_delay=0.1,
    backoff_initial=0.02,
    backoff_max=0.25,
    connect_timeout=2.0,
    registration_timeout=3.0,
    request_timeout=TIMEOUT * 4,
    pace_rate=0.0,  # the test server has no flood limit
    max_inflight=64,
    nick_attempts=40,  # stalled links hold old nicks until the server times them out
)
READER = dict(
    backoff_initial=0.05,
    backoff_max=0.25,
    pace_burst=64,  # every JOIN and CHATHISTORY in one write after a restart
    request_timeout=TIMEOUT * 4,
    event_queue=200_000,
)
#: (DEBUG: the server logs each repeat it answered without relaying it again.)
SERVE_FLAGS = (
    "--ping-interval",
    "1",
    "--ping-timeout",
    "1.5",
    "--flood-rate",
    "0",
    "--throttle-connect-per-minute",  # the fault proxy reconnects senders many times a second
    "0",
    "--log-level",
    "DEBUG",
)


@dataclass
class Sender:
    index: int
    proxy: FaultProxy
    total: int
    client: Client | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    connects: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    #: How many of its messages the sender may queue so far (the fault injector paces it).
    allowed: int = 0
    #: Per fault injected, in order: its kind and how many drops the sender had seen by then.
    injections: list[tuple[str, int]] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return f"#soak{self.index}"

    def confirmed(self) -> int:
        return sum(1 for d in self.deliveries if d.done())


@dataclass
class Run:
    server: ServerProcess
    data_dir: str
    port: int
    kills: int = 0
    restart_seconds: list[float] = field(default_factory=list)
    #: The logs of the server processes killed so far.
    logs: list[str] = field(default_factory=list)

    def repeats(self) -> int:
        """How many repeated keys the servers answered without relaying them again."""
        lines = [*self.logs, *self.server.log]
        return sum("not relayed again" in line for line in lines)


async def _restart(run: Run) -> None:
    """kill -9 the server, and start it again on the same port with the same data."""
    await run.server.kill()
    run.logs += run.server.log
    run.kills += 1
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            run.server = await ServerProcess.start(
                "--data-dir", run.data_dir, "--port", str(run.port), *SERVE_FLAGS
            )
            break
        except AssertionError:  # the port was briefly taken: try again
            if attempt >= 5:
                raise
            await asyncio.sleep(0.2)
    run.restart_seconds.append(time.monotonic() - started)


async def _send_all(sender: Sender) -> None:
    client = sender.client
    assert client is not None
    for n in range(sender.total):
        while n >= sender.allowed:
            await asyncio.sleep(0.002)
        while True:
            try:
                sender.deliveries.append(await client.send(sender.channel, f"{sender.index}:{n}"))
                break
            except OutboxFull:
                await asyncio.sleep(0.02)


async def _inject_faults(sender: Sender, quota: int, rng: random.Random) -> None:
    """Inject ``quota`` faults into ``sender``'s link, one at a time, each while messages are
    on their way: let the sender queue a batch of messages, wait until part of it is confirmed
    (the rest is being written, or waits for its echo), inject, and wait for the fault to play
    out (the link dropped, or a moment passed)."""
    proxy = sender.proxy
    client = sender.client
    assert client is not None
    step = max(2, int(sender.total * 0.9 / max(1, quota)))
    kinds = itertools.cycle(KINDS)
    kind = next(kinds)
    loop = asyncio.get_running_loop()
    for _ in range(quota):
        sender.allowed = min(sender.total, sender.allowed + step)
        mark = sender.allowed - step + rng.randrange(step // 2 + 1)
        while not client.connected or sender.confirmed() < mark:
            await asyncio.sleep(0.002)
        while True:
            before = proxy.counts[kind]
            drops = sum(sender.drops.values())
            settle = 0.5
            if kind == "reset":
                proxy.reset()
            elif kind == "stall":
                proxy.stall()
                settle = 1.5
            elif kind == "cut":
                proxy.cut()
            elif kind == "garbage":
                proxy.inject(GARBAGE)
            else:
                proxy.slow(rng.uniform(0.02, 0.5))
                settle = rng.uniform(0.05, 0.3)
                loop.call_later(settle, proxy.slow, 0.0)
            if proxy.counts[kind] > before:
                break
            await asyncio.sleep(0.005)  # no live link (reconnecting): try again shortly
        sender.injections.append((kind, drops))
        kind = next(kinds)
        deadline = loop.time() + settle
        while sum(sender.drops.values()) == drops and loop.time() < deadline:
            await asyncio.sleep(0.005)
    sender.allowed = sender.total


async def _kill_during(run: Run, senders: list[Sender], kills: int) -> None:
    """kill -9 and restart the server ``kills`` times, evenly through the run."""
    total = sum(s.total for s in senders)
    for k in range(1, kills + 1):
        while sum(s.confirmed() for s in senders) < total * k / (kills + 1):
            await asyncio.sleep(0.01)
        await _restart(run)


async def _until(cond: Callable[[], bool], deadline: float, what: str) -> None:
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"soak: timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def soak(
    *, messages: int, faults: int, senders: int, kills: int, deadline: float
) -> dict[str, Any]:
    """Run the soak; returns its numbers (asserting nothing: the caller does)."""
    rng = random.Random(ENV.get("RELAYCHAT_SOAK_SEED", "12"))
    data_dir = scratch_dir()
    first = await ServerProcess.start("--data-dir", data_dir, *SERVE_FLAGS)
    run = Run(first, data_dir, first.port)
    upstream = (first.host, first.port)
    per = messages // senders
    group = [Sender(i, await FaultProxy(upstream).start(), per) for i in range(senders)]
    got: dict[int, list[int]] = {s.index: [] for s in group}
    reader = Client(
        first.host,
        first.port,
        nick="reader",
        channels=tuple(s.channel for s in group),
        **READER,  # type: ignore[arg-type]
    )
    reader_events = reader.events(Message, Connected)
    started = time.monotonic()
    end = started + deadline
    tasks: list[asyncio.Task[None]] = []

    async def read() -> None:
        async for event in reader_events:
            if isinstance(event, Message) and event.target.startswith("#soak"):
                who, _, n = event.text.partition(":")
                got[int(who)].append(int(n))

    async def count_connects(sender: Sender) -> None:
        assert sender.client is not None
        async for event in sender.client.events(Connected, Disconnected):
            if isinstance(event, Connected):
                sender.connects += 1
            elif isinstance(event, Disconnected):
                sender.drops[event.reason.split(":")[0][:40]] += 1

    try:
        tasks.append(asyncio.ensure_future(read()))
        await reader.connect(TIMEOUT)
        await _until(lambda: len(reader.channels) == senders, end, "the reader to join")
        for s in group:
            s.client = Client(*s.proxy.address, nick=f"s{s.index}", **SENDER)  # type: ignore[arg-type]
            tasks.append(asyncio.ensure_future(count_connects(s)))
            await s.client.connect(TIMEOUT)
            await s.client.join(s.channel)
        work = [asyncio.ensure_future(_send_all(s)) for s in group]
        work += [
            asyncio.ensure_future(_inject_faults(s, -(-faults // senders), rng)) for s in group
        ]
        work.append(asyncio.ensure_future(_kill_during(run, group, kills)))
        tasks += work
        await asyncio.wait_for(asyncio.gather(*work), max(1.0, end - time.monotonic()))
        for s in group:
            await _until(lambda s=s: s.confirmed() == s.total, end, f"sender {s.index}")  # type: ignore[misc]
        sent_done = time.monotonic()
        await _until(
            lambda: all(len(set(got[s.index])) >= s.total for s in group),
            end,
            "the reader to get every message",
        )
        await asyncio.sleep(1.0)  # room for a late duplicate to show up
        duration = time.monotonic() - started
        counts: Counter[str] = Counter()
        for s in group:
            counts.update(s.proxy.counts)
        felt: Counter[str] = Counter()  # faults after which the link dropped before the next
        for s in group:
            marks = [*s.injections, ("end", sum(s.drops.values()))]
            for (kind, seen), (_, later) in itertools.pairwise(marks):
                felt[kind] += later > seen
        duplicates = sum(len(got[s.index]) - len(set(got[s.index])) for s in group)
        lost = sum(len(set(range(s.total)) - set(got[s.index])) for s in group)
        in_order = all(got[s.index] == sorted(got[s.index]) for s in group)
        failed = [d for s in group for d in s.deliveries if not d.exactly_once]
        no_msgid = sum(1 for s in group for d in s.deliveries if d.msgid is None)
        return {
            "messages": sum(s.total for s in group),
            "senders": senders,
            "faults": sum(counts[k] for k in KINDS),
            "faults_by_kind": {k: counts[k] for k in KINDS},
            "faults_that_dropped_the_link": {k: felt[k] for k in KINDS},
            "cuts_done": sum(link.cuts for s in group for link in s.proxy.links),
            "server_kills": run.kills,
            "reconnects": sum(max(0, s.connects - 1) for s in group),
            "repeats_not_relayed_again": run.repeats(),
            "drops_by_reason": dict(sum((s.drops for s in group), Counter())),
            "received": sum(len(v) for v in got.values()),
            "duplicates": duplicates,
            "lost": lost,
            "in_order": in_order,
            "not_exactly_once": len(failed),
            "first_failure": str(failed[0].error) if failed else "",
            "without_msgid": no_msgid,
            "delivery": sorted({str(s.client.delivery) for s in group if s.client}),
            "seconds_to_confirm": round(sent_done - started, 1),
            "seconds": round(duration, 1),
            "restart_seconds": [round(x, 2) for x in run.restart_seconds],
        }
    finally:
        for t in tasks:
            t.cancel()
        for s in group:
            if s.client is not None:
                await s.client.close(timeout=0.5)
            await s.proxy.stop()
        await reader.close(timeout=0.5)
        with contextlib.suppress(Exception):
            await run.server.stop()


def report(numbers: dict[str, Any]) -> None:
    line = "delivery soak: " + json.dumps(numbers)
    print(line)
    path = ENV.get("RELAYCHAT_SOAK_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


@pytest.mark.timeout(DEADLINE + 60)
async def test_every_message_exactly_once_through_faults_and_kill_9() -> None:
    numbers = await soak(
        messages=MESSAGES, faults=FAULTS, senders=SENDERS, kills=KILLS, deadline=DEADLINE
    )
    report(numbers)
    assert numbers["messages"] >= min(MESSAGES, 20_000) - SENDERS
    assert numbers["faults"] >= FAULTS - SENDERS * len(KINDS)
    assert all(n > 0 for n in numbers["faults_by_kind"].values()), numbers
    assert numbers["server_kills"] == KILLS
    assert numbers["delivery"] == ["exactly_once"]
    assert numbers["repeats_not_relayed_again"] > 0, "no repeat reached the server: untested"
    assert numbers["duplicates"] == 0, numbers
    assert numbers["lost"] == 0, numbers
    assert numbers["in_order"], numbers
    assert numbers["not_exactly_once"] == 0, numbers
    assert numbers["without_msgid"] == 0, numbers
