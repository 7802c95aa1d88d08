"""`relaychat send` exits 0 only when every line is confirmed exactly once (a real subprocess,
through a fault proxy, against the real server; another user is a raw :class:`LineClient`)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relaychat.config import Idempotency
from relaychat.server.listeners import Server
from tests.e2e.test_send_tail import reader, run
from tests.faultproxy import FaultProxy
from tests.harness import TIMEOUT, LineClient, free_config

FAST_SEND = (
    "connect_timeout = 2.0\nregistration_timeout = 3.0\npace_rate = 200.0\npace_burst = 50\n"
    "backoff_initial = 0.05\nbackoff_max = 0.3\nping_interval = 1.0\nping_timeout = 1.0\n"
)


@pytest.fixture
def fast_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "client.toml"
    config.write_text(FAST_SEND)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


async def _collect(feed: LineClient, channel: str, seen: Counter[str]) -> None:
    while True:
        line = await feed.readline(timeout=3600)
        if f"PRIVMSG {channel} :" in line:
            seen[line.split(f"PRIVMSG {channel} :", 1)[1]] += 1


async def _until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT * 2
    while not cond():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_send_through_resets_delivers_every_line_once(
    server: Server, fast_env: dict[str, str]
) -> None:
    feed = await reader(server, "#once")
    seen: Counter[str] = Counter()
    collector = asyncio.ensure_future(_collect(feed, "#once", seen))
    proxy = await FaultProxy(server.addresses[0], latency=0.03).start()

    async def resets() -> None:
        await _until(lambda: bool(seen), "the first line")  # (a first connection must work)
        while True:
            proxy.reset()
            await asyncio.sleep(0.4)

    resetter = asyncio.ensure_future(resets())
    lines = [f"line {i:03d}" for i in range(150)]
    try:
        host, port = proxy.address
        code, out, err = await run(
            fast_env, "send", f"{host}:{port}", "#once", stdin="\n".join(lines) + "\n"
        )
        resetter.cancel()
        assert (code, out, err) == (0, "", ""), err
        await _until(lambda: set(seen) >= set(lines), "every line")
        await asyncio.sleep(0.2)
        assert seen == Counter(lines), "each line exactly once"
        assert proxy.counts["reset"] >= 2
    finally:
        resetter.cancel()
        collector.cancel()
        await feed.close()
        await proxy.stop()


async def _relayed_then_dropped(
    server: Server, env: dict[str, str], delivery: str
) -> tuple[int, str, Counter[str]]:
    """`send` writes "one"; it is relayed; its confirmation is lost; the link resets."""
    feed = await reader(server, "#doubt")
    seen: Counter[str] = Counter()
    collector = asyncio.ensure_future(_collect(feed, "#doubt", seen))
    proxy = await FaultProxy(server.addresses[0]).start()
    host, port = proxy.address
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "relaychat", "send", f"{host}:{port}", "#doubt", "--delivery", delivery),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    try:
        proc.stdin.write(b"zero\n")
        await _until(lambda: seen["zero"] == 1, "zero")
        await asyncio.sleep(0.2)  # its confirmation too
        proxy.deafen()
        proc.stdin.write(b"one\n")
        await _until(lambda: seen["one"] == 1, "one, relayed")
        proxy.reset()
        proc.stdin.close()
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 3)
        await asyncio.sleep(0.2)
        assert proc.returncode is not None
        return proc.returncode, err.decode(), seen
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        collector.cancel()
        await feed.close()
        await proxy.stop()


async def test_exactly_once_survives_a_lost_confirmation(
    server: Server, fast_env: dict[str, str]
) -> None:
    code, err, seen = await _relayed_then_dropped(server, fast_env, "exactly-once")
    assert (code, err) == (0, "")
    assert seen == Counter({"zero": 1, "one": 1})


async def test_at_least_once_exits_1_when_a_line_may_be_twice(
    make_server: Callable[..., Any], fast_env: dict[str, str]
) -> None:
    srv: Server = await make_server(free_config(idempotency=Idempotency(enabled=False)))
    code, err, seen = await _relayed_then_dropped(srv, fast_env, "at-least-once")
    assert seen == Counter({"zero": 1, "one": 2})  # what at-least-once means
    assert code == 1
    assert err.strip() == (
        "relaychat: 1 of 2 messages may have arrived twice: they were sent again after a drop,"
        " with at_least_once delivery (the server cannot recognise a repeat)"
    )


async def test_at_most_once_exits_1_for_a_line_in_doubt(
    make_server: Callable[..., Any], fast_env: dict[str, str]
) -> None:
    srv: Server = await make_server(free_config(idempotency=Idempotency(enabled=False)))
    code, err, seen = await _relayed_then_dropped(srv, fast_env, "auto")
    assert seen == Counter({"zero": 1, "one": 1})
    assert code == 1 and "1 of 2 messages not delivered" in err


async def test_exactly_once_refuses_a_server_without_it(
    make_server: Callable[..., Any], fast_env: dict[str, str]
) -> None:
    srv: Server = await make_server(free_config(idempotency=Idempotency(enabled=False)))
    host, port = srv.addresses[0]
    code, out, err = await run(
        fast_env, "send", f"{host}:{port}", "#c", "hi", "--delivery", "exactly-once"
    )
    assert (code, out) == (3, "")
    assert err.strip() == (
        "relaychat: the server does not offer exactly-once delivery (relaychat.dev/idempotency)"
    )
