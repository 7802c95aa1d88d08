"""Uploads the server hosts (IRCv3 ``draft/FILEHOST``): ``POST /upload``, ``GET /uploads/<id>``.

A logged-in user uploads a file to the HTTP port and gets its URL to paste in chat. The upload
URL is advertised in ISUPPORT as ``draft/FILEHOST`` and ``soju.im/FILEHOST`` (what gamja,
Goguma, senpai and Halloy read), with ``draft/AUTHTOKEN``: ``TOKEN GENERATE FILEHOST`` gives a
one-use bearer token (``server/authtokens.py``), so a session logged in by any means uploads
without sending its password again. See ``docs/web.md``.

Rules:
1. Nothing slow on the event loop: a password is checked by the accounts' worker
   (``upload_auth.py``); the body is written to a temporary file under ``tmp/`` by the uploads'
   I/O threads as it arrives, at most :data:`MAX_BUFFERED` bytes held per upload (reading
   pauses meanwhile); the index is written by its own database thread; downloads are read
   by the I/O threads, a chunk at a time (``http.FileBody``).
2. Bounded: ``uploads.max_size`` per file (413 from ``Content-Length`` before reading, or as
   soon as a body without one grows past it), ``quota_per_account`` and
   ``max_files_per_account`` (413, or room made by deleting the account's oldest files with
   ``quota_delete_oldest``), ``max_total`` and ``min_free`` for the server (507),
   ``max_concurrent`` uploads at once (503). Space is reserved when an upload starts, so
   uploads in parallel cannot overshoot a quota together.
3. Every refusal is one line of text saying why, with the status a client can act on.
4. A stored file is named by 128 random bits (``files/<id>``); the URL is
   ``<base>/uploads/<id>/<name>`` (the name is decoration: the id alone finds the file). It is
   served by ``upload_policy.served_as`` (images inline, the rest as attachments, nothing
   executable), with ``nosniff`` and ``Content-Security-Policy: default-src 'none'; sandbox``,
   an ETag, ``Range`` and ``HEAD``.
5. Retention: a pass every :data:`RETENTION_EVERY` seconds deletes files older than
   ``retention_days``, and with ``quota_delete_oldest`` the oldest files of whoever is over a
   limit (a limit lowered since). It only removes rows from memory on the loop; the files
   and rows are deleted by the database thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs

from relaychat.config import Config
from relaychat.protocol.casemap import irc_lower
from relaychat.server.authtokens import Service, attach_tokens
from relaychat.server.connection import Connection
from relaychat.server.core import ServerCore
from relaychat.server.state import User
from relaychat.web.http import Begin, BodySink, FileBody, HttpRequest, Response, request_base
from relaychat.web.upload_auth import UploadAuth
from relaychat.web.upload_index import ID_PATTERN, StoredFile, UploadIndex
from relaychat.web.upload_policy import (
    content_disposition,
    declared_type,
    format_size,
    name_from_disposition,
    parse_range,
    safe_name,
    served_as,
    url_name,
)
from relaychat.web.upload_sink import MAX_BUFFERED, UploadSink
from relaychat.web.websocket import WebSocketConnection

__all__ = ["MAX_BUFFERED", "RETENTION_EVERY", "UPLOAD_CSP", "UploadHost", "UploadService"]


log = logging.getLogger("relaychat.web")

#: Seconds between two retention passes (rule 5).
RETENTION_EVERY = 60.0
#: The Content-Security-Policy of upload responses (rule 4).
UPLOAD_CSP = "default-src 'none'; sandbox"
_CORS_HEADERS = "Authorization, Content-Type, Content-Disposition"


class UploadHost(Protocol):
    """What the uploads need from the server."""

    config: Config
    core: ServerCore


def _escape_isupport(value: str) -> str:
    """An ISUPPORT value with ``\\``, space and ``=`` escaped (modern.ircdocs.horse)."""
    return value.replace("\\", "\\x5C").replace(" ", "\\x20").replace("=", "\\x3D")


class UploadService:
    """The uploads of one server.

    Args:
        host: the server.
        client_ip: the client's address for a request (trusted proxies considered).
        origin_ok: whether a request's ``Origin`` may use the upload URL.
        clock: the time (injected by retention tests).
    """

    def __init__(
        self,
        host: UploadHost,
        *,
        client_ip: Callable[[HttpRequest], str],
        origin_ok: Callable[[HttpRequest], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        config = host.config
        self.core = host.core
        self.settings = config.uploads
        cfg = self.settings
        self.root = os.path.expanduser(cfg.dir) if cfg.dir else str(config.data_path() / "uploads")
        self.index = UploadIndex(Path(self.root))
        self.scheme = "https" if config.http.tls else "http"
        self.port = config.http.port
        self.public = cfg.public_url.rstrip("/")
        self.client_ip = client_ip
        self.origin_ok = origin_ok
        self.clock = clock
        self.io = ThreadPoolExecutor(max_workers=4, thread_name_prefix="relaychat-uploads")
        self.db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relaychat-uploads-db")
        self.auth = UploadAuth(self.core, clock)
        self.ready = False
        self.active = 0  # uploads in progress
        self.reserved: dict[str, int] = {}  # folded account -> bytes being uploaded
        self.reserved_files: dict[str, int] = {}  # folded account -> uploads in progress
        self.reserved_total = 0
        self.stored = 0  # files stored since start (metrics)
        self._task: asyncio.Task[None] | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def open(self) -> None:
        """Load the index (blocking: called once at start, before the port opens) and offer the
        upload URL (ISUPPORT, TOKEN). A directory that cannot be used turns uploads off, with
        one error line in the log; the rest of the server serves on."""
        try:
            self.index.load()
        except Exception as exc:
            log.error("uploads are off: cannot use %s: %s", self.root, exc)
            return
        self.ready = True
        tokens = attach_tokens(self.core, ttl=self.settings.token_ttl)
        tokens.add_service(Service("FILEHOST", "file uploads (POST, HTTP)", self.upload_url))
        self.core.isupport_hooks.append(self._isupport)
        log.info(
            "uploads: %d files (%s) in %s",
            len(self.index),
            format_size(self.index.total),
            self.root,
        )

    def start(self) -> None:
        """Start the retention pass (rule 5)."""
        if self.ready:
            self._task = asyncio.get_running_loop().create_task(self._retention_loop())

    def stop(self) -> None:
        """Stop the retention pass and close the index (waits for the database thread)."""
        if self._task is not None:
            self._task.cancel()
        self.ready = False
        self.io.shutdown(wait=True)
        self.db.submit(self.index.close)
        self.db.shutdown(wait=True)

    # --- what clients are told -----------------------------------------------------------------

    def base_url_for(self, user: User) -> str | None:
        """``scheme://host:port`` of the HTTP port as ``user`` reaches it: ``public_url``, the
        ``Host`` a WebSocket client used, or the address its IRC connection reached."""
        if self.public:
            return self.public
        peer = user.peer
        if isinstance(peer, WebSocketConnection):
            return peer.base_url
        if isinstance(peer, Connection) and peer.transport is not None:
            name = peer.transport.get_extra_info("sockname")
            if name:
                host = str(name[0])
                if host.startswith("::ffff:"):
                    host = host[7:]
                if ":" in host:
                    host = f"[{host.split('%', 1)[0]}]"
                return f"{self.scheme}://{host}:{self.port}"
        return None

    def upload_url(self, user: User) -> str | None:
        """The upload URL for ``user`` (ISUPPORT and ``TOKEN GENERATE FILEHOST``)."""
        base = self.base_url_for(user) if self.ready else None
        return base + "/upload" if base else None

    def _isupport(self, user: User) -> list[str]:
        url = self.upload_url(user)
        if url is None:
            return []
        value = _escape_isupport(url)
        return [f"draft/FILEHOST={value}", f"soju.im/FILEHOST={value}", "draft/AUTHTOKEN"]

    def _request_base(self, request: HttpRequest) -> str:
        """Where the links of an upload point (``public_url``, else the request's ``Host``)."""
        return self.public or request_base(request) or ""  # "": a relative Location

    # --- POST /upload --------------------------------------------------------------------------

    def cors(self, request: HttpRequest) -> tuple[tuple[str, str], ...] | None:
        """The CORS header fields for ``request``, or ``None`` when its Origin is refused."""
        origin = request.headers.get("origin")
        if origin is None:
            return ()
        if not self.origin_ok(request):
            return None
        return (
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", "OPTIONS, POST"),
            ("Access-Control-Allow-Headers", _CORS_HEADERS),
            ("Access-Control-Expose-Headers", "Location, Upload-Limit"),
            ("Access-Control-Max-Age", "600"),
            ("Vary", "Origin"),
        )

    def begin(self, request: HttpRequest) -> Begin:
        """The start of a request to ``/upload`` (see ``http.Router.begin``)."""
        cors = self.cors(request)
        if cors is None:
            origin = request.headers.get("origin")
            return Response.text(403, f"Pages from {origin} may not upload here", close=True)
        allow = (("Allow", "OPTIONS, POST"),)
        # The largest upload, as the resumable-uploads draft says it (draft-ietf-httpbis-
        # resumable-upload): browsers cannot send Expect: 100-continue, so the web client asks.
        limit = ("Upload-Limit", f"max-size={self.settings.max_size}")
        if request.method == "OPTIONS":
            return Response(204, b"", headers=(*cors, *allow, ("Accept-Post", "*/*"), limit))
        if request.method != "POST":
            return Response.text(405, "Upload with POST", headers=(*cors, *allow), close=True)
        if not self.ready:
            return self._no(cors, Response.text(503, "Uploads are not available on this server"))
        cfg = self.settings
        length_text = request.headers.get("content-length")
        length = int(length_text) if length_text is not None else None
        if length is not None and length > cfg.max_size:
            return self._no(
                cors,
                Response.text(
                    413,
                    f"File too large: {format_size(length)}; the largest upload is "
                    + format_size(cfg.max_size),
                    headers=(limit,),
                ),
            )
        if length == 0:
            return self._no(cors, Response.text(400, "The file is empty"))
        if cfg.max_concurrent and self.active >= cfg.max_concurrent:
            return self._no(
                cors,
                Response.text(
                    503,
                    "Too many uploads at once on this server; try again in a moment",
                    headers=(("Retry-After", "5"),),
                ),
            )
        try:
            query = parse_qs(request.query, max_num_fields=8)
        except ValueError:
            return self._no(cors, Response.text(400, "Too many query parameters"))
        given = name_from_disposition(request.headers.get("content-disposition"))
        from_query = query.get("name") or query.get("filename") or [""]
        name = safe_name(given or from_query[0])
        kind = declared_type(request.headers.get("content-type"), name)
        self.active += 1
        return self._open(request, cors, length, name, kind)

    def _no(self, cors: tuple[tuple[str, str], ...], answer: Response) -> Response:
        return replace(answer, headers=(*answer.headers, *cors), close=True)

    async def _open(
        self,
        request: HttpRequest,
        cors: tuple[tuple[str, str], ...],
        length: int | None,
        name: str,
        kind: str,
    ) -> Response | BodySink:
        started = False
        try:
            who = await self.auth.authenticate(
                request.headers.get("authorization"), self.client_ip(request)
            )
            if isinstance(who, Response):
                return self._no(cors, who)
            refusal = self.make_room(who.account, length or 0)
            if refusal is not None:
                return self._no(cors, refusal)
            self.reserve(who.account, length or 0, files=1)
            started = True
            loop = asyncio.get_running_loop()
            try:
                fd, tmp = await loop.run_in_executor(self.io, self._temp)
            except OSError as exc:
                log.error("uploads: cannot create a file in %s: %s", self.index.tmp_dir, exc)
                self.release(who.account, length or 0, files=1)
                started = False
                return self._no(cors, Response.text(500, "The server cannot store files now"))
            return UploadSink(
                self, who, name, kind, length, fd, tmp, cors, self._request_base(request)
            )
        finally:
            if not started:
                self.active -= 1

    def _temp(self) -> tuple[int, str]:
        return tempfile.mkstemp(prefix="up-", suffix=".part", dir=self.index.tmp_dir)

    # --- space ---------------------------------------------------------------------------------

    def reserve(self, account: str, size: int, *, files: int = 0) -> None:
        """Count ``size`` bytes (and ``files`` uploads) in progress for ``account`` (rule 2)."""
        key = irc_lower(account)
        self.reserved[key] = self.reserved.get(key, 0) + size
        if files:
            self.reserved_files[key] = self.reserved_files.get(key, 0) + files
        self.reserved_total += size

    def release(self, account: str, size: int, *, files: int = 0) -> None:
        """Undo :meth:`reserve`."""
        key = irc_lower(account)
        left = self.reserved.get(key, 0) - size
        if left > 0:
            self.reserved[key] = left
        else:
            self.reserved.pop(key, None)
        if files:
            count = self.reserved_files.get(key, 0) - files
            if count > 0:
                self.reserved_files[key] = count
            else:
                self.reserved_files.pop(key, None)
        self.reserved_total -= size

    def make_room(
        self,
        account: str,
        incoming: int,
        *,
        files: int = 1,
        delete: bool = True,
        disk: bool = True,
    ) -> Response | None:
        """Whether ``account`` may store ``incoming`` more bytes in ``files`` more files (rule 2).

        With ``quota_delete_oldest`` (and ``delete``), the account's oldest files (or everyone's,
        for ``max_total``) are deleted to make room. ``disk`` checks the free space too.

        Returns:
            ``None`` when there is room; else the refusal (413, 507).
        """
        cfg = self.settings
        index = self.index
        key = irc_lower(account)
        used, count = index.usage(account)
        pending = self.reserved.get(key, 0)
        uploads = self.reserved_files.get(key, 0)
        need_bytes = used + pending + incoming - cfg.quota_per_account
        need_files = count + uploads + files - cfg.max_files_per_account
        if not cfg.quota_per_account:
            need_bytes = 0
        if not cfg.max_files_per_account:
            need_files = 0
        if need_bytes > 0 or need_files > 0:
            victims = None
            if delete and cfg.quota_delete_oldest:
                victims = index.oldest_to_free(
                    account, need_bytes=need_bytes, need_files=need_files
                )
            if victims is None:
                if need_files > 0:
                    return Response.text(
                        413,
                        f"Too many files: you keep {count}, the limit is "
                        f"{cfg.max_files_per_account}",
                    )
                return Response.text(
                    413,
                    f"Over your upload quota: you keep {format_size(used)} of "
                    f"{format_size(cfg.quota_per_account)}, and this file is "
                    + format_size(incoming),
                )
            self.delete(victims, "quota")
        if cfg.max_total:
            over = index.total + self.reserved_total + incoming - cfg.max_total
            if over > 0:
                victims = None
                if delete and cfg.quota_delete_oldest and incoming <= cfg.max_total:
                    victims = index.oldest_to_free(None, need_bytes=over, need_files=0)
                if victims is None:
                    return Response.text(507, "The server's space for uploads is full")
                self.delete(victims, "max_total")
        return self.disk_room(incoming) if disk else None

    def disk_room(self, incoming: int) -> Response | None:
        """A 507 when storing ``incoming`` more bytes would leave less than ``min_free``."""
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            return None
        if free - incoming - self.reserved_total < self.settings.min_free:
            return Response.text(507, "Not enough disk space on the server for this file")
        return None

    # --- deleting ------------------------------------------------------------------------------

    def delete(self, victims: list[StoredFile], why: str) -> asyncio.Future[None] | None:
        """Remove ``victims`` from view now; their bytes and rows go on the database thread."""
        ids = [v.id for v in victims if self.index.remove(v.id) is not None]
        if not ids:
            return None
        log.info("uploads: deleting %d files (%s)", len(ids), why)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.db, self.index.delete_files, ids)

    async def sweep(self) -> int:
        """One retention pass (rule 5); return how many files it deleted."""
        cfg = self.settings
        victims = self.index.expired(self.clock(), cfg.retention_days * 86400)
        gone = {v.id for v in victims}
        if cfg.quota_delete_oldest:
            for key, used in list(self.index.used.items()):
                files = len(self.index.by_account.get(key, ()))
                need_bytes = used - cfg.quota_per_account if cfg.quota_per_account else 0
                need_files = files - cfg.max_files_per_account if cfg.max_files_per_account else 0
                if need_bytes > 0 or need_files > 0:
                    extra = self.index.oldest_to_free(  # key is folded already
                        key, need_bytes=need_bytes, need_files=need_files
                    )
                    victims += [v for v in extra or [] if v.id not in gone]
                    gone.update(v.id for v in extra or [])
            over = self.index.total - sum(v.size for v in victims) - cfg.max_total
            if cfg.max_total and over > 0:
                for entry in self.index.files.values():
                    if over <= 0:
                        break
                    if entry.id not in gone:
                        victims.append(entry)
                        gone.add(entry.id)
                        over -= entry.size
        done = self.delete(victims, "retention")
        if done is not None:
            await done
        return len(gone)

    async def _retention_loop(self) -> None:
        while True:
            await asyncio.sleep(RETENTION_EVERY)
            try:
                await self.sweep()
            except Exception:  # pragma: no cover - a bug; keep serving
                log.exception("uploads retention failed")

    # --- GET /uploads/<id>[/<name>] ------------------------------------------------------------

    def serve(self, request: HttpRequest) -> Response:
        """A stored file (rule 4), 304, 206, 416, 404 or 405."""
        file_id = request.path[len("/uploads/") :].split("/", 1)[0]
        entry = self.index.get(file_id) if ID_PATTERN.match(file_id) else None
        if entry is None or not self.ready:
            return Response.text(404, "No such file (files are kept for a limited time)")
        if request.method not in ("GET", "HEAD"):
            return Response.text(405, "Method not allowed", headers=(("Allow", "GET, HEAD"),))
        kind, inline = served_as(entry.content_type)
        etag = f'"{entry.id}"'
        headers: list[tuple[str, str]] = [
            ("ETag", etag),
            ("Cache-Control", "public, max-age=86400"),
            ("Last-Modified", formatdate(entry.created, usegmt=True)),
            ("Content-Disposition", content_disposition(entry.name, inline)),
            ("Accept-Ranges", "bytes"),
        ]
        match = request.headers.get("if-none-match")
        if match is not None and (
            match.strip() == "*" or etag in (t.strip() for t in match.split(","))
        ):
            return Response(304, b"", kind, tuple(headers))
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and if_range.strip() != etag:
            wanted = None  # the client's copy is another file: send it whole
        try:
            span = parse_range(wanted, entry.size)
        except ValueError:
            headers.append(("Content-Range", f"bytes */{entry.size}"))
            return Response.text(416, "Range not satisfiable", headers=tuple(headers))
        path = str(self.index.path_of(entry.id))
        if span is None:
            body = FileBody(path, 0, entry.size, self.io)
            return Response(200, b"", kind, tuple(headers), file=body)
        first, last = span
        headers.append(("Content-Range", f"bytes {first}-{last}/{entry.size}"))
        body = FileBody(path, first, last - first + 1, self.io)
        return Response(206, b"", kind, tuple(headers), file=body)

    def link(self, base: str, entry: StoredFile) -> str:
        """The URL of ``entry`` under ``base`` (rule 4)."""
        return f"{base}/uploads/{entry.id}/{url_name(entry.name)}"
