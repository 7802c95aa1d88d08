"""DCC file transfer, the bytes: listen, connect, and move one file over one TCP connection.

Rules:
1. This module knows sockets and files (by descriptor), not IRC: the manager
   (:mod:`relaychat.client.dcc`) decides who connects where; :func:`push_file` and
   :func:`pull_file` only move bytes and acknowledgements (:mod:`.dccstate`, rule 3).
2. The event loop never waits on the disk for long: the sender uses ``loop.sendfile`` (the
   kernel's zero-copy ``sendfile``) where the loop supports it and otherwise reads ahead in a
   worker thread; the receiver writes and hashes in a worker thread, one batch at a time, while
   the loop keeps reading into the next buffer. Reading pauses when too much waits for the disk.
3. Every wait is bounded: connecting by ``connect_timeout``, an idle link by ``stall_timeout``
   (no data and no acknowledgement), so a peer that stalls or vanishes ends in a
   :class:`~relaychat.client.errors.DccError` that says so.
4. The receiver acknowledges only what is written; the last acknowledgement waits until the
   file is synced and named (``on_complete``), so a sender that saw it knows the file is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import ipaddress
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from relaychat.client.dccstate import AckTracker, ack_bytes, format_size
from relaychat.client.errors import DccError
from relaychat.client.link import describe

__all__ = ["connect", "hash_prefix", "listen", "pull_file", "push_file", "wait_accept"]

Progress = Callable[[int], None]

#: Bounds of one ``loop.sendfile`` call: it is sized to take about a quarter of a second.
_PIECE_MIN, _PIECE_MAX = 256 << 10, 16 << 20


def _family(host: str) -> socket.AddressFamily:
    try:
        version = ipaddress.ip_address(host.split("%", 1)[0]).version
    except ValueError:
        raise DccError(f"{host!r} is not an IP address to listen on") from None
    return socket.AF_INET6 if version == 6 else socket.AF_INET


def listen(host: str, port_range: tuple[int, int] | None) -> socket.socket:
    """A listening socket on ``host``, on the first free port of ``port_range`` (any when None).

    Returns:
        The socket (non-blocking; the caller closes it).

    Raises:
        DccError: no port of the range is free, or the address cannot be used.
    """
    family = _family(host)
    first, last = port_range or (0, 0)
    reason = "no port to try"
    for port in range(first, last + 1):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(1)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            reason = describe(exc)
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                break
    where = f"{host} port {first}-{last}" if port_range else host
    raise DccError(f"cannot listen on {where}: {reason}")


async def wait_accept(sock: socket.socket, timeout: float, who: str = "the peer") -> socket.socket:
    """Wait for one connection to ``sock`` (then closed: one transfer, one connection).

    Raises:
        DccError: nobody connected within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
            conn, _ = await loop.sock_accept(sock)
    except TimeoutError:
        raise DccError(f"{who} did not connect within {timeout:g} s") from None
    except OSError as exc:
        raise DccError(f"accepting the connection failed: {describe(exc)}") from None
    finally:
        sock.close()
    conn.setblocking(False)
    return conn


async def connect(host: str, port: int, timeout: float, bind: str | None = None) -> socket.socket:
    """Connect to the peer at ``host``:``port`` (from ``bind``'s address when given and of
    the same family).

    Raises:
        DccError: refused, unreachable, or not connected within ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    family = _family(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        if bind and _family(bind) == family:
            with contextlib.suppress(OSError):
                sock.bind((bind, 0))
        async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
            await loop.sock_connect(sock, (host, port))
    except TimeoutError:
        sock.close()
        raise DccError(f"connecting to {host} port {port} timed out after {timeout:g} s") from None
    except OSError as exc:
        sock.close()
        raise DccError(f"cannot connect to {host} port {port}: {describe(exc)}") from None
    except BaseException:
        sock.close()
        raise
    return sock


# --- sending --------------------------------------------------------------------------------------


class _Sender(asyncio.Protocol):
    """The sending side's protocol: reads acknowledgements, follows flow control."""

    def __init__(self, acks: AckTracker, on_ack: Callable[[], None]) -> None:
        self.acks = acks
        self.on_ack = on_ack
        self.sent = 0
        self.eof = False
        self.lost: str | None = None
        self.changed = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        before = self.acks.acked
        if self.acks.feed(data, self.sent) != before:
            self.on_ack()
            self.changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self.changed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = describe(exc) if exc is not None else "the connection closed"
        self.changed.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


