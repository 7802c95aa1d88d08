"""Reconnect delays: exponential, capped, fully jittered, finite when asked; pure."""

from __future__ import annotations

import random
from itertools import islice

import pytest

from relaychat.client.backoff import backoff


def test_ceilings_grow_exponentially_to_the_cap() -> None:
    delays = backoff(initial=0.5, factor=2.0, max_delay=5.0, rand=lambda: 0.999999)
    got = [round(d, 3) for d in islice(delays, 7)]
    assert got == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_full_jitter_scales_the_ceiling() -> None:
    values = iter([0.0, 0.5, 0.25])
    assert list(islice(backoff(initial=1.0, rand=lambda: next(values)), 3)) == [0.0, 1.0, 1.0]


def test_jitter_stays_in_range_with_a_real_random_source() -> None:
    rng = random.Random(42)
    delays = list(islice(backoff(initial=0.1, max_delay=3.0, rand=rng.random), 200))
    ceilings = [min(3.0, 0.1 * 2**i) for i in range(200)]
    assert all(0.0 <= d < c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == 200  # jittered: no two alike


def test_max_attempts_ends_the_generator() -> None:
    assert len(list(backoff(max_attempts=4, rand=lambda: 0.5))) == 4
    assert list(backoff(max_attempts=0)) == []


def test_unbounded_by_default() -> None:
    assert len(list(islice(backoff(rand=lambda: 0.5), 1000))) == 1000


def test_initial_above_the_cap_is_capped() -> None:
    assert next(backoff(initial=10.0, max_delay=2.0, rand=lambda: 0.5)) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0.0}, {"max_delay": -1.0}, {"factor": 0.5}, {"max_attempts": -1}],
)
def test_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff(**kwargs)  # type: ignore[arg-type]
