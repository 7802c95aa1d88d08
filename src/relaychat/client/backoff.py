"""Reconnect delays: exponential backoff with full jitter, as a pure generator.

Attempt ``n`` (from 0) waits a random time in ``[0, min(max_delay, initial * factor**n))``
("full jitter": clients that dropped together do not come back together). The random source is
injected, so tests get exact delays.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

__all__ = ["backoff"]


def backoff(
    *,
    initial: float = 0.5,
    factor: float = 2.0,
    max_delay: float = 30.0,
    max_attempts: int | None = None,
    rand: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield the delay before each reconnect attempt.

    Args:
        initial: the ceiling of the first delay, in seconds.
        factor: how much the ceiling grows after each attempt.
        max_delay: the cap on the ceiling.
        max_attempts: stop after this many delays (``None``: never stop).
        rand: returns a float in ``[0, 1)``; :func:`random.random` by default.

    Returns:
        An iterator of delays in seconds; it is exhausted after ``max_attempts`` delays.

    Raises:
        ValueError: a setting is out of range.
    """
    if initial <= 0 or max_delay <= 0:
        raise ValueError("initial and max_delay must be positive")
    if factor < 1:
        raise ValueError("factor must be at least 1")
    if max_attempts is not None and max_attempts < 0:
        raise ValueError("max_attempts must not be negative")
    return _delays(initial, factor, max_delay, max_attempts, rand)


def _delays(
    initial: float,
    factor: float,
    max_delay: float,
    max_attempts: int | None,
    rand: Callable[[], float],
) -> Iterator[float]:
    ceiling = min(initial, max_delay)
    attempt = 0
    while max_attempts is None or attempt < max_attempts:
        yield rand() * ceiling
        attempt += 1
        ceiling = min(max_delay, ceiling * factor)