async def push_file(
    sock: socket.socket,
    file: Any,
    start: int,
    size: int,
    *,
    turbo: bool,
    stall_timeout: float,
    chunk_size: int,
    on_progress: Progress,
) -> None:
    """Send ``file`` from ``start`` to ``size`` over the connected ``sock``, and wait until the
    receiver has it all: every byte acknowledged, or (``turbo``) the receiver closed after the
    last byte.

    Args:
        sock: a connected, non-blocking socket (taken over, and closed at the end).
        file: the file, opened for reading in binary mode.
        start: the first byte to send (a resume's position).
        size: the file's size (sending stops there even if the file grew).
        turbo: do not wait for acknowledgements.
        stall_timeout: the longest time with no progress at all.
        chunk_size: bytes read at once when ``sendfile`` is not available.
        on_progress: called with the position the receiver has.

    Raises:
        DccError: the peer closed early, stalled, or the connection or the file failed.
    """
    loop = asyncio.get_running_loop()
    acks = AckTracker(start)
    transport: asyncio.Transport
    on_ack: Callable[[], None] = (lambda: None) if turbo else (lambda: on_progress(acks.acked))
    transport, proto = await loop.connect_accepted_socket(lambda: _Sender(acks, on_ack), sock)
    transport.set_write_buffer_limits(high=4 * chunk_size)
    proto.sent = start
    sent_cb: Progress = on_progress if turbo else (lambda pos: None)  # (turbo: no acks)
    try:
        if start < size:
            await _stream(
                loop, transport, proto, file, start, size, stall_timeout, chunk_size, sent_cb
            )
        if turbo:  # done when the receiver closes (or acknowledges it all, if it does)
            await _wait(proto, lambda: proto.eof or acks.acked >= size, stall_timeout, size)
            on_progress(size)
        else:
            await _wait(proto, lambda: acks.acked >= size, stall_timeout, size)
    except BaseException:
        transport.abort()
        raise
    transport.close()


async def _stream(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    proto: _Sender,
    file: Any,
    pos: int,
    size: int,
    stall_timeout: float,
    chunk_size: int,
    on_sent: Progress,
) -> None:
    """Write the file from ``pos`` to ``size``: ``sendfile`` in pieces, else read-ahead."""
    piece = _PIECE_MIN
    while pos < size:
        if proto.lost is not None or proto.eof:
            raise DccError(_early(proto, pos, size))
        began = time.monotonic()
        try:
            sent = await asyncio.wait_for(
                loop.sendfile(transport, file, pos, min(piece, size - pos), fallback=False),
                stall_timeout,
            )
        except (NotImplementedError, asyncio.SendfileNotAvailableError):
            break  # this loop or transport cannot: read and write instead
        except TimeoutError:
            raise DccError(f"stalled: nothing went through for {stall_timeout:g} s") from None
        except (OSError, RuntimeError) as exc:
            raise DccError(_early(proto, pos, size, describe(exc))) from None
        if not sent:
            raise DccError(f"the file ended at {pos} bytes, before its size of {size}")
        pos += sent
        proto.sent = pos
        on_sent(pos)
        took = time.monotonic() - began
        if took > 0:
            piece = max(_PIECE_MIN, min(_PIECE_MAX, int(sent / took / 4)))
    if pos >= size:
        return
    fd = os.dup(file.fileno())  # ours: closed only once no read of it is in flight
    ahead = loop.run_in_executor(None, os.pread, fd, min(chunk_size, size - pos), pos)
    try:
        while pos < size:
            try:
                data = await ahead
            except OSError as exc:
                raise DccError(f"cannot read the file: {describe(exc)}") from None
            if not data:
                raise DccError(f"the file ended at {pos} bytes, before its size of {size}")
            if proto.lost is not None or proto.eof:
                raise DccError(_early(proto, pos, size))
            transport.write(data)
            pos += len(data)
            proto.sent = pos
            on_sent(pos)
            if pos < size:
                ahead = loop.run_in_executor(None, os.pread, fd, min(chunk_size, size - pos), pos)
            if not proto.writable.is_set():
                try:
                    await asyncio.wait_for(proto.writable.wait(), stall_timeout)
                except TimeoutError:
                    raise DccError(
                        f"stalled: the peer read nothing for {stall_timeout:g} s"
                    ) from None
    finally:
        if ahead.done():
            os.close(fd)
        else:
            ahead.add_done_callback(lambda _: os.close(fd))


def _early(proto: _Sender, pos: int, size: int, detail: str = "") -> str:
    why = detail or ("the peer closed the connection" if proto.eof else proto.lost or "closed")
    return f"{why} after {format_size(proto.acks.acked)} of {format_size(size)}"


