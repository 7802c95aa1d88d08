"""The reconnect loop both clients run: connect, and on a drop wait a backoff delay and retry.

Rules:
1. This module decides only *whether and when* to try again. What one attempt does (open the
   socket, register, pump bytes) is the caller's ``attempt``; what giving up does (fail the
   outbox, publish :class:`~relaychat.client.events.GaveUp`) is the caller's too.
2. The delays come from :func:`~relaychat.client.backoff.backoff`, started afresh the first time
   and after every attempt that got through, so a link that was up retries quickly again.
   When the server said how long to wait ("try again in N seconds", e.g. a connection-rate
   refusal), the delay is at least that.
3. A bug in the loop or in an attempt must not hang callers: it is logged and becomes the
   reason to give up (``"internal error: ..."``). Cancellation passes through.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from relaychat.client.backoff import backoff
from relaychat.client.config import ClientConfig
from relaychat.client.events import Event, Reconnecting

__all__ = ["Attempt", "reconnect_loop"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one connection attempt ended.

    Attributes:
        reason: why the connection ended (or could not be opened), in words.
        reached: the link got through (connected, or registered for IRC): the backoff restarts.
        fatal: retrying cannot help (e.g. SASL was refused): give up at once.
        retry_after: seconds the server asked us to wait before trying again (0: it did not).
    """

    reason: str
    reached: bool = False
    fatal: bool = False
    retry_after: float = 0.0


async def reconnect_loop(
    attempt: Callable[[], Awaitable[Attempt]],
    *,
    # Settings
    config: ClientConfig,
    rand: Callable[[], float],
    # The caller's side
    closing: Callable[[], bool],
    publish: Callable[[Event], None],
    log: logging.Logger,
    name: str,
    # Time (injectable for tests)
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> str | None:
    """Run ``attempt`` until closing, or until the config's retries are spent.

    Between attempts it publishes :class:`Reconnecting` ``(attempt, delay, reason)`` and sleeps
    ``delay``. It retries only when ``config.reconnect`` is set and the attempt was not fatal.

    Args:
        attempt: connects once and returns how that ended (once the link is down again).
        config: ``reconnect``, ``backoff_initial``, ``backoff_factor``, ``backoff_max`` and
            ``max_attempts`` are read.
        rand: the random source of the backoff jitter.
        closing: whether the caller is closing (checked before and after each attempt).
        publish: hands an event to the caller's subscribers.
        log: where the delays (INFO) and a failing loop (ERROR, with traceback) are logged.
        name: what the loop is called in that log (``"client"`` logs "client loop failed").
        sleep: waits between attempts (:func:`asyncio.sleep`).

    Returns:
        ``None`` when the caller started closing: it must just stop. Otherwise why the link is
        given up (the last attempt's reason, ``"... (after N attempts)"`` when the retries ran
        out, or ``"internal error: ..."``): the caller must give up with that reason.

    Raises:
        asyncio.CancelledError: the task was cancelled; nothing else escapes.
    """
    delays: Iterator[float] | None = None
    count = 0
    reason = "not connected"
    try:
        while not closing():
            ended = await attempt()
            reason = ended.reason
            if closing() or ended.fatal or not config.reconnect:
                break
            if ended.reached or delays is None:
                count = 0
                delays = backoff(
                    initial=config.backoff_initial,
                    factor=config.backoff_factor,
                    max_delay=config.backoff_max,
                    max_attempts=config.max_attempts,
                    rand=rand,
                )
            delay = next(delays, None)
            if delay is None:
                reason = f"{reason} (after {count + 1} attempts)"
                break
            delay = max(delay, ended.retry_after)
            count += 1
            log.info("reconnecting in %.2f s (attempt %d): %s", delay, count, reason)
            publish(Reconnecting(count, delay, reason))
            await sleep(delay)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug: report it as a give-up rather than hang callers
        log.exception("%s loop failed", name)
        reason = f"internal error: {exc!r}"
    return None if closing() else reason
