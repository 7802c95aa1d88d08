"""The asyncio client: a persistent connection that survives drops and loses nothing.

This module is glue: it opens sockets (:func:`~relaychat.client.link.open_link`), moves bytes
between them and the sans-I/O :class:`~relaychat.client.protocol.ClientProtocol`, sleeps until
the protocol's next deadline, reconnects through
:func:`~relaychat.client.reconnect.reconnect_loop`, and turns the protocol's events and outcomes
into what callers await. Every IRC decision is the protocol's.

::

    async with Client("127.0.0.1", 6667, nick="bot") as client:
        await client.join("#c")
        msgid = await client.send("#c", "hello", confirm=True)
        async for event in client.events():
            ...

Delivery across drops is :attr:`Client.delivery` (``guarantee.py``, docs/delivery.md): exactly
once against a server that deduplicates idempotency keys, as configured otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from relaychat.client.config import ClientConfig
from relaychat.client.delivery import Delivery, EventHub, EventStream, SlowConsumer
from relaychat.client.errors import (
    ClientClosed,
    ConnectionClosed,
    GaveUpError,
    RequestFailed,
    RequestTimeout,
)
from relaychat.client.events import Connected, Disconnected, Event, GaveUp, Outgoing
from relaychat.client.link import describe, open_link
from relaychat.client.protocol import ClientProtocol
from relaychat.client.reconnect import Attempt, reconnect_loop
from relaychat.client.requests import (
    Confirmed,
    Dropped,
    LineRejected,
    Outcome,
    Repeated,
    Reply,
    RequestDone,
    RequestLost,
    Unconfirmed,
)

__all__ = ["Client"]

log = logging.getLogger("relaychat.client")

E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None] | None]
#: Bytes buffered for writing beyond which the link is considered stuck.
MAX_WRITE_BUFFER = 1 << 20


class Client:
    """A persistent IRC connection: registers, rejoins, reconnects, and reports every line.

    Args:
        host: the server (default: ``RELAYCHAT_HOST``, else 127.0.0.1).
        port: its port (default: ``RELAYCHAT_PORT``, else 6667, or 6697 with TLS).
        nick: the nick (default: ``RELAYCHAT_NICK``; required one way or the other).
        tls: ``True`` for TLS with the system's trust store, or an :class:`ssl.SSLContext`.
        password: the server password (PASS).
        sasl: ``(account, password)`` for SASL PLAIN; the client refuses to go on without it.
        config: a whole :class:`ClientConfig` (the other arguments override its fields).
        clock: a monotonic clock in seconds (injectable for tests).
        rand: the random source of the backoff jitter.
        environ: where to read ``RELAYCHAT_*`` from (``os.environ`` when ``None``).
        settings: any other :class:`ClientConfig` field (``ping_interval=...``, ``channels=...``).

    Raises:
        ConfigError: a setting is wrong, or no nick was given.
    """

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        nick: str | None = None,
        tls: bool | ssl.SSLContext | None = None,
        password: str | None = None,
        sasl: tuple[str, str] | None = None,
        config: ClientConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        environ: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        given: dict[str, Any] = dict(
            host=host, port=port, nick=nick, tls=tls, password=password, sasl=sasl, **settings
        )
        if config is None:
            config = ClientConfig.from_env(environ, **given)
        else:
            config = dataclasses.replace(
                config, **{k: v for k, v in given.items() if v is not None}
            )
        self.config = config
        self._clock = clock
        self._rand = rand
        self._proto = ClientProtocol(config, clock())
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._hub = EventHub(config.event_queue, clock)
        self._handlers: list[tuple[tuple[type[Event], ...], Handler]] = []
        self._dispatcher: asyncio.Task[None] | None = None
        self._deliveries: dict[int, Delivery] = {}
        self._requests: dict[int, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._gave_up: GaveUpError | None = None
        self._closing = False
        self._closed = False
        self._was_ready = False

    # --- state ------------------------------------------------------------------------------

    @property
    def nick(self) -> str:
        """The nick in use (it may be a fallback such as ``nick_``)."""
        return self._proto.nick

    @property
    def connected(self) -> bool:
        """Whether the client is registered and chatting right now."""
        return self._proto.ready and not self._proto.dead

    @property
    def channels(self) -> list[str]:
        """The channels the client is in right now."""
        return list(self._proto.joined.values())

    @property
    def lag(self) -> float | None:
        """Round-trip time of the last answered PING in seconds (keepalive or delivery
        confirmation), or ``None`` before the first on this connection."""
        return self._proto.keepalive.lag

    @property
    def delivery(self) -> str | None:
        """The delivery guarantee in force: ``"exactly_once"``, ``"at_least_once"`` or
        ``"at_most_once"``, as decided on the current (or last) connection from the config's
        ``delivery`` and what the server offers; ``None`` before the first registration when it
        is the server's to decide (``delivery="auto"``)."""
        return self._proto.guarantee

    @property
    def caps(self) -> frozenset[str]:
        """The IRCv3 capabilities enabled on this connection."""
        return frozenset(self._proto.caps)

    @property
    def isupport(self) -> dict[str, str]:
        """The server's ISUPPORT (005) tokens on this connection, names upper case, values as
        sent (escapes such as ``\\x20`` left in)."""
        return dict(self._proto.isupport)

    def is_channel(self, name: str) -> bool:
        """Whether ``name`` is a channel name on this server."""
        return self._proto.is_channel(name)

    @property
    def local_address(self) -> str | None:
        """The IP address of this end of the link to the server (``None`` when not connected);
        DCC listens there by default (:mod:`relaychat.client.dcc`)."""
        writer = self._writer
        name = writer.get_extra_info("sockname") if writer is not None else None
        return str(name[0]) if isinstance(name, tuple) and name else None

    # --- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
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
        """Start connecting in the background (returns at once; see :meth:`connect`).

        Raises:
            ClientClosed: the client was closed.
        """
        if self._closed or self._closing:
            raise ClientClosed()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="relaychat")
        if self._handlers and self._dispatcher is None:
            self._start_dispatcher()

    async def connect(self, timeout: float | None = None) -> None:
        """Start, and wait until registered (through as many attempts as the config allows).

        Raises:
            GaveUpError: the client gave up before it could register.
            TimeoutError: not registered within ``timeout`` seconds (it keeps trying).
        """
        self.start()
        await self._wait_ready(None if timeout is None else self._clock() + timeout)

    async def close(
        self, reason: str = "Client quit", timeout: float = 5.0
    ) -> tuple[Outgoing, ...]:
        """Send what is queued and have it confirmed (within ``timeout``, across reconnects),
        QUIT, and stop.

        Returns:
            The lines that were never sent (their deliveries fail with :class:`NotSent`).
        """
        if self._closed:
            return ()
        deadline = self._clock() + timeout
        proto = self._proto
        while (
            proto.busy
            and self._task is not None
            and not self._task.done()
            and self._clock() < deadline
        ):
            await self._hub.wait_change(deadline)
        self._closing = True
        if proto.connected and not proto.dead:
            proto.quit(reason, self._clock())
            self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task_done()), min(1.0, timeout))
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        unsent = proto.give_up("client closed", announce=False) if not proto.closed else ()
        self._flush()
        self._closed = True
        self._hub.finish()
        if self._dispatcher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._dispatcher, 1.0)
        return unsent

    async def _task_done(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({self._task})

    # --- chatting ---------------------------------------------------------------------------

    async def send(
        self,
        target: str,
        text: str,
        *,
        notice: bool = False,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> Delivery:
        """Queue ``text`` for ``target`` (split to fit), sent as soon as pacing and the link allow.

        Args:
            target: a channel or a nick.
            text: any length; line breaks start new lines.
            notice: send a NOTICE instead of a PRIVMSG.
            confirm: wait until the server confirmed every line (else return once queued).
            timeout: with ``confirm``, the longest wait.

        Returns:
            The :class:`Delivery`; ``await`` it to learn whether every line arrived (it gives
            the server's msgid).

        Raises:
            OutboxFull: the outbox had no room; nothing was queued (``unsent`` lists the lines).
            NotSent: with ``confirm``, some lines were not delivered.
            ClientClosed: the client is closed or gave up.
            ValueError: bad target or empty text.
        """
        self._check_open()
        lines = self._proto.send_text(target, text, self._clock(), notice=notice)
        return await self._track(lines, confirm, timeout)

    async def send_tags(
        self,
        target: str,
        tags: Mapping[str, str],
        *,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> Delivery:
        """Queue a TAGMSG carrying client-only ``tags`` (``{"+typing": "active"}``) for
        ``target`` (IRCv3 message-tags); delivered like a message.

        Raises:
            as :meth:`send` (``ValueError`` also for a tag name that is not ``+name``).
        """
        self._check_open()
        line = self._proto.send_tags(target, dict(tags), self._clock())
        return await self._track((line,), confirm, timeout)

    async def _track(
        self, lines: tuple[Outgoing, ...], confirm: bool, timeout: float | None
    ) -> Delivery:
        delivery = Delivery(lines)
        for line in lines:
            self._deliveries[line.id] = delivery
        self._flush()
        if confirm:
            await delivery.wait(timeout)
        return delivery

    async def request(
        self, command: str, *params: str, timeout: float | None = None, check: bool = False
    ) -> Reply:
        """Send a command and return the server's whole reply to it.

        Pairing uses IRCv3 labeled-response when the server offers it, otherwise a PING marker
        after the command (the server answers in order). Waits for the connection first.

        Raises:
            RequestFailed: ``check`` is set and the reply holds an error.
            RequestTimeout: no complete reply within ``timeout`` (default: the config's).
            ConnectionClosed: the connection dropped before the reply was complete.
            GaveUpError, ClientClosed: the client stopped.
        """
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = self._clock() + timeout
        try:
            await self._wait_ready(deadline)
        except TimeoutError:
            raise RequestTimeout(command, timeout) from None
        rid = self._proto.request(command, *params, now=self._clock())
        reply = await self._await_request(rid, command, deadline, timeout)
        if check and not reply.ok:
            raise RequestFailed(reply)
        return reply

    async def join(self, channel: str, key: str = "", *, timeout: float | None = None) -> None:
        """Join ``channel``, and rejoin it after every reconnect until :meth:`part`.

        Raises:
            RequestFailed: the server refused (banned, invite-only...); it is not rejoined.
            RequestTimeout: not joined within ``timeout``.
        """
        timeout = self.config.request_timeout if timeout is None else timeout
        deadline = self._clock() + timeout
        while True:
            try:
                await self._wait_ready(deadline)
            except TimeoutError:
                raise RequestTimeout("JOIN", timeout) from None
            rid = self._proto.join(channel, self._clock(), key)
            if rid is None:
                continue
            try:
                reply = await self._await_request(rid, "JOIN", deadline, timeout)
            except ConnectionClosed:
                continue  # rejoined on the next connection
            if not reply.ok:
                self._proto.forget_channel(channel)
                raise RequestFailed(reply)
            return

    async def part(self, channel: str, reason: str = "", *, timeout: float | None = None) -> None:
        """Leave ``channel`` (and stop rejoining it); returns at once when disconnected."""
        rid = self._proto.part(channel, self._clock(), reason)
        if rid is not None:
            timeout = self.config.request_timeout if timeout is None else timeout
            with contextlib.suppress(ConnectionClosed):
                await self._await_request(rid, "PART", self._clock() + timeout, timeout)

    # --- events -----------------------------------------------------------------------------

    def events(self, *types: type[Event]) -> AsyncIterator[Event]:
        """Every event from now on (only ``types`` when given), until the client closes.

        Raises (from the iterator):
            SlowConsumer: the consumer fell ``config.event_queue`` events behind.
        """
        return self._hub.subscribe(types or (Event,), ended=self._closed)

    def on(self, *types: type[E]) -> Callable[[Callable[[E], Any]], Callable[[E], Any]]:
        """Decorator: call the function (sync or async) for every event of ``types``.

        Handlers run in order, one at a time, outside the connection loop; an exception in one
        is logged and the next event still comes.
        """

        def register(fn: Callable[[E], Any]) -> Callable[[E], Any]:
            self._handlers.append((types or (Event,), fn))
            if self._task is not None and self._dispatcher is None:
                self._start_dispatcher()
            return fn

        return register

    def _start_dispatcher(self) -> None:
        sub = self._hub.subscribe((Event,))
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(sub))

    async def _dispatch(self, sub: EventStream) -> None:
        try:
            async for event in sub:
                for types, fn in list(self._handlers):
                    if isinstance(event, types):
                        try:
                            result = fn(event)
                            if isinstance(result, Awaitable):
                                await result
                        except Exception:
                            log.exception("event handler %r failed on %r", fn, event)
        except SlowConsumer:
            log.error("event handlers fell behind; they get no more events")

    # --- internals --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._gave_up is not None:
            raise ClientClosed(str(self._gave_up))
        if self._closed or self._closing:
            raise ClientClosed()

    async def _wait_ready(self, deadline: float | None) -> None:
        while not self.connected:
            if self._gave_up is not None:
                raise self._gave_up
            self._check_open()
            if self._task is None:
                raise ClientClosed("the client is not started (use connect() or async with)")
            if deadline is not None and self._clock() >= deadline:
                raise TimeoutError("not connected")
            await self._hub.wait_change(deadline)

    async def _await_request(
        self, rid: int, command: str, deadline: float, timeout: float
    ) -> Reply:
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._requests[rid] = fut
        self._flush()
        try:
            async with asyncio.timeout(max(0.0, deadline - self._clock())):  # (see open_link)
                return await fut
        except TimeoutError:
            raise RequestTimeout(command, timeout) from None
        finally:
            self._requests.pop(rid, None)

    def _flush(self) -> None:
        """Write what the protocol has to say; hand out its events and outcomes."""
        proto = self._proto
        data = proto.data_to_send()
        writer = self._writer
        if data and writer is not None and not writer.is_closing():
            writer.write(data)
            if writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
                proto.mark_dead("the server stopped reading (write buffer full)")
        changed = False
        for outcome in proto.outcomes():
            self._settle(outcome)
            changed = True  # close() waits for the outbox to empty
        for event in proto.events_received():
            if isinstance(event, Connected | Disconnected | GaveUp):
                changed = True
                self._was_ready = self._was_ready or isinstance(event, Connected)
            self._hub.publish(event)
        if changed:
            self._hub.signal()
        self._wake.set()

    def _settle(self, outcome: Outcome) -> None:
        if isinstance(outcome, Confirmed):
            msgids = outcome.msgids or (None,) * len(outcome.items)
            for line, msgid in zip(outcome.items, msgids, strict=True):
                self._pop_delivery(line, msgid=msgid)
        elif isinstance(outcome, Repeated):
            for line in outcome.items:
                d = self._deliveries.get(line.id)
                if d is not None:
                    d._repeat(line)
        elif isinstance(outcome, LineRejected):
            d = self._deliveries.pop(outcome.item.id, None)
            if d is not None:
                d._rejection = (outcome.code, outcome.text)
                d._settle(outcome.item, f"{outcome.code} {outcome.text}")
        elif isinstance(outcome, Unconfirmed | Dropped):
            maybe = isinstance(outcome, Unconfirmed)
            for line in outcome.items:
                self._pop_delivery(line, outcome.reason, maybe=maybe)
        elif isinstance(outcome, RequestDone):
            fut = self._requests.get(outcome.id)
            if fut is not None and not fut.done():
                fut.set_result(outcome.reply)
        elif isinstance(outcome, RequestLost):
            fut = self._requests.get(outcome.id)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionClosed(outcome.reason))

    def _pop_delivery(
        self,
        line: Outgoing,
        failure: str | None = None,
        *,
        maybe: bool = False,
        msgid: str | None = None,
    ) -> None:
        d = self._deliveries.pop(line.id, None)
        if d is not None:
            d._settle(line, failure, maybe=maybe, msgid=msgid)

    async def _run(self) -> None:
        reason = await reconnect_loop(
            self._attempt,
            config=self.config,
            rand=self._rand,
            closing=lambda: self._closing,
            publish=self._hub.publish,
            log=log,
            name="client",
        )
        if reason is None:
            return
        unsent = self._proto.give_up(reason)
        self._gave_up = GaveUpError(reason, unsent)
        self._flush()
        self._hub.finish()

    async def _attempt(self) -> Attempt:
        self._was_ready = False
        reason = await self._connect_once()
        proto = self._proto
        return Attempt(
            reason, reached=self._was_ready, fatal=proto.fatal, retry_after=proto.retry_after
        )

    async def _connect_once(self) -> str:
        cfg = self.config
        opened = await open_link(cfg, f"{cfg.host}:{cfg.port}")
        if isinstance(opened, str):
            return opened
        reader, writer = opened
        if self._closing:  # close() began while connecting: do not start a session
            writer.transport.abort()
            return "client closed"
        self._writer = writer
        proto = self._proto
        proto.connection_made(self._clock())
        reason = "connection closed"
        try:
            reason = await self._pump(reader)
        except asyncio.CancelledError:
            reason = "client closed"
            raise
        finally:
            self._writer = None
            writer.transport.abort()
            proto.connection_lost(reason, self._clock())
            self._flush()
        return reason

    async def _pump(self, reader: asyncio.StreamReader) -> str:
        """Move bytes until the connection ends; returns why it ended."""
        proto = self._proto
        read: asyncio.Task[bytes] | None = None
        try:
            while True:
                self._flush()
                if proto.dead:
                    return proto.dead
                now = self._clock()
                deadline = proto.next_deadline(now)
                timeout = None if deadline is None else max(0.0, deadline - now)
                if read is None:
                    read = asyncio.ensure_future(reader.read(65536))
                self._wake.clear()
                wake = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {read, wake}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                wake.cancel()
                if read in done:
                    task, read = read, None
                    try:
                        data = task.result()
                    except (OSError, ssl.SSLError) as exc:
                        return proto.dead or describe(exc)
                    if not data:
                        return proto.dead or "the server closed the connection"
                    proto.receive_data(data, self._clock())
                proto.tick(self._clock())
        finally:
            if read is not None:
                read.cancel()
