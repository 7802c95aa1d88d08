"""One upload's body on its way to disk: :class:`UploadSink` (``http.BodySink``).

Rules (``uploads.py`` rule 1 and 2):
1. Bytes are gathered to :data:`~relaychat.web.uploads.WRITE_CHUNK` and written by the uploads'
   I/O threads, one write in flight at a time; past
   :data:`~relaychat.web.uploads.MAX_BUFFERED` bytes held, reading pauses until the write is
   done. A body without ``Content-Length`` is counted against the limits as it grows.
2. The file is complete when ``finish`` has synced it and renamed it into ``files/``, and its row
   is written; until then it is ``tmp/up-*.part``, thrown away if anything fails (or the client
   goes), after the write in flight if there is one. The space reserved for it is released
   exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from relaychat.config import Uploads
from relaychat.web.http import Response
from relaychat.web.upload_auth import Identity
from relaychat.web.upload_index import StoredFile, UploadIndex
from relaychat.web.upload_policy import checked_type, format_size

__all__ = ["DISK_CHECK_EVERY", "MAX_BUFFERED", "WRITE_CHUNK", "SinkService", "UploadSink"]

log = logging.getLogger("relaychat.web")

#: Bytes gathered before one write to disk.
WRITE_CHUNK = 1 << 20
#: Bytes of one upload held in memory at most; past it, reading pauses (rule 1).
MAX_BUFFERED = 4 << 20
#: Bytes between two free-space checks of an upload of unknown length.
DISK_CHECK_EVERY = 8 << 20


class SinkService(Protocol):
    """What a sink uses of :class:`~relaychat.web.uploads.UploadService` (which imports this)."""

    settings: Uploads
    index: UploadIndex
    clock: Callable[[], float]
    io: ThreadPoolExecutor
    db: ThreadPoolExecutor
    active: int
    stored: int

    def reserve(self, account: str, size: int, *, files: int = 0) -> None:
        """Count ``size`` bytes (and ``files`` uploads) in progress for ``account``."""
        ...

    def release(self, account: str, size: int, *, files: int = 0) -> None:
        """Undo :meth:`reserve`."""
        ...

    def make_room(
        self,
        account: str,
        incoming: int,
        *,
        files: int = 1,
        delete: bool = True,
        disk: bool = True,
    ) -> Response | None:
        """A refusal when ``account`` may not store ``incoming`` more bytes, else ``None``."""
        ...

    def disk_room(self, incoming: int) -> Response | None:
        """A 507 when storing ``incoming`` more bytes would leave too little free space."""
        ...

    def link(self, base: str, entry: StoredFile) -> str:
        """The URL of ``entry`` under ``base``."""
        ...


def _write_all(fd: int, chunks: list[bytes]) -> None:
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _place(fd: int, tmp: str, dest: str) -> None:
    """Make the upload durable and visible under ``dest`` (blocking)."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def _discard(fd: int, tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


