"""Uploading a file to the server's file host (IRCv3 ``draft/FILEHOST``, ``soju.im/FILEHOST``).

::

    from relaychat.client import Client
    from relaychat.client.upload import upload

    async with Client(nick="alice", sasl=("alice", "secret")) as client:
        done = await upload(client, "photo.png")
        await client.send("#lobby", done.url)

How it goes (https://soju.im/filehost, the IRCv3 filehost proposal):

1. The upload URL is the ISUPPORT token ``draft/FILEHOST`` (a space-separated list; the first
   http(s) URL is used) or ``soju.im/FILEHOST``. Over a TLS connection a plain ``http://`` URL is
   refused: the file and the credentials would travel in clear.
2. Credentials: when the server announces ``draft/AUTHTOKEN``, ``TOKEN GENERATE FILEHOST`` gives
   a one-use token sent as ``Authorization: Bearer`` (works however the session logged in);
   else, or when that is refused, the SASL account and password of the client's config as
   ``Basic``.
3. ``POST`` with ``Content-Length``, ``Content-Type``, ``Content-Disposition`` (the name) and
   ``Expect: 100-continue``: a refusal (401, 413, 507...) comes before any byte of the file is
   sent. The file is read and sent a chunk at a time, never whole in memory; ``progress`` is
   called as it goes. ``201 Created`` with ``Location`` is success; anything else is an
   :class:`~relaychat.client.errors.UploadError` carrying the server's one-line reason.

:func:`post_file` is step 3 alone, for any file host URL.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import mimetypes
import os
import ssl
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import h11

from relaychat import __version__
from relaychat.client.connection import Client
from relaychat.client.errors import ClientError, UploadError

__all__ = ["Uploaded", "filehost_url", "post_file", "upload", "upload_auth"]

#: Bytes read from the file and written at a time.
CHUNK = 1 << 20
#: Seconds to wait for ``100 Continue`` (or a refusal) before sending the body anyway.
CONTINUE_WAIT = 3.0
#: Most bytes of an answer read (its body is a line or a small JSON object).
MAX_ANSWER = 64 << 10

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Uploaded:
    """A file the server now hosts.

    Attributes:
        url: where it is: paste it in the chat.
        name: its name as sent.
        size: bytes sent.
        seconds: how long the upload took.
    """

    url: str
    name: str
    size: int
    seconds: float

    @property
    def rate(self) -> float:
        """Bytes per second."""
        return self.size / self.seconds if self.seconds > 0 else 0.0


def _unescape(value: str) -> str:
    """An ISUPPORT value with its ``\\xHH`` escapes decoded."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("\\x", i) and i + 4 <= len(value):
            try:
                out.append(chr(int(value[i + 2 : i + 4], 16)))
                i += 4
                continue
            except ValueError:
                pass
        out.append(value[i])
        i += 1
    return "".join(out)


def filehost_url(isupport: dict[str, str]) -> str | None:
    """The upload URL a server announces in ``isupport`` (rule 1), or ``None``."""
    for key in ("DRAFT/FILEHOST", "SOJU.IM/FILEHOST", "FILEHOST"):
        for url in _unescape(isupport.get(key, "")).split():
            if url.startswith(("https://", "http://")):
                return url
    return None


def _tls_context(tls: bool | ssl.SSLContext) -> ssl.SSLContext:
    return tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context()


async def upload_auth(client: Client) -> str:
    """The ``Authorization`` value to upload as ``client``'s account (rule 2).

    Raises:
        UploadError: the session has no account to upload as.
    """
    sasl = client.config.sasl
    refusal = ""
    if "DRAFT/AUTHTOKEN" in client.isupport:
        try:
            reply = await client.request("TOKEN", "GENERATE", "FILEHOST")
        except ClientError as exc:
            refusal = str(exc)
        else:
            for msg in reply.messages:
                if msg.command == "TOKEN" and len(msg.params) >= 4 and msg.params[0] == "GENERATE":
                    return "Bearer " + msg.params[3]
            error = reply.error
            refusal = error.params[-1] if error is not None and error.params else "no token"
    if sasl is not None:
        account, password = sasl
        pair = f"{account}:{password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")
    raise UploadError(
        "log in to an account first (sasl in the client config, or REGISTER)"
        + (f": {refusal}" if refusal else "")
    )