async def _wait(proto: _Sender, done: Callable[[], bool], stall_timeout: float, size: int) -> None:
    """Wait until ``done()``, failing when the link ends first or nothing happens for a while."""
    while not done():
        if proto.eof or proto.lost is not None:
            raise DccError(
                f"the peer closed the connection having acknowledged "
                f"{format_size(proto.acks.acked)} of {format_size(size)}"
            )
        proto.changed.clear()
        try:
            await asyncio.wait_for(proto.changed.wait(), stall_timeout)
        except TimeoutError:
            raise DccError(
                f"stalled: no acknowledgement for {stall_timeout:g} s "
                f"({format_size(proto.acks.acked)} of {format_size(size)} acknowledged)"
            ) from None


# --- receiving ------------------------------------------------------------------------------------


class _Receiver(asyncio.BufferedProtocol):
    """The receiving side's protocol: reads into a buffer, hands full buffers to a writer thread,
    acknowledges what is written (rule 2, rule 4)."""

    def __init__(
        self,
        fd: int,
        hasher: Any,
        start: int,
        size: int,
        *,
        turbo: bool,
        chunk_size: int,
        on_progress: Progress,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.fd, self.hasher = fd, hasher
        self.start, self.size, self.turbo, self.chunk = start, size, turbo, chunk_size
        self.on_progress = on_progress
        self.buf = bytearray(chunk_size)
        self.view = memoryview(self.buf)
        self.fill = 0
        self.received = start  # position of the last byte read
        self.written = start  # position of the last byte on disk
        self.queue: list[bytes | memoryview] = []
        self.queued = 0
        self.writing = False
        self.paused = False
        self.idle_flush = False
        self.last_data = time.monotonic()
        self.error: str | None = None
        self.released = False
        self.inflight: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None
        self.result: asyncio.Future[None] = self.loop.create_future()

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is not a subclass)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.fill >= len(self.buf):
            self._flush()
        return self.view[self.fill :]

    def buffer_updated(self, nbytes: int) -> None:
        self.last_data = time.monotonic()
        self.fill += nbytes
        self.received += nbytes
        if self.received > self.size:
            extra = self.received - self.size
            self.fill -= extra
            self.received = self.size
            self._flush()
            self.fail(f"the sender sent more than the {self.size} bytes it offered")
            return
        if self.fill >= len(self.buf) or self.received == self.size:
            self._flush()
        elif not self.writing and not self.idle_flush:
            self.idle_flush = True
            self.loop.call_soon(self._flush_when_idle)

    def eof_received(self) -> bool:
        if self.received < self.size:
            self._flush()
            self.fail(
                f"the sender closed the connection after {format_size(self.received)} of "
                f"{format_size(self.size)}"
            )
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.received < self.size or exc is not None:
            self._flush()
            why = describe(exc) if exc is not None else "the connection closed"
            self.fail(f"{why} after {format_size(self.received)} of {format_size(self.size)}")

    # the writer

    def fail(self, reason: str) -> None:
        """End with ``reason`` once what was read is on disk (so a resume can continue)."""
        if self.error is None and not self.result.done():
            self.error = reason
            if self.transport is not None:
                self.transport.abort()
        self._settle()

    def _flush_when_idle(self) -> None:
        self.idle_flush = False
        if not self.writing:
            self._flush()

    def _flush(self) -> None:
        if self.fill:
            data: bytes | memoryview
            if self.fill >= len(self.buf) // 4:  # hand the buffer over, read into a new one
                data = self.view[: self.fill]
                self.buf = bytearray(self.chunk)
                self.view = memoryview(self.buf)
            else:
                data = bytes(self.view[: self.fill])
            self.fill = 0
            self.queue.append(data)
            self.queued += len(data)
            if self.queued >= 4 * self.chunk and not self.paused and self.transport is not None:
                self.paused = True
                self.transport.pause_reading()
        self._kick()

    def _kick(self) -> None:
        if self.writing or not self.queue or self.released:
            return
        batch, self.queue = self.queue, []
        self.writing = True
        fut = self.loop.run_in_executor(None, self._write, batch)
        fut.add_done_callback(self._written)
        self.inflight = fut

    def _write(self, batch: list[bytes | memoryview]) -> int:
        """(In a worker thread.) Write and hash ``batch``; returns the bytes written."""
        total = 0
        for data in batch:
            view = memoryview(data)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
            self.hasher.update(data)
            total += len(data)
        return total

    def release(self) -> None:
        """Close the file once no write of it is in flight (the receiver owns ``fd``)."""
        self.released = True
        self.queue.clear()
        if not self.writing:
            with contextlib.suppress(OSError):
                os.close(self.fd)

    def _written(self, fut: asyncio.Future[int]) -> None:
        self.writing = False
        if self.released:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            return
        exc = fut.exception()
        if exc is not None:
            self.queue.clear()
            self.fail(f"cannot write the file: {describe(exc)}")
            return
        n = fut.result()
        self.written += n
        self.queued -= n
        self.on_progress(self.written)
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if not self.turbo and self.written < self.size:
                transport.write(ack_bytes(self.written))
            if self.paused and self.queued < self.chunk:
                self.paused = False
                transport.resume_reading()
        if self.queue:
            self._kick()
        elif self.fill:
            self._flush()
        self._settle()

    def _settle(self) -> None:
        if self.writing or self.queue or self.result.done():
            return
        if self.error is not None:
            self.result.set_exception(DccError(self.error))
        elif self.written == self.size:
            self.result.set_result(None)