class UploadSink:
    """One upload's body on its way to disk (``http.BodySink``; rule 1)."""

    def __init__(
        self,
        service: SinkService,
        who: Identity,
        name: str,
        kind: str,
        expected: int | None,
        fd: int,
        tmp: str,
        cors: tuple[tuple[str, str], ...],
        base: str,
    ) -> None:
        self.service = service
        self.who = who
        self.name = name
        self.kind = kind
        self.expected = expected
        self.fd = fd
        self.tmp = tmp
        self.cors = cors
        self.base = base
        self.received = 0
        self.head = b""  # the first bytes, for the image check
        self.buf: list[bytes] = []
        self.buffered = 0
        self.writing: asyncio.Future[None] | None = None
        self.error: OSError | None = None
        self.closed = False  # finished or aborted: the reservation is released
        self.discard_pending = False  # throw the file away once the write in flight is done
        self.paused = False
        self.next_disk_check = DISK_CHECK_EVERY
        self._pause: Callable[[], None] = lambda: None
        self._resume: Callable[[], None] = lambda: None

    def bind(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._pause, self._resume = pause, resume

    def feed(self, data: bytes) -> Response | None:
        if self.closed:
            return None
        if self.error is not None:
            return self._failed()
        size = len(data)
        self.received += size
        svc = self.service
        if self.expected is None:  # no Content-Length: count and check as it grows (rule 2)
            if self.received > svc.settings.max_size:
                return self._refuse(
                    Response.text(
                        413,
                        "File too large: the largest upload is "
                        + format_size(svc.settings.max_size),
                        headers=(("Upload-Limit", f"max-size={svc.settings.max_size}"),),
                    )
                )
            refusal = svc.make_room(self.who.account, size, files=0, delete=False, disk=False)
            if refusal is None and self.received >= self.next_disk_check:
                self.next_disk_check += DISK_CHECK_EVERY
                refusal = svc.disk_room(0)
            if refusal is not None:
                return self._refuse(refusal)
            svc.reserve(self.who.account, size)
        if len(self.head) < 16:
            self.head += data[: 16 - len(self.head)]
        self.buf.append(data)
        self.buffered += size
        if self.writing is None and self.buffered >= WRITE_CHUNK:
            self._write()
        if self.buffered >= MAX_BUFFERED and not self.paused:
            self.paused = True
            self._pause()
        return None

    def _write(self) -> None:
        chunks, self.buf, self.buffered = self.buf, [], 0
        loop = asyncio.get_running_loop()
        self.writing = loop.run_in_executor(self.service.io, _write_all, self.fd, chunks)
        self.writing.add_done_callback(self._written)

    def _written(self, future: asyncio.Future[None]) -> None:
        self.writing = None
        if not future.cancelled():
            exc = future.exception()
            if isinstance(exc, OSError):
                self.error = exc
            elif exc is not None:
                self.error = OSError(errno.EIO, str(exc))
        if self.discard_pending:
            self.discard_pending = False
            self._throw_away()
            return
        if self.error is None and self.buffered >= WRITE_CHUNK:
            self._write()
        if self.paused and self.buffered < MAX_BUFFERED:
            self.paused = False
            self._resume()

    async def finish(self) -> Response:
        svc = self.service
        try:
            while self.error is None:
                writing = self.writing
                if writing is not None:
                    with contextlib.suppress(Exception):
                        await writing
                    while self.writing is writing:  # its callback (_written) is yet to run
                        await asyncio.sleep(0)
                    continue
                if self.buf:
                    self._write()
                    continue
                break
            if self.error is not None:
                self._close(discard=True)
                return self._failed()
            entry = StoredFile(
                secrets.token_urlsafe(16),
                self.who.account,
                self.name,
                checked_type(self.kind, self.head),
                self.received,
                svc.clock(),
            )
            loop = asyncio.get_running_loop()
            dest = str(svc.index.path_of(entry.id))
            try:
                await loop.run_in_executor(svc.io, _place, self.fd, self.tmp, dest)
            except OSError as exc:
                self.error = exc
                self._close(discard=False)
                with contextlib.suppress(OSError):
                    await loop.run_in_executor(svc.io, os.unlink, self.tmp)
                return self._failed()
            self._close(discard=False)
            svc.index.add(entry)
            try:
                await loop.run_in_executor(svc.db, svc.index.write_add, entry)
            except Exception as exc:
                log.error("uploads: cannot index %s: %s", entry.id, exc)
                svc.index.remove(entry.id)
                with contextlib.suppress(OSError):
                    await loop.run_in_executor(svc.io, os.unlink, dest)
                return self._answer(Response.text(500, "The server could not store the file"))
            svc.stored += 1
            url = svc.link(self.base, entry)
            log.info(
                "upload %s by %s: %r, %s, %s",
                entry.id,
                entry.account,
                entry.name,
                format_size(entry.size),
                entry.content_type,
            )
            body = {"url": url, "name": entry.name, "size": entry.size, "type": entry.content_type}
            return self._answer(
                Response(
                    201,
                    json.dumps(body).encode() + b"\n",
                    "application/json",
                    (("Location", url),),
                )
            )
        finally:
            if not self.closed:
                self._close(discard=True)

    def abort(self) -> None:
        if not self.closed:
            self._close(discard=True)

    def _close(self, *, discard: bool) -> None:
        """Release the reservation; throw the partial file away (after a write in flight)."""
        if self.closed:
            return
        self.closed = True
        svc = self.service
        svc.active -= 1
        reserved = self.expected if self.expected is not None else self.received
        svc.release(self.who.account, reserved, files=1)
        if discard:
            if self.writing is None:
                self._throw_away()
            else:
                self.discard_pending = True

    def _throw_away(self) -> None:
        """Close and delete the partial file, on an I/O thread (here, once the server stops)."""
        try:
            asyncio.get_running_loop().run_in_executor(self.service.io, _discard, self.fd, self.tmp)
        except RuntimeError:  # the I/O threads are gone: the server is stopping
            _discard(self.fd, self.tmp)

    def _refuse(self, answer: Response) -> Response:
        self._close(discard=True)
        return self._answer(replace(answer, close=True))

    def _failed(self) -> Response:
        err = self.error
        if err is not None and err.errno in (errno.ENOSPC, errno.EDQUOT):
            answer = Response.text(507, "Not enough disk space on the server for this file")
        else:
            log.error("uploads: writing %s failed: %s", self.tmp, err)
            answer = Response.text(500, "The server could not store the file")
        if not self.closed:
            self._close(discard=True)
        return self._answer(replace(answer, close=True))

    def _answer(self, answer: Response) -> Response:
        return replace(answer, headers=(*answer.headers, *self.cors))
