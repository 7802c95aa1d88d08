"""DCC file transfer between clients: offers over IRC, bytes over a direct TCP connection.

::

    async with Client(nick="alice") as client, DccManager(client) as dcc:
        transfer = await dcc.send("bob", "report.pdf")      # offers it; bob must accept
        await dcc.wait(transfer)                            # raises DccError if it failed

    async with Client(nick="bob") as client, DccManager(client) as dcc:
        async for event in dcc.events(DccOffered):
            if event.transfer.nick == "alice":              # never accepted unless you say so
                done = await dcc.wait(await dcc.accept(event.transfer, "downloads"))
                print(done.path, done.sha256)

Rules:
1. An incoming offer is only ever *reported* (:class:`DccOffered`); nothing is written until
   :meth:`DccManager.accept`. Offers from nicks outside ``allow_from`` (when set) and offers
   sent to a channel are ignored; a malformed, oversized or unsafe one is reported as
   :class:`DccRefused`. Answers (RESUME, ACCEPT, passive replies, REJECT) count only from the
   nick a transfer is with, and must match its port or token.
2. Files are written as ``NAME.part`` in the chosen directory and renamed to a free name once
   complete; an existing file is never overwritten. Accepting resumes our own ``.part`` (with
   ``DCC RESUME``); ``resume=True`` also continues an existing ``NAME`` smaller than the offer.
3. Sending listens on ``bind_host`` (default: the local address of the link to the IRC server)
   on a port of ``port_range``; when that fails (or with ``passive=True``) the offer is
   passive (port 0 and a token) and the receiver listens instead.
4. This module is the glue: the messages are :mod:`relaychat.protocol.ctcp`'s, the rules and
   values :mod:`.dccstate`'s, the bytes :mod:`.dccio`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any

from relaychat.client.connection import Client
from relaychat.client.dccfiles import close_target, name_complete, open_source, open_target
from relaychat.client.dccio import connect, hash_prefix, listen, pull_file, push_file, wait_accept
from relaychat.client.dccpeer import Job, on_dcc
from relaychat.client.dccstate import (
    DccConfig,
    DccDone,
    DccFailed,
    DccProgress,
    Direction,
    State,
    Transfer,
    format_size,
)
from relaychat.client.delivery import EventHub
from relaychat.client.errors import ClientError, DccError
from relaychat.client.events import Ctcp, Event, NickChange
from relaychat.client.link import describe
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import CtcpError, DccReject, DccResume, DccSend

__all__ = ["DccManager"]

log = logging.getLogger("relaychat.client.dcc")

#: The longest CTCP text we send (it must fit in one IRC line with the server's prefix).
_MAX_CTCP = 380


class DccManager:
    """DCC file transfers for one :class:`~relaychat.client.Client` (which must be started).

    Args:
        client: the IRC connection that carries the offers.
        config: the settings (:class:`~relaychat.client.dccstate.DccConfig`).
        clock: a monotonic clock in seconds.
    """

    def __init__(
        self,
        client: Client,
        config: DccConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.config = config or DccConfig()
        self._clock = clock
        self._hub = EventHub(client.config.event_queue, clock)
        self._jobs: dict[int, Job] = {}
        self._next_id = 1
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._allowed = (
            None
            if self.config.allow_from is None
            else {irc_lower(n) for n in self.config.allow_from}
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start hearing offers and answers (call once; the running loop is used)."""
        if self._task is None:
            events = self.client.events(Ctcp, NickChange)
            self._task = asyncio.get_running_loop().create_task(self._listen(events))

    async def close(self) -> None:
        """Cancel every transfer not finished and stop; the event streams end. Peers waiting
        for an answer are told (``DCC REJECT``)."""
        waiting = (State.OFFERED, State.WAITING, State.CONNECTING)
        for job in list(self._jobs.values()):
            if job.transfer.state in waiting:
                await self._reject(job.transfer)
            if not job.transfer.state.final:
                self._end(job, State.CANCELLED, "closed")
        for job in list(self._jobs.values()):
            if job.task is not None and not job.task.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job.task
        for helper in list(self._helpers):
            helper.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._hub.finish()

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def __aenter__(self) -> DccManager:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- state --------------------------------------------------------------------------------

    @property
    def transfers(self) -> list[Transfer]:
        """Every transfer of this session, oldest first."""
        return [job.transfer for job in self._jobs.values()]

    def get(self, transfer_id: int) -> Transfer | None:
        """The transfer with this id."""
        job = self._jobs.get(transfer_id)
        return job.transfer if job is not None else None

    def offers(self, nick: str | None = None) -> list[Transfer]:
        """Incoming offers waiting to be accepted (from ``nick`` only, when given), oldest first."""
        return [
            t
            for t in self.transfers
            if t.state is State.OFFERED and (nick is None or irc_lower(t.nick) == irc_lower(nick))
        ]

    def events(self, *types: type[Event]) -> AsyncIterator[Event]:
        """Every DCC event from now on (only ``types`` when given), until :meth:`close`."""
        return self._hub.subscribe(types or (Event,))

    async def wait(self, transfer: Transfer, timeout: float | None = None) -> Transfer:
        """Wait until ``transfer`` ends.

        Returns:
            The transfer, done.

        Raises:
            DccError: it failed or was cancelled (``reason`` says why).
            TimeoutError: still going after ``timeout`` seconds.
        """
        done = await asyncio.wait_for(asyncio.shield(self._jobs[transfer.id].ended), timeout)
        if done.state is not State.DONE:
            raise DccError(done.error or done.state.value)
        return done

    # --- sending ------------------------------------------------------------------------------

    async def send(
        self,
        nick: str,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        passive: bool | None = None,
        turbo: bool | None = None,
    ) -> Transfer:
        """Offer the file at ``path`` to ``nick``; the transfer goes on in the background.

        Args:
            nick: who gets it.
            path: a regular file.
            name: the name to offer (default: the file's own name).
            passive: ``True`` for a passive offer (the receiver listens), ``False`` to insist
                on listening; default: the config's (listen when possible).
            turbo: do not wait for acknowledgements (default: the config's).

        Returns:
            The transfer (state ``WAITING``); :meth:`wait` for its end.

        Raises:
            DccError: the file cannot be read, or there is no connection to the server.
        """
        cfg = self.config
        source = Path(path)
        file, size, offered = open_source(source, name)
        job = self._new(Direction.SEND, nick, offered, size, path=source.resolve())
        job.file = file
        job.want_passive = cfg.passive if passive is None else passive
        job.transfer.turbo = cfg.turbo if turbo is None else turbo
        job.transfer.passive = job.want_passive is True
        self._spawn(job, self._run_send(job))
        return job.transfer

    async def _run_send(self, job: Job) -> None:
        t, cfg = job.transfer, self.config
        bind = self._bind_host()
        if not t.passive:
            try:
                job.listener = listen(bind, cfg.port_range)
            except DccError as exc:
                if job.want_passive is False:
                    raise
                log.info("offering %s to %s passively: %s", t.name, t.nick, exc.reason)
                t.passive = True
        if t.passive:
            t.token = str(secrets.randbelow(1 << 31))
            host, t.port = self._advertise(None), 0
        else:
            assert job.listener is not None
            host, t.port = self._advertise(job.listener), job.listener.getsockname()[1]
        offer = DccSend(name=t.name, host=host, port=t.port, size=t.size, token=t.token)
        job.answer = asyncio.get_running_loop().create_future()
        await self._ctcp(job, offer.to_text(), "the offer")
        if job.listener is not None:
            conn = await wait_accept(job.listener, cfg.offer_timeout, t.nick)
            job.listener = None
        else:
            reply = await self._answer(job, "connect")
            assert isinstance(reply, DccSend)
            t.state, t.host, t.port = State.CONNECTING, reply.host, reply.port
            conn = await connect(reply.host, reply.port, cfg.connect_timeout)
        self._activate(job, conn)
        await push_file(
            conn,
            job.file,
            t.offset,
            t.size,
            turbo=t.turbo,
            stall_timeout=cfg.stall_timeout,
            chunk_size=cfg.chunk_size,
            on_progress=self._progress(job),
        )
        t.done = t.size
        self._end(job, State.DONE)

    # --- receiving ----------------------------------------------------------------------------

    async def accept(
        self, transfer: Transfer, directory: str | os.PathLike[str], *, resume: bool | None = None
    ) -> Transfer:
        """Accept an incoming offer, into ``directory``.

        Args:
            transfer: an offer (state ``OFFERED``).
            directory: an existing directory; nothing is written outside it.
            resume: ``None`` (default): continue our ``NAME.part`` when there is one, else
                start a new file under a free name. ``True``: also continue an existing
                ``NAME`` smaller than the offer, and fail when there is nothing to continue.
                ``False``: always start a new file.

        Returns:
            The transfer, under way; :meth:`wait` for its end.

        Raises:
            DccError: not an offer waiting, the directory is unusable, not enough disk space,
                or nothing to resume with ``resume=True``.
        """
        job = self._jobs.get(transfer.id)
        if job is None or transfer.state is not State.OFFERED or job.offer is None:
            raise DccError(f"#{transfer.id} is not an offer waiting to be accepted")
        folder = Path(directory).expanduser()
        if not folder.is_dir():
            raise DccError(f"{folder} is not a directory")
        folder = folder.resolve()
        t = job.transfer
        target = open_target(folder, t.name, t.size, resume=resume, reserved=self._reserved_paths())
        need, free = t.size - target.offset, shutil.disk_usage(folder).free
        if free < need:
            close_target(target.fd, target.path)
            raise DccError(
                f"not enough disk space in {folder}: {format_size(free)} free, "
                f"{format_size(need)} needed"
            )
        job.fd, t.path, job.reserved = target.fd, target.path, str(target.path)
        t.offset = t.done = target.offset
        if job.expiry is not None:
            job.expiry.cancel()
        t.state = State.CONNECTING
        self._spawn(job, self._run_receive(job))
        return t

    def _reserved_paths(self) -> set[str]:
        return {
            j.reserved for j in self._jobs.values() if j.reserved and not j.transfer.state.final
        }

    async def _run_receive(self, job: Job) -> None:
        t, cfg, offer = job.transfer, self.config, job.offer
        assert offer is not None and job.fd is not None and t.path is not None
        loop = asyncio.get_running_loop()
        hasher = await loop.run_in_executor(None, hash_prefix, os.dup(job.fd), t.offset)
        job.answer = loop.create_future()
        if t.offset:
            ask = DccResume(name=offer.name, port=offer.port, position=t.offset, token=offer.token)
            t.state = State.WAITING
            await self._ctcp(job, ask.to_text(), "the resume request")
            accepted = await self._answer(job, "accept the resume request")
            assert isinstance(accepted, DccResume)
            if accepted.position != t.offset:
                raise DccError(f"{t.nick} offered to resume at {accepted.position}, not {t.offset}")
            job.answer = loop.create_future()
        if offer.passive:
            job.listener = listen(self._bind_host(), cfg.port_range)
            port = job.listener.getsockname()[1]
            reply = DccSend(
                name=offer.name,
                host=self._advertise(job.listener),
                port=port,
                size=t.size,
                token=offer.token,
            )
            t.state = State.WAITING
            await self._ctcp(job, reply.to_text(), "the answer to the passive offer")
            conn = await wait_accept(job.listener, cfg.offer_timeout, t.nick)
            job.listener = None
        else:
            t.state = State.CONNECTING
            conn = await connect(offer.host, offer.port, cfg.connect_timeout, cfg.bind_host)
        self._activate(job, conn)
        await pull_file(
            conn,
            os.dup(job.fd),
            hasher,
            t.offset,
            t.size,
            turbo=t.turbo,
            stall_timeout=cfg.stall_timeout,
            chunk_size=cfg.chunk_size,
            on_progress=self._progress(job),
            on_complete=lambda digest: self._complete(job, digest),
        )
        self._end(job, State.DONE)

    async def _complete(self, job: Job, digest: str) -> None:
        """The file is complete and synced: give it its name (before the last ack)."""
        t = job.transfer
        assert t.path is not None
        t.sha256, t.done = digest, t.size
        try:
            t.path = name_complete(t.path)
        except OSError as exc:
            raise DccError(f"cannot name the file {t.path}: {describe(exc)}") from None

    async def reject(self, transfer: Transfer) -> None:
        """Decline an incoming offer (the peer is told with ``DCC REJECT``)."""
        await self.cancel(transfer, "declined")

    async def cancel(self, transfer: Transfer, reason: str = "cancelled") -> None:
        """Stop a transfer that has not ended, and wait until its file is closed; the peer is
        told (``DCC REJECT``) when it was not connected yet."""
        job = self._jobs.get(transfer.id)
        if job is None or transfer.state.final:
            return
        tell = transfer.state in (State.OFFERED, State.WAITING, State.CONNECTING)
        self._end(job, State.CANCELLED, reason)
        task = job.task
        if task is not None and task is not asyncio.current_task():
            with contextlib.suppress(BaseException):
                await task  # (its file is closed and still once this returns)
        if tell:
            await self._reject(transfer)

    async def _reject(self, transfer: Transfer) -> None:
        """Tell the peer (``DCC REJECT``) that a transfer not yet connected will not happen."""
        kind = "SEND" if transfer.direction is Direction.RECEIVE else "GET"
        with contextlib.suppress(ClientError, ValueError, CtcpError):
            text = DccReject(kind=kind, name=transfer.offered_name or transfer.name).to_text()
            await self.client.send(transfer.nick, text, notice=True)

    # --- what the peer says (relaychat.client.dccpeer) -----------------------------------------

    async def _listen(self, events: AsyncIterator[Event]) -> None:
        async for event in events:
            try:
                if isinstance(event, Ctcp) and event.command == "DCC":
                    on_dcc(self, event)
                elif isinstance(event, NickChange):
                    for job in self._jobs.values():
                        if irc_lower(job.transfer.nick) == irc_lower(event.old):
                            job.transfer.nick = event.new
            except Exception:  # a bug: keep hearing the others
                log.exception("handling %r failed", event)

    def _allowed_nick(self, nick: str) -> bool:
        return self._allowed is None or irc_lower(nick) in self._allowed

    # --- internals ----------------------------------------------------------------------------

    def _new(
        self,
        direction: Direction,
        nick: str,
        name: str,
        size: int,
        *,
        state: State = State.WAITING,
        path: Path | None = None,
    ) -> Job:
        t = Transfer(
            id=self._next_id,
            direction=direction,
            nick=nick,
            name=name,
            size=size,
            state=state,
            path=path,
            created=self._clock(),
        )
        self._next_id += 1
        job = Job(t)
        self._jobs[t.id] = job
        return job

    def _spawn(self, job: Job, coro: Coroutine[Any, Any, None]) -> None:
        job.task = asyncio.get_running_loop().create_task(self._guard(job, coro))

    async def _guard(self, job: Job, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except DccError as exc:
            tell = job.transfer.state in (State.WAITING, State.CONNECTING)
            self._end(job, State.FAILED, exc.reason)
            if tell:  # (so the peer does not wait for its timeout)
                self._background(self._reject(job.transfer))
        except asyncio.CancelledError:
            self._end(job, State.CANCELLED, "cancelled")
            raise
        except Exception as exc:
            log.exception("DCC transfer #%d failed", job.transfer.id)
            self._end(job, State.FAILED, f"internal error: {exc!r}")
        finally:
            self._release(job)

    async def _ctcp(self, job: Job, text: str, what: str) -> None:
        """Send a CTCP to the peer; the transfer fails if the server refuses it (no such nick)."""
        if len(text.encode("utf-8")) > _MAX_CTCP:
            raise DccError("the file name is too long to offer")
        try:
            delivery = await self.client.send(job.transfer.nick, text)
        except (ClientError, ValueError) as exc:
            raise DccError(f"cannot send {what} to {job.transfer.nick}: {exc}") from None

        async def watch() -> None:
            error = await delivery.settled()
            if error is not None and not job.transfer.state.final:
                self._end(job, State.FAILED, f"{what} did not reach {job.transfer.nick}: {error}")

        self._background(watch())

    def _spawn_ctcp(self, job: Job, text: str, what: str) -> None:
        async def send() -> None:
            with contextlib.suppress(DccError):
                await self._ctcp(job, text, what)

        self._background(send())

    async def _answer(self, job: Job, what: str) -> DccSend | DccResume:
        assert job.answer is not None
        timeout = self.config.offer_timeout
        job.transfer.state = State.WAITING
        try:
            return await asyncio.wait_for(asyncio.shield(job.answer), timeout)
        except TimeoutError:
            raise DccError(f"{job.transfer.nick} did not {what} within {timeout:g} s") from None

    def _bind_host(self) -> str:
        host = self.config.bind_host or self.client.local_address
        if not host:
            raise DccError("not connected to the server: no address to listen on")
        return host

    def _advertise(self, listener: socket.socket | None) -> str:
        host: str | None = self.config.advertise_host
        if host is None and listener is not None:
            host = str(listener.getsockname()[0])
            if host in ("0.0.0.0", "::"):
                host = None
        host = host or self.client.local_address
        if not host:
            raise DccError("not connected to the server: no address to offer")
        return host

    def _activate(self, job: Job, conn: socket.socket) -> None:
        t = job.transfer
        with contextlib.suppress(OSError):
            peer = conn.getpeername()
            t.host, t.port = str(peer[0]), int(peer[1])
        t.state, t.started = State.ACTIVE, self._clock()
        t.meter.add(t.started, t.done)

    def _progress(self, job: Job) -> Callable[[int], None]:
        t, interval = job.transfer, self.config.progress_interval

        def update(position: int) -> None:
            now = self._clock()
            t.done = position
            t.meter.add(now, position)
            if now - job.last_progress >= interval or position >= t.size:
                job.last_progress = now
                self._hub.publish(DccProgress(t, position, t.meter.rate()))

        return update

    def _expire(self, job: Job) -> None:
        if job.transfer.state is State.OFFERED:
            self._end(job, State.FAILED, f"not accepted within {self.config.offer_timeout:g} s")

    def _end(self, job: Job, state: State, reason: str = "") -> None:
        """Finish a transfer: record how, free what it holds, tell everyone (once)."""
        t = job.transfer
        if t.state.final:
            return
        t.state, t.error, t.finished = state, reason, self._clock()
        if job.expiry is not None:
            job.expiry.cancel()
        task = job.task
        running = task is not None and not task.done() and task is not asyncio.current_task()
        if not running:
            self._release(job)  # (else the task releases it when it has stopped)
        if job.answer is not None and not job.answer.done():
            job.answer.cancel()
        if running:
            assert task is not None
            task.cancel()
        if not job.ended.done():
            job.ended.set_result(t)
        if state is State.DONE:
            log.info("DCC #%d done: %s", t.id, t.describe())
            self._hub.publish(DccDone(t))
        else:
            log.info("DCC #%d %s: %s", t.id, state.value, reason)
            self._hub.publish(DccFailed(t, reason))

    def _release(self, job: Job) -> None:
        """Close what a transfer holds: its listening socket and its file."""
        if job.listener is not None:
            job.listener.close()
            job.listener = None
        if job.file is not None:
            job.file.close()
            job.file = None
        if job.fd is not None:
            self._close_fd(job)

    def _close_fd(self, job: Job) -> None:
        fd, job.fd = job.fd, None
        assert fd is not None
        close_target(fd, job.transfer.path)