async def upload(
    client: Client,
    path: str | os.PathLike[str],
    *,
    name: str | None = None,
    content_type: str | None = None,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Uploaded:
    """Upload ``path`` to the file host of ``client``'s server, as its account.

    Args:
        client: a connected client (its ISUPPORT names the upload URL).
        path: the file.
        name: the name to give it (default: the file's own).
        content_type: its type (default: guessed from the name).
        progress: called with ``(bytes sent, total)`` as the upload goes.
        timeout: seconds without progress before giving up.

    Returns:
        Where the file is.

    Raises:
        UploadError: no file host, no account, the file cannot be read, or the server refused.
    """
    url = filehost_url(client.isupport)
    if url is None:
        raise UploadError("the server does not offer uploads (no draft/FILEHOST in its ISUPPORT)")
    tls = client.config.tls
    if tls and url.startswith("http://"):
        raise UploadError(
            f"the server's upload URL {url} is plain http:// and this connection uses TLS; "
            "refusing to send the file and credentials in clear (the server should set http.tls)"
        )
    auth = await upload_auth(client)
    return await post_file(
        url,
        path,
        authorization=auth,
        name=name,
        content_type=content_type,
        progress=progress,
        tls=tls or True,
        timeout=timeout,
    )


def _disposition(name: str) -> str:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += "; filename*=UTF-8''" + urllib.parse.quote(name, safe="")
    return value


async def post_file(
    url: str,
    path: str | os.PathLike[str],
    *,
    authorization: str,
    name: str | None = None,
    content_type: str | None = None,
    progress: Progress | None = None,
    tls: bool | ssl.SSLContext = True,
    timeout: float = 30.0,
) -> Uploaded:
    """``POST`` the file at ``path`` to the file host ``url`` (rule 3).

    Args:
        url: the upload URL (``http://`` or ``https://``).
        path: the file.
        authorization: the ``Authorization`` header's value.
        name, content_type, progress, timeout: as for :func:`upload`.
        tls: how to check an ``https://`` host (``True``: the system's trust store).

    Raises:
        UploadError: the file cannot be read, the host cannot be reached, or it refused.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UploadError(f"not an http(s) URL: {url}")
    file = Path(path)
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise UploadError(f"cannot read {file}: {exc.strerror or exc}") from None
    started = time.monotonic()
    try:
        size = os.fstat(handle.fileno()).st_size
        name = name or file.name
        kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [
            ("Host", parts.netloc),
            ("User-Agent", f"relaychat/{__version__}"),
            ("Authorization", authorization),
            ("Content-Type", kind),
            ("Content-Disposition", _disposition(name)),
            ("Content-Length", str(size)),
            ("Expect", "100-continue"),
        ]
        context = _tls_context(tls) if parts.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):  # (not wait_for: see client.link.open_link)
                reader, writer = await asyncio.open_connection(
                    parts.hostname,
                    port,
                    ssl=context,
                    server_hostname=parts.hostname if context else None,
                )
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise UploadError(f"cannot connect to {parts.netloc}: {reason}") from None
        try:
            status, answer, location = await _exchange(
                reader, writer, handle, target, headers, size, progress, timeout
            )
        finally:
            writer.close()
    finally:
        handle.close()
    if status != 201:
        raise UploadError(answer or f"the server answered {status}", status)
    link = urllib.parse.urljoin(url, location) if location else ""
    if not link:
        try:
            link = str(json.loads(answer).get("url", ""))
        except (ValueError, AttributeError):
            link = ""
    if not link:
        raise UploadError("the server stored the file but gave no URL for it", status)
    return Uploaded(link, name, size, time.monotonic() - started)


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handle: BinaryIO,
    target: str,
    headers: list[tuple[str, str]],
    size: int,
    progress: Progress | None,
    timeout: float,
) -> tuple[int, str, str]:
    """Send the request (the body after ``100 Continue``, or after :data:`CONTINUE_WAIT`) and
    read the final answer: ``(status, its body as text, Location)``."""
    conn = h11.Connection(h11.CLIENT)
    writer.write(conn.send(h11.Request(method="POST", target=target, headers=headers)))
    go_on = asyncio.Event()
    answer = asyncio.ensure_future(_final(conn, reader, go_on))
    waiter = asyncio.ensure_future(go_on.wait())
    body = b""
    try:
        await asyncio.wait({answer, waiter}, timeout=CONTINUE_WAIT, return_when="FIRST_COMPLETED")
        waiter.cancel()
        try:
            if not answer.done():
                await _send_body(conn, writer, handle, size, progress, answer, timeout)
            response = await asyncio.wait_for(answer, timeout)
            body = await _body(conn, reader, timeout)
        except (OSError, h11.ProtocolError) as exc:
            # Refused while we sent (the server closes after answering): the answer explains.
            await asyncio.wait({answer}, timeout=1.0)
            if not answer.done() or answer.cancelled() or answer.exception() is not None:
                raise UploadError(f"the connection failed: {exc}") from None
            response = answer.result()
            with contextlib.suppress(Exception):
                body = await _body(conn, reader, 1.0)
    except TimeoutError:
        raise UploadError(f"no progress for {timeout:g} s") from None
    finally:
        waiter.cancel()
        if not answer.done():
            answer.cancel()
    location = ""
    for key, value in response.headers:
        if key == b"location":
            location = value.decode("utf-8", "replace")
    text = body.decode("utf-8", "replace").strip()
    if response.status_code != 201:
        text = text.splitlines()[0] if text else ""
    return response.status_code, text, location


async def _final(
    conn: h11.Connection, reader: asyncio.StreamReader, go_on: asyncio.Event
) -> h11.Response:
    """The final response's head; ``go_on`` is set on ``100 Continue``."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(MAX_ANSWER)
            conn.receive_data(data)
            if not data:
                raise OSError("the server closed the connection")
            continue
        if isinstance(event, h11.InformationalResponse):
            go_on.set()
            continue
        if isinstance(event, h11.Response):
            return event
        raise OSError(f"unexpected {type(event).__name__} from the server")


async def _body(conn: h11.Connection, reader: asyncio.StreamReader, timeout: float) -> bytes:
    out = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(MAX_ANSWER), timeout)
            conn.receive_data(data)
            if not data:
                return bytes(out)
            continue
        if isinstance(event, h11.Data):
            if len(out) < MAX_ANSWER:
                out += event.data
            continue
        return bytes(out)


async def _send_body(
    conn: h11.Connection,
    writer: asyncio.StreamWriter,
    handle: BinaryIO,
    size: int,
    progress: Progress | None,
    answer: asyncio.Future[h11.Response],
    timeout: float,
) -> None:
    """Send the file a chunk at a time; stop early when the server has answered already."""
    read = handle.read
    sent = 0
    while sent < size and not answer.done():
        chunk = await asyncio.to_thread(read, min(CHUNK, size - sent))
        if not chunk:
            raise OSError(f"the file shrank to {sent} bytes while it was sent")
        writer.write(conn.send(h11.Data(data=chunk)))
        await asyncio.wait_for(writer.drain(), timeout)
        sent += len(chunk)
        if progress is not None:
            progress(sent, size)
    if not answer.done():
        writer.write(conn.send(h11.EndOfMessage()))
        await asyncio.wait_for(writer.drain(), timeout)