async def pull_file(
    sock: socket.socket,
    fd: int,
    hasher: Any,
    start: int,
    size: int,
    *,
    turbo: bool,
    stall_timeout: float,
    chunk_size: int,
    on_progress: Progress,
    on_complete: Callable[[str], Awaitable[None]],
) -> str:
    """Receive bytes ``start`` to ``size`` of a file over the connected ``sock`` into ``fd``.

    Args:
        sock: a connected, non-blocking socket (taken over, and closed at the end).
        fd: the file, open for writing and positioned at ``start``; taken over (closed once
            the last write is done, even when cancelled: pass a ``os.dup`` to keep one).
        hasher: a ``hashlib`` object that has seen bytes 0 to ``start`` already.
        start, size: where the transfer begins and the file's size.
        turbo: the sender wants no acknowledgements (mIRC ``TSEND``).
        stall_timeout: the longest time with no data.
        chunk_size: the read buffer; a writer thread takes it when full (or when it is idle).
        on_progress: called with the position on disk after each write.
        on_complete: awaited with the SHA-256 (hex) once every byte is on disk and synced,
            before the last acknowledgement (the caller names the file there, rule 4).

    Returns:
        The SHA-256 of the whole file (hex).

    Raises:
        DccError: the sender closed early, sent too much, stalled, or the file failed; what was
            read is on disk, so the transfer can be resumed.
    """
    loop = asyncio.get_running_loop()
    proto = _Receiver(
        fd, hasher, start, size, turbo=turbo, chunk_size=chunk_size, on_progress=on_progress
    )
    try:
        transport, _ = await loop.connect_accepted_socket(lambda: proto, sock)
    except BaseException:
        proto.release()
        sock.close()
        raise
    watchdog = loop.create_task(_watch(proto, stall_timeout))
    try:
        if start >= size:
            proto._settle()
        await proto.result
        watchdog.cancel()
        digest = await loop.run_in_executor(None, _sync_and_digest, fd, hasher)
        await on_complete(digest)
        if not turbo and not transport.is_closing():
            transport.write(ack_bytes(size))
        return digest
    finally:
        watchdog.cancel()
        transport.close()
        proto.release()
        if proto.inflight is not None and not proto.inflight.done():
            # Return only once the file is still: a caller may look at it (or resume it).
            with contextlib.suppress(BaseException):
                await asyncio.shield(proto.inflight)


def _sync_and_digest(fd: int, hasher: Any) -> str:
    os.fsync(fd)
    return str(hasher.hexdigest())


async def _watch(proto: _Receiver, stall_timeout: float) -> None:
    """Fail the transfer when no data came for ``stall_timeout`` seconds (rule 3)."""
    while not proto.result.done():
        idle = time.monotonic() - proto.last_data
        if idle >= stall_timeout and not proto.writing and not proto.paused:
            proto.fail(
                f"stalled: no data for {stall_timeout:g} s ({format_size(proto.received)} of "
                f"{format_size(proto.size)} received)"
            )
            return
        await asyncio.sleep(max(0.05, min(1.0, stall_timeout - idle)))


def hash_prefix(fd: int, length: int, chunk_size: int = 1 << 20) -> Any:
    """(Blocking: run it in a thread.) A SHA-256 object fed the first ``length`` bytes of a
    file, for resuming. ``fd`` is taken over and closed (pass a ``os.dup``).

    Raises:
        DccError: the file is shorter than ``length``.
    """
    hasher = hashlib.sha256()
    pos = 0
    try:
        while pos < length:
            data = os.pread(fd, min(chunk_size, length - pos), pos)
            if not data:
                raise DccError(f"the partial file is shorter than {length} bytes")
            hasher.update(data)
            pos += len(data)
    finally:
        os.close(fd)
    return hasher
