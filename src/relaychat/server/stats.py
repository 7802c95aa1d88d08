"""Plain counters the edges keep for ``/metrics``: cheap enough for the hot path.

Rules:
1. Nothing here knows Prometheus: the edges add to plain integers and floats, and the metrics
   collector (``relaychat.web.metrics``) reads them when it is scraped. Calling a Prometheus
   ``Counter.inc`` per message would cost a lock and a method call on the hottest line.
2. Counters only grow; gauges (loop lag) hold the last value seen.
"""

from __future__ import annotations

import bisect

__all__ = ["COMMIT_BUCKETS", "EdgeStats", "LatencyHistogram"]

#: Upper bounds (seconds) of the history commit latency histogram's buckets.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LatencyHistogram:
    """Observations counted into fixed buckets, with their sum (a Prometheus histogram's data).

    Args:
        bounds: the buckets' upper bounds, ascending; ``+Inf`` is implied.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = COMMIT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value`` seconds."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(upper bound, observations <= bound)`` per bucket, ``+Inf`` last (Prometheus form)."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            total += count
            out.append((bound, total))
        return out


class EdgeStats:
    """What the transports count, read at scrape time.

    Attributes:
        bytes_out: bytes written to clients (every transport, WebSocket framing included).
        sendq_drops: clients dropped because their send queue passed ``limits.sendq``.
        flood_throttles: times a client's input started being delayed by flood control.
        commit_latency: seconds each history group commit took.
        loop_lag: how late the event loop last woke a timer, in seconds.
        loop_lag_max: the largest lag seen since start.
    """

    __slots__ = (
        "bytes_out",
        "commit_latency",
        "flood_throttles",
        "loop_lag",
        "loop_lag_max",
        "sendq_drops",
    )

    def __init__(self) -> None:
        self.bytes_out = 0
        self.sendq_drops = 0
        self.flood_throttles = 0
        self.commit_latency = LatencyHistogram()
        self.loop_lag = 0.0
        self.loop_lag_max = 0.0
