"""Opening a TCP or TLS link, and putting socket failures into words; shared by both clients.

Rules:
1. Only what :class:`~relaychat.client.Client` and
   :class:`~relaychat.client.plain.PlainClient` do the same way to a socket belongs here: the
   TLS context, the connect timeout, the socket options, the wording of failures.
2. A failure to connect is a reason (a string), not an exception: the reconnect loop
   (:mod:`relaychat.client.reconnect`) reports it and decides whether to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import re
import socket
import ssl

from relaychat.client.config import ClientConfig

__all__ = ["describe", "open_link", "tune"]


def describe(exc: BaseException) -> str:
    """Put a socket, TLS or timeout failure into a few words for a user.

    Args:
        exc: the exception raised by a connect, read or write.

    Returns:
        E.g. ``"connection refused"``, ``"TLS failure: CERTIFICATE_VERIFY_FAILED"``.
    """
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    # asyncio words a refusal "Connect call failed (addr)", and folds one per address into
    # "Multiple exceptions: [Errno 111] ..." (Python 3.11): say what happened instead.
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, OSError)
        and str(exc).startswith("Multiple exceptions:")
        and set(re.findall(r"\[Errno (\d+)\]", str(exc))) == {str(errno.ECONNREFUSED)}
    ):
        return "connection refused"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def tune(writer: asyncio.StreamWriter) -> None:
    """Set TCP_NODELAY (lines go out at once) and SO_KEEPALIVE on the writer's socket.

    Does nothing when there is no socket, and ignores options the system refuses.
    """
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)


async def open_link(
    config: ClientConfig, label: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
    """Connect to ``config.host``:``config.port`` (TLS per ``config.tls``) and :func:`tune` it.

    Args:
        config: ``host``, ``port``, ``tls`` (``True``: the system's trust store, or an
            :class:`ssl.SSLContext`) and ``connect_timeout`` are read.
        label: how the peer is named in a failure (``"host:port"``).

    Returns:
        The stream pair, which the caller must close (``writer.transport.abort()``) when done;
        or, when the connection could not be made, why (``"cannot connect to ...: ..."``).
    """
    ctx: ssl.SSLContext | None = None
    if config.tls is True:
        ctx = ssl.create_default_context()
    elif isinstance(config.tls, ssl.SSLContext):
        ctx = config.tls
    try:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation that
        # lands as the connection completes, and the caller's task would carry on connected.
        async with asyncio.timeout(config.connect_timeout):
            reader, writer = await asyncio.open_connection(
                config.host, config.port, ssl=ctx, server_hostname=config.host if ctx else None
            )
    except TimeoutError:
        return f"connect to {label} timed out after {config.connect_timeout:g} s"
    except (OSError, ssl.SSLError) as exc:
        return f"cannot connect to {label}: {describe(exc)}"
    tune(writer)
    return reader, writer
