"""Rate-limited logging: one line per cause per interval, with a count of what was left out.

A client can make the server log (a refused connection, a busy worker, a throttled login); a
client that does it thousands of times a second must not fill the disk. :class:`RateLimitedLog`
writes the first line of each *cause* at once, then at most one line per ``interval`` seconds for
that cause, saying how many lines like it were suppressed meanwhile.

Rules:
1. The clock is passed in (``now``): the server core calls it with its own time, the edges with
   ``time.monotonic()``; nothing here reads a clock.
2. A cause is a short fixed string chosen by the caller ("refused: too many from one address"),
   never client input, so the number of causes is small; it is bounded anyway
   (:data:`MAX_CAUSES`: the oldest cause is forgotten first).
3. :meth:`RateLimitedLog.flush` writes the counts still pending (the server's tick calls it), so
   a burst that stops is still reported, once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

__all__ = ["MAX_CAUSES", "RateLimitedLog"]

#: Most causes remembered at once.
MAX_CAUSES = 1024


class _Cause:
    __slots__ = ("level", "since", "suppressed")

    def __init__(self, since: float, level: int) -> None:
        self.since = since
        self.level = level
        self.suppressed = 0


class RateLimitedLog:
    """Logs through ``logger``, at most one line per cause per ``interval`` seconds.

    Args:
        logger: where the lines go.
        interval: seconds between two lines of one cause.
    """

    def __init__(self, logger: logging.Logger, interval: float) -> None:
        self.logger = logger
        self.interval = interval
        self._causes: OrderedDict[str, _Cause] = OrderedDict()

    def log(self, level: int, cause: str, msg: str, *args: Any, now: float) -> bool:
        """Log ``msg % args`` unless ``cause`` was logged less than ``interval`` seconds ago.

        Returns:
            Whether the line was written (``False``: it was counted, to be reported later).
        """
        if not self.logger.isEnabledFor(level):
            return False
        entry = self._causes.get(cause)
        if entry is not None and now - entry.since < self.interval:
            entry.suppressed += 1
            entry.level = max(entry.level, level)
            return False
        text = msg % args if args else msg
        if entry is not None and entry.suppressed:
            text += f" (and {entry.suppressed} more like it in the last {now - entry.since:.0f} s)"
        self.logger.log(level, "%s", text)
        self._causes[cause] = _Cause(now, level)
        self._causes.move_to_end(cause)
        while len(self._causes) > MAX_CAUSES:
            self._causes.popitem(last=False)
        return True

    def warning(self, cause: str, msg: str, *args: Any, now: float) -> bool:
        """:meth:`log` at WARNING."""
        return self.log(logging.WARNING, cause, msg, *args, now=now)

    def info(self, cause: str, msg: str, *args: Any, now: float) -> bool:
        """:meth:`log` at INFO."""
        return self.log(logging.INFO, cause, msg, *args, now=now)

    def flush(self, now: float) -> int:
        """Report the causes whose interval has passed with lines still suppressed.

        Returns:
            How many summary lines were written.
        """
        written = 0
        for cause, entry in list(self._causes.items()):
            if now - entry.since < self.interval:
                continue
            if entry.suppressed:
                self.logger.log(
                    entry.level,
                    "%s: %d more in the last %.0f s",
                    cause,
                    entry.suppressed,
                    now - entry.since,
                )
                written += 1
            del self._causes[cause]
        return written
