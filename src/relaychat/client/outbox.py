"""The bounded outbox of outgoing lines, pure.

Rules:
- Texts are split to fit a relayed line by ``protocol/text.py``; pacing is the token bucket of
  ``protocol/bucket.py``.
- The outbox holds lines not yet written. It is bounded; :meth:`Outbox.put` is all-or-nothing,
  so a caller always knows exactly which lines were refused.
- Pacing is a token bucket over *every* line the client writes, so the client never sends
  faster than the server's flood limit and is never dropped for flooding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from relaychat.client.errors import OutboxFull
from relaychat.client.events import Outgoing

__all__ = ["Outbox"]


class Outbox:
    """Lines accepted from the user and not yet written, in order; at most ``capacity``.

    Args:
        capacity: the most lines held.
    """

    __slots__ = ("_queue", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._queue: deque[Outgoing] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[Outgoing]:
        return iter(self._queue)

    def put(self, items: tuple[Outgoing, ...]) -> None:
        """Queue every line of ``items``, or none of them.

        Raises:
            OutboxFull: not all of ``items`` fit; none were queued (they are in ``unsent``).
        """
        if len(self._queue) + len(items) > self.capacity:
            raise OutboxFull(items, self.capacity)
        self._queue.extend(items)

    def push_front(self, items: Iterable[Outgoing]) -> None:
        """Put lines back at the head, in their order (lines to send again after a drop).

        These may take the outbox over its capacity for a while: they were accepted already.
        """
        self._queue.extendleft(reversed(list(items)))

    def pop(self) -> Outgoing:
        """Take the oldest line (the outbox must not be empty)."""
        return self._queue.popleft()

    def take(self, ids: Iterable[int]) -> tuple[Outgoing, ...]:
        """Take the lines whose id is in ``ids`` out, in order; the others keep theirs."""
        wanted = set(ids)
        taken = tuple(item for item in self._queue if item.id in wanted)
        if taken:
            self._queue = deque(item for item in self._queue if item.id not in wanted)
        return taken

    def drain(self) -> tuple[Outgoing, ...]:
        """Take every line out (on give-up or close) and return them in order."""
        items = tuple(self._queue)
        self._queue.clear()
        return items
