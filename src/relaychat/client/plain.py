"""A plain-line connection: raw text lines to any line-based TCP service, reconnecting.

For the services of the sockets tutorial this project grew from (its server replies with bare
text and no line ending), for netcat, and for relaychat's own plain-text listener. Nothing IRC
is sent: each line the user sends goes out as UTF-8 text plus ``\\n``; what comes back is split
into lines, and text that arrives without a line ending counts as a line once the service
pauses for ``pause`` seconds, or closes the connection.

::

    async with PlainClient("127.0.0.1", 12345) as link:
        await link.send("hello")
        async for event in link.events(LineReceived):
            print(event.text)

Rules:
1. The link behaves like :class:`~relaychat.client.Client`'s: the same
   :class:`~relaychat.client.ClientConfig` settings (``connect_timeout``, ``reconnect``,
   ``backoff_*``, ``max_attempts``, ``outbox_size``, ``event_queue``), the same reconnect loop
   and delays (:func:`~relaychat.client.reconnect.reconnect_loop`), the same link events
   (:class:`Connected`, :class:`Disconnected`, :class:`Reconnecting`, :class:`GaveUp`), the same
   bounded :class:`~relaychat.client.outbox.Outbox` and :class:`~relaychat.client.Delivery`
   reports.
2. Nothing accepted is lost silently. A bare TCP service confirms nothing, so a line counts as
   delivered once the operating system took its bytes. A line still buffered when the
   connection drops is listed in :attr:`Disconnected.unconfirmed` (its delivery fails as "maybe
   delivered"); a line never written is reported by :class:`GaveUp` and :meth:`close`.
   Lines are written a batch at a time, the next once the last was taken: a service that does
   not read fills the bounded outbox (``OutboxFull``), never an unbounded write buffer.
3. Lines are reported as :class:`~relaychat.client.Outgoing` values whose ``target`` is the
   service (``host:port``); their ``command`` is always ``PRIVMSG`` (what ``Outgoing`` allows),
   but only the text goes on the wire.
4. :class:`PlainLines` (bytes in, text lines out) is pure; :class:`PlainClient` is the glue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from relaychat.client.config import ClientConfig
from relaychat.client.delivery import Delivery, EventHub
from relaychat.client.errors import ClientClosed, GaveUpError
from relaychat.client.events import (
    Connected,
    Disconnected,
    Event,
    GaveUp,
    Outgoing,
)
from relaychat.client.link import describe, open_link
from relaychat.client.outbox import Outbox
from relaychat.client.reconnect import Attempt, reconnect_loop
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import decode_line

__all__ = [
    "DEFAULT_PAUSE",
    "MAX_LINE",
    "PLAIN_PORT",
    "LineReceived",
    "PlainClient",
    "PlainLines",
    "split_lines",
]

log = logging.getLogger("relaychat.client.plain")

#: The port of the sockets tutorial's server, and of relaychat's plain-text listener.
PLAIN_PORT = 12345
#: Seconds of silence after which text without a line ending counts as a line.
DEFAULT_PAUSE = 0.3
#: The longest line received, in bytes; longer ones are dropped (and a warning is logged).
MAX_LINE = 16384
#: About how many bytes of lines are written at once (the next batch waits until they are sent).
WRITE_BATCH = 65536


@dataclass(frozen=True, slots=True)
class LineReceived(Event):
    """One line from the service.

    Attributes:
        text: the line without its ending (UTF-8, or latin-1 when it is not valid UTF-8).
        sender: the service's host, as given.
        unterminated: it came without a line ending and was taken as a line after a pause,
            or when the connection ended.
    """

    text: str
    sender: str
    unterminated: bool = False


def split_lines(text: str) -> list[str]:
    """The lines to write for ``text``: one per line of it, without empty ones or NUL.

    Args:
        text: what the user typed (any line endings).

    Returns:
        The lines, in order (an empty list for blank text).
    """
    lines = text.replace("\0", "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return [line for line in lines if line.strip()]


def _incomplete_utf8(data: bytes) -> int:
    """How many bytes at the end of ``data`` start a UTF-8 character that is not complete."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # not a continuation byte: the character starts here
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
            if byte & 0x80 == 0 or byte & 0xF8 == 0xF8:
                return 0  # ASCII, or not UTF-8 at all
            return back if back < need else 0
    return 0


