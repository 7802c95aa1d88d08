"""Keepalive and dead-peer detection, pure: the clock is passed in.

Rules:
- When nothing has been received for ``interval`` seconds and no PING is unanswered, the client
  sends a PING.
- Every PING the client writes (keepalive, or the markers that confirm delivery) is tracked;
  when the oldest unanswered one is ``timeout`` seconds old, the peer is dead — even if the OS
  never reports the half-open connection.
- Only the matching PONG answers a PING (other input proves one direction only). A PONG also
  answers every older PING: the server answers in order.
"""

from __future__ import annotations

__all__ = ["Keepalive"]


class Keepalive:
    """The liveness of one connection.

    Args:
        interval: seconds of silence before the client PINGs.
        timeout: seconds a PING may stay unanswered before the peer is declared dead.
    """

    __slots__ = ("_pending", "interval", "lag", "last_received", "timeout")

    def __init__(self, *, interval: float, timeout: float) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("interval and timeout must be positive")
        self.interval = interval
        self.timeout = timeout
        self.last_received = 0.0
        self._pending: dict[str, float] = {}  # token -> time sent, oldest first
        #: Round-trip time of the last answered PING, in seconds (``None`` before the first).
        self.lag: float | None = None

    def start(self, now: float) -> None:
        """A new connection: forget every PING, count silence from ``now``."""
        self._pending.clear()
        self.lag = None
        self.last_received = now

    def received(self, now: float) -> None:
        """Call on any input from the peer."""
        self.last_received = now

    def sent(self, token: str, now: float) -> None:
        """Call when a PING carrying ``token`` is written."""
        self._pending[token] = now

    def answered(self, token: str, now: float | None = None) -> bool:
        """Call on a PONG; whether ``token`` was ours (every older PING is answered too).

        Args:
            token: the PONG's token.
            now: when it arrived; when given, :attr:`lag` becomes that PING's round trip.
        """
        sent = self._pending.get(token)
        if sent is None:
            return False
        if now is not None:
            self.lag = max(0.0, now - sent)
        for key in list(self._pending):
            del self._pending[key]
            if key == token:
                break
        return True

    @property
    def waiting(self) -> bool:
        """Whether a PING is unanswered."""
        return bool(self._pending)

    def ping_due(self, now: float) -> bool:
        """Whether the client should send a keepalive PING now."""
        return not self._pending and now - self.last_received >= self.interval

    def dead(self, now: float) -> bool:
        """Whether the oldest unanswered PING has waited ``timeout`` seconds or more."""
        if not self._pending:
            return False
        oldest = next(iter(self._pending.values()))
        return now - oldest >= self.timeout

    def deadline(self) -> float:
        """When :meth:`ping_due` or :meth:`dead` next becomes true, if nothing else happens."""
        if self._pending:
            return next(iter(self._pending.values())) + self.timeout
        return self.last_received + self.interval
