"""The reconnect loop both clients share (client/reconnect.py), with scripted attempts and a fake
sleep: no sockets, no waiting."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from relaychat.client.config import ClientConfig
from relaychat.client.events import Event, Reconnecting
from relaychat.client.reconnect import Attempt, reconnect_loop

log = logging.getLogger("test.reconnect")


def config(**kwargs: object) -> ClientConfig:
    base = ClientConfig(host="127.0.0.1", port=6667, nick="bot")
    return replace(base, **kwargs)  # type: ignore[arg-type]


async def run(
    script: list[Attempt | Exception], cfg: ClientConfig, closing_after: int | None = None
) -> tuple[str | None, list[Event], list[float]]:
    events: list[Event] = []
    slept: list[float] = []
    calls = 0

    async def attempt() -> Attempt:
        nonlocal calls
        step = script[min(calls, len(script) - 1)]
        calls += 1
        if isinstance(step, Exception):
            raise step
        return step

    async def sleep(delay: float) -> None:
        slept.append(delay)

    result = await reconnect_loop(
        attempt,
        config=cfg,
        rand=lambda: 1.0,
        closing=lambda: closing_after is not None and calls >= closing_after,
        publish=events.append,
        log=log,
        name="test",
        sleep=sleep,
    )
    return result, events, slept


async def test_gives_up_after_max_attempts_with_the_count() -> None:
    cfg = config(max_attempts=3, backoff_initial=1.0, backoff_factor=2.0, backoff_max=60.0)
    result, events, slept = await run([Attempt("connection refused")], cfg)
    assert result == "connection refused (after 4 attempts)"
    assert [e.attempt for e in events if isinstance(e, Reconnecting)] == [1, 2, 3]
    assert slept == [e.delay for e in events if isinstance(e, Reconnecting)]
    assert slept == sorted(slept) and slept[-1] <= 60.0


async def test_backoff_restarts_after_a_link_that_got_through() -> None:
    cfg = config(max_attempts=2, backoff_initial=1.0, backoff_factor=2.0, backoff_max=60.0)
    script = [
        Attempt("refused"),
        Attempt("refused"),
        Attempt("dropped", reached=True),
        Attempt("refused"),
        Attempt("refused"),
        Attempt("refused"),
    ]
    result, events, _ = await run(script, cfg)
    attempts = [e.attempt for e in events if isinstance(e, Reconnecting)]
    assert attempts == [1, 2, 1, 2]  # the count starts over after the link was up
    assert result == "refused (after 3 attempts)"


async def test_fatal_and_no_reconnect_stop_at_once() -> None:
    result, events, slept = await run([Attempt("SASL refused", fatal=True)], config())
    assert (result, events, slept) == ("SASL refused", [], [])
    result, events, slept = await run([Attempt("dropped")], config(reconnect=False))
    assert (result, events, slept) == ("dropped", [], [])


async def test_closing_returns_none() -> None:
    result, _, _ = await run([Attempt("dropped")], config(), closing_after=1)
    assert result is None


async def test_a_bug_becomes_the_reason_to_give_up(caplog: pytest.LogCaptureFixture) -> None:
    result, _, _ = await run([RuntimeError("boom")], config())
    assert result == "internal error: RuntimeError('boom')"
    assert "test loop failed" in caplog.text


async def test_waits_at_least_what_the_server_asked() -> None:
    """A connection-rate refusal says "try again in N seconds": the next delay is at least N."""
    cfg = config(max_attempts=2, backoff_initial=0.05, backoff_factor=2.0, backoff_max=60.0)
    script = [Attempt("server error: too many", retry_after=7.0), Attempt("refused")]
    _, _, slept = await run(script, cfg)
    assert slept[0] == 7.0
    assert slept[1] < 1.0  # the next attempt's own answer said nothing: the backoff again