class PlainLines:
    """Bytes from the service in, text lines out (pure; the caller keeps the time).

    Args:
        max_line: the longest line kept, in bytes (a security limit: it bounds memory).
    """

    __slots__ = ("_buf",)

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buf = LineBuffer(max_line)

    @property
    def pending(self) -> bool:
        """Whether text without a line ending is held (call :meth:`flush` after a pause)."""
        return self._buf.pending > 0

    def feed(self, data: bytes) -> list[str | Overlong]:
        """Add ``data``; return the lines it completed (and markers for overlong ones).

        The caller then waits: if nothing more arrives for a pause, :meth:`flush`.
        """
        items = self._buf.feed(data)
        return [item if isinstance(item, Overlong) else decode_line(item) for item in items]

    def flush(self, *, final: bool = False) -> str | None:
        """Take the text held without a line ending as one line.

        Args:
            final: the connection ended; also take a character cut in the middle (else its
                first bytes stay held until the rest arrives).

        Returns:
            The line, or ``None`` when nothing (complete) was held.
        """
        data = self._buf.take_pending()
        cut = 0 if final else _incomplete_utf8(data)
        if cut:
            data, rest = data[:-cut], data[-cut:]
            self._buf.feed(rest)
        if not data.strip():
            return None
        return decode_line(data)

    def reset(self) -> None:
        """Forget what is held (a new connection)."""
        self._buf.take_pending()


