"""What callers hold while the client works: a :class:`Delivery` per send, an
:class:`EventStream` per ``events()`` iterator (handed out by the client's :class:`EventHub`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Generator
from typing import Any

from relaychat.client.errors import ClientError, NotSent, Rejected
from relaychat.client.events import Event, Outgoing

__all__ = ["END", "Delivery", "EventHub", "EventStream", "SlowConsumer"]

#: Put in an :class:`EventStream` to end it.
END: Any = object()


class SlowConsumer(ClientError):
    """An ``events()`` iterator fell ``limit`` events behind and was closed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"event consumer fell {limit} events behind")
        self.limit = limit


class Delivery:
    """What became of one :meth:`Client.send`: ``await delivery`` to learn it (and its msgid).

    Attributes:
        lines: the lines the text became, in order.
    """

    __slots__ = (
        "_done",
        "_failed",
        "_maybe",
        "_msgids",
        "_pending",
        "_reason",
        "_rejection",
        "_repeated",
        "lines",
    )

    def __init__(self, lines: tuple[Outgoing, ...]) -> None:
        self.lines = lines
        self._pending = {line.id for line in lines}
        self._failed: list[Outgoing] = []
        self._reason = ""
        self._maybe = False
        self._rejection: tuple[str, str] | None = None
        self._msgids: dict[int, str] = {}
        self._repeated: set[int] = set()
        self._done = asyncio.Event()

    def done(self) -> bool:
        """Whether every line has its outcome."""
        return self._done.is_set()

    @property
    def confirmed(self) -> bool:
        """Whether the server confirmed every line."""
        return self.done() and not self._failed

    @property
    def exactly_once(self) -> bool:
        """Whether every line is confirmed and none may have arrived twice (see
        :attr:`maybe_duplicated`)."""
        return self.confirmed and not self._repeated

    @property
    def maybe_duplicated(self) -> tuple[Outgoing, ...]:
        """The lines written again after a drop to a server that does not deduplicate them
        (``delivery="at_least_once"``): each may have arrived twice."""
        return tuple(line for line in self.lines if line.id in self._repeated)

    @property
    def msgids(self) -> tuple[str | None, ...]:
        """The server's message id of each line, in order (``None`` where it gave none: not
        confirmed yet, or no ``echo-message``)."""
        return tuple(self._msgids.get(line.id) for line in self.lines)

    @property
    def msgid(self) -> str | None:
        """The message id of the first line (most texts are one line), or ``None``."""
        return self._msgids.get(self.lines[0].id) if self.lines else None

    @property
    def error(self) -> NotSent | None:
        """The failure, once done: which lines did not make it and why (``None`` if none)."""
        if not self._failed:
            return None
        unsent = tuple(sorted(self._failed, key=lambda line: line.id))
        if self._rejection is not None and not self._maybe:
            return Rejected(unsent, *self._rejection)
        return NotSent(self._reason, unsent, maybe_delivered=self._maybe)

    def _settle(
        self,
        line: Outgoing,
        failure: str | None = None,
        *,
        maybe: bool = False,
        msgid: str | None = None,
    ) -> None:
        if line.id not in self._pending:
            return
        self._pending.discard(line.id)
        if msgid:
            self._msgids[line.id] = msgid
        if failure is not None:
            self._failed.append(line)
            self._reason = self._reason or failure
            self._maybe = self._maybe or maybe
        if not self._pending:
            self._done.set()

    def _repeat(self, line: Outgoing) -> None:
        self._repeated.add(line.id)

    async def wait(self, timeout: float | None = None) -> str | None:
        """Wait until every line is confirmed.

        Returns:
            :attr:`msgid`: the server's message id (of the first line), when it gave one.

        Raises:
            NotSent: some lines were not delivered (``Rejected`` when the server refused them).
            TimeoutError: no outcome within ``timeout`` seconds (the lines are still on their way).
        """
        async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
            await self._done.wait()
        err = self.error
        if err is not None:
            raise err
        return self.msgid

    async def settled(self, timeout: float | None = None) -> NotSent | None:
        """Wait until every line has its outcome; return the failure (``None`` if all arrived).

        Raises:
            TimeoutError: no outcome within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
            await self._done.wait()
        return self.error

    def __await__(self) -> Generator[Any, None, str | None]:
        return self.wait().__await__()


class EventStream:
    """One ``events()`` iterator: a bounded queue that ends with the client.

    Args:
        owner: the list of streams it is in (it leaves it when it ends).
        limit: the most events held before the consumer counts as too slow.
        types: the event types it wants.
    """

    def __init__(
        self, owner: list[EventStream], limit: int, types: tuple[type[Event], ...]
    ) -> None:
        self.owner = owner
        self.limit = limit
        self.types = types
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.overflowed = False

    def put(self, event: Any) -> None:
        if self.overflowed:
            return
        if event is not END and not isinstance(event, self.types):
            return
        if event is not END and self.queue.qsize() >= self.limit:
            self.overflowed = True
            self.queue.put_nowait(END)
            return
        self.queue.put_nowait(event)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        item = await self.queue.get()
        if item is END:
            with contextlib.suppress(ValueError):
                self.owner.remove(self)
            if self.overflowed:
                raise SlowConsumer(self.limit)
            raise StopAsyncIteration
        assert isinstance(item, Event)
        return item


class EventHub:
    """A client's ``events()`` streams, and a signal for those who wait on its state.

    The client publishes each event once and every stream that wants it gets it;
    :meth:`finish` ends them all. Whenever its state changes (connected or not, the outbox
    emptied, given up) the client calls :meth:`signal`, which wakes :meth:`wait_change`.

    Args:
        limit: the most events a stream holds before its consumer counts as too slow.
        clock: the monotonic clock, in seconds, that deadlines are read on.
    """

    __slots__ = ("_changed", "_clock", "limit", "streams")

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.streams: list[EventStream] = []
        self._clock = clock
        self._changed = asyncio.Event()

    def subscribe(self, types: tuple[type[Event], ...], *, ended: bool = False) -> EventStream:
        """A new stream of every event of ``types`` from now on.

        Args:
            types: the event types it wants.
            ended: the client is closed already: the stream ends at once.

        Returns:
            The stream; the caller iterates it (it raises :class:`SlowConsumer` if it lags).
        """
        stream = EventStream(self.streams, self.limit, types)
        self.streams.append(stream)
        if ended:
            stream.put(END)
        return stream

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every stream that wants it."""
        for stream in list(self.streams):
            stream.put(event)

    def finish(self) -> None:
        """End every stream (the client closed or gave up), and :meth:`signal`."""
        for stream in list(self.streams):
            stream.put(END)
        self.signal()

    def signal(self) -> None:
        """Wake everyone in :meth:`wait_change`; they look at the client's state again."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, deadline: float | None) -> None:
        """Wait for the next :meth:`signal`, or until ``deadline`` (on the clock) at the latest.

        Returns either way, without saying which: the caller checks its state and deadline.
        """
        timeout = None if deadline is None else max(0.0, deadline - self._clock())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
                await self._changed.wait()
