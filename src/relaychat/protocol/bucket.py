"""A token bucket with an injected clock, pure: client pacing and server-side rate limits."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Client-side pacing: ``burst`` lines at once, then ``rate`` lines per second.

    Args:
        rate: lines per second refilled; ``0`` turns pacing off.
        burst: the most tokens held.
        now: the current time (the bucket starts full).
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = now

    def reset(self, now: float) -> None:
        """Fill the bucket (a new connection starts with a fresh allowance at the server)."""
        self.tokens = self.burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)

    def ready(self, now: float) -> bool:
        """Whether a line may be written now."""
        if self.rate == 0:
            return True
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        """Count one line written. Urgent lines may take the bucket below zero."""
        if self.rate == 0:
            return
        self._refill(now)
        self.tokens -= 1.0

    def wait(self, now: float) -> float:
        """Seconds until :meth:`ready` is true (0 when it is now)."""
        if self.ready(now):
            return 0.0
        return (1.0 - self.tokens) / self.rate