class PlainClient:
    """A persistent plain-text connection that reconnects like :class:`~relaychat.client.Client`.

    Args:
        host: the service's host (default: the config's).
        port: its port (default: the config's; :data:`PLAIN_PORT` without a config).
        config: the settings (timeouts, reconnect, limits); the nick is only a label here.
        pause: seconds of silence after which text without a line ending is a line.
        max_line: the longest line received, in bytes.
        clock: a monotonic clock in seconds.
        rand: the random source of the backoff jitter.
        settings: any other :class:`ClientConfig` field (``backoff_max=...``).

    Raises:
        ConfigError: a setting is wrong.
        ValueError: ``pause`` is not positive.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        config: ClientConfig | None = None,
        pause: float = DEFAULT_PAUSE,
        max_line: int = MAX_LINE,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        **settings: Any,
    ) -> None:
        if pause <= 0:
            raise ValueError("pause must be positive")
        given = {k: v for k, v in dict(host=host, port=port, **settings).items() if v is not None}
        if config is None:
            given.setdefault("nick", "plain")
            given.setdefault("port", PLAIN_PORT)
            config = ClientConfig(**given)
        else:
            config = dataclasses.replace(config, **given)
        self.config = config
        self.pause = pause
        self._clock = clock
        self._rand = rand
        self._lines = PlainLines(max_line)
        self._outbox = Outbox(config.outbox_size)
        self._deliveries: dict[int, Delivery] = {}
        self._unflushed: list[Outgoing] = []  # written, still in the transport's buffer
        self._next_id = 0
        self._hub = EventHub(config.event_queue, clock)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._connected = False
        self._was_connected = False
        self._last_data = 0.0
        self._held = False  # the text held after a pause is the first bytes of a character
        self._gave_up: GaveUpError | None = None
        self._closing = False
        self._closed = False

    # --- state ------------------------------------------------------------------------------

    @property
    def peer(self) -> str:
        """The service as ``host:port`` (``[v6]:port``)."""
        host = self.config.host
        return f"[{host}]:{self.config.port}" if ":" in host else f"{host}:{self.config.port}"

    @property
    def nick(self) -> str:
        """The user's label (the config's nick; the service never hears it)."""
        return self.config.nick

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now."""
        return self._connected

    def is_channel(self, name: str) -> bool:
        """Always ``False``: a plain service has no channels."""
        return False

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> PlainClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start connecting in the background (returns at once).

        Raises:
            ClientClosed: the client was closed.
        """
        if self._closed or self._closing:
            raise ClientClosed()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="plain")

    async def connect(self, timeout: float | None = None) -> None:
        """Start, and wait until connected (through as many attempts as the config allows).

        Raises:
            GaveUpError: the client gave up before it could connect.
            TimeoutError: not connected within ``timeout`` seconds (it keeps trying).
        """
        self.start()
        deadline = None if timeout is None else self._clock() + timeout
        while not self._connected:
            if self._gave_up is not None:
                raise self._gave_up
            if deadline is not None and self._clock() >= deadline:
                raise TimeoutError("not connected")
            await self._hub.wait_change(deadline)

    async def close(self, timeout: float = 5.0) -> tuple[Outgoing, ...]:
        """Write what is queued (within ``timeout`` while connected), then close.

        Returns:
            The lines that were never written (their deliveries fail with ``NotSent``).
        """
        if self._closed:
            return ()
        deadline = self._clock() + timeout
        while (len(self._outbox) or self._unflushed) and self._connected:
            if self._clock() >= deadline:
                break
            await self._hub.wait_change(deadline)
        self._closing = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        unsent = self._outbox.drain()
        self._fail(unsent, "client closed")
        self._closed = True
        self._hub.finish()
        return unsent

    # --- sending and events -----------------------------------------------------------------

    async def send(self, text: str) -> Delivery:
        """Queue ``text`` (one line per line of it), written as soon as the link is up.

        Returns:
            The :class:`Delivery`: it succeeds once the bytes were handed to the system.

        Raises:
            OutboxFull: the outbox had no room; nothing was queued (``unsent`` lists the lines).
            ClientClosed: the client is closed or gave up.
            ValueError: ``text`` holds no line to send.
        """
        if self._gave_up is not None:
            raise ClientClosed(str(self._gave_up))
        if self._closed or self._closing:
            raise ClientClosed()
        texts = split_lines(text)
        if not texts:
            raise ValueError("nothing to send")
        lines = tuple(
            Outgoing(self._next_id + i, "PRIVMSG", self.peer, line) for i, line in enumerate(texts)
        )
        self._outbox.put(lines)  # all or nothing
        self._next_id += len(lines)
        delivery = Delivery(lines)
        for line in lines:
            self._deliveries[line.id] = delivery
        self._wake.set()
        return delivery

    def events(self, *types: type[Event]) -> AsyncIterator[Event]:
        """Every event from now on (only ``types`` when given), until the client closes.

        Raises (from the iterator):
            SlowConsumer: the consumer fell ``config.event_queue`` events behind.
        """
        return self._hub.subscribe(types or (Event,), ended=self._closed)

    # --- internals --------------------------------------------------------------------------

    def _settle(self, lines: list[Outgoing] | tuple[Outgoing, ...]) -> None:
        for line in lines:
            delivery = self._deliveries.pop(line.id, None)
            if delivery is not None:
                delivery._settle(line)

    def _fail(self, lines: tuple[Outgoing, ...], reason: str, *, maybe: bool = False) -> None:
        for line in lines:
            delivery = self._deliveries.pop(line.id, None)
            if delivery is not None:
                delivery._settle(line, reason, maybe=maybe)

    async def _run(self) -> None:
        reason = await reconnect_loop(
            self._attempt,
            config=self.config,
            rand=self._rand,
            closing=lambda: self._closing,
            publish=self._hub.publish,
            log=log,
            name="plain client",
        )
        if reason is None:
            return
        unsent = self._outbox.drain()
        self._fail(unsent, reason)
        self._gave_up = GaveUpError(reason, unsent)
        self._hub.publish(GaveUp(reason, unsent))
        self._hub.finish()

    async def _attempt(self) -> Attempt:
        self._was_connected = False
        reason = await self._connect_once()
        return Attempt(reason, reached=self._was_connected)

    async def _connect_once(self) -> str:
        cfg = self.config
        opened = await open_link(cfg, self.peer)
        if isinstance(opened, str):
            return opened
        reader, writer = opened
        # No buffering above the OS: drain() then returns only once every byte was handed
        # over, which is when a line counts as delivered.
        writer.transport.set_write_buffer_limits(high=0)
        self._lines.reset()
        self._held = False
        self._connected = self._was_connected = True
        self._hub.publish(Connected(cfg.nick, self.peer))
        self._hub.signal()
        reason = "connection closed"
        try:
            reason = await self._pump(reader, writer)
        except asyncio.CancelledError:
            reason = "client closed"
            raise
        finally:
            self._connected = False
            writer.transport.abort()
            self._received_end()
            unconfirmed, self._unflushed = tuple(self._unflushed), []
            self._fail(unconfirmed, reason, maybe=True)
            self._hub.publish(Disconnected(reason, unconfirmed))
            self._hub.signal()
        return reason

    def _received(self, items: list[str | Overlong]) -> None:
        for item in items:
            if isinstance(item, Overlong):
                log.warning(
                    "a line from %s of more than %d bytes was dropped", self.peer, item.size - 1
                )
            elif item.strip():
                self._hub.publish(LineReceived(item, self.config.host))

    def _received_end(self) -> None:
        """The connection ended: what it sent without a line ending is a line."""
        last = self._lines.flush(final=True)
        if last is not None:
            self._hub.publish(LineReceived(last, self.config.host, unterminated=True))

    def _write_out(self, writer: asyncio.StreamWriter) -> None:
        """Write the next batch of queued lines once the last one was taken by the system.

        Flow control: while the service does not read, lines wait in the (bounded) outbox, not
        in an ever-growing write buffer.
        """
        if self._unflushed or not len(self._outbox) or writer.is_closing():
            return
        size = 0
        while len(self._outbox) and size < WRITE_BATCH:
            line = self._outbox.pop()
            self._unflushed.append(line)
            size += len(line.text) + 1
        writer.write("".join(line.text + "\n" for line in self._unflushed).encode("utf-8"))
        if writer.transport.get_write_buffer_size() == 0:
            self._settle(self._unflushed)
            self._unflushed = []
            self._hub.signal()
            self._wake.set()  # the next batch, if any

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Move lines until the connection ends; returns why it ended."""
        read: asyncio.Future[bytes] | None = None
        drain: asyncio.Future[None] | None = None
        try:
            while True:
                self._wake.clear()
                self._write_out(writer)
                if read is None:
                    read = asyncio.ensure_future(reader.read(65536))
                if self._unflushed and drain is None:
                    drain = asyncio.ensure_future(writer.drain())
                wake = asyncio.ensure_future(self._wake.wait())
                waits: set[asyncio.Future[Any]] = {read, wake}
                if drain is not None:
                    waits.add(drain)
                timeout = None
                if self._lines.pending:
                    timeout = max(0.0, self._last_data + self.pause - self._clock())
                done, _ = await asyncio.wait(
                    waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                if drain is not None and drain in done:
                    task, drain = drain, None
                    try:
                        task.result()
                    except (OSError, ssl.SSLError) as exc:
                        return describe(exc)
                    if writer.transport.get_write_buffer_size() == 0:
                        self._settle(self._unflushed)
                        self._unflushed = []
                        self._hub.signal()
                    else:  # not paused yet the buffer holds bytes: look again shortly
                        await asyncio.sleep(0.01)
                if read in done:
                    task2, read = read, None
                    try:
                        data = task2.result()
                    except (OSError, ssl.SSLError) as exc:
                        return describe(exc)
                    if not data:
                        return "the service closed the connection"
                    self._last_data = self._clock()
                    self._received(self._lines.feed(data))
                    self._held = False
                elif self._lines.pending and self._clock() >= self._last_data + self.pause:
                    # A character cut in two is held back for one more pause, then taken as is.
                    line = self._lines.flush(final=self._held)
                    self._held = self._lines.pending
                    if self._held:
                        self._last_data = self._clock()
                    if line is not None:
                        self._hub.publish(LineReceived(line, self.config.host, unterminated=True))
        finally:
            for fut in (read, drain):
                if fut is not None:
                    fut.cancel()
