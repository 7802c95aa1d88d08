"""What ``chat``, ``send`` and ``tail`` share: exit codes, parsing, settings, the first connection.

Rules: nothing here knows which command runs; a helper used by one command only lives in that
command's module. Failures the user sees are :class:`CannotConnect` (exit
:data:`EXIT_CONNECT`), :class:`relaychat.errors.ConfigError` (exit :data:`EXIT_USAGE`), or a
line printed by :func:`fail`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from relaychat.client import (
    Client,
    ClientConfig,
    Connected,
    Event,
    GaveUp,
    Reconnecting,
    RequestFailed,
)
from relaychat.client.config import ENV_HOST, client_config_path, login_nick, read_client_file
from relaychat.client.plain import PlainClient
from relaychat.errors import ConfigError
from relaychat.protocol.casemap import irc_lower

__all__ = [
    "EXIT_CONNECT",
    "EXIT_NOT_DELIVERED",
    "EXIT_OK",
    "EXIT_USAGE",
    "STDERR_LOG",
    "Address",
    "CannotConnect",
    "chain_events",
    "check_nick",
    "fail",
    "first_connection",
    "host_given",
    "join_or_fail",
    "load_config",
    "parse_address",
    "parse_target",
    "pick_server",
    "quiet_logging",
    "refusal_text",
    "tcp_listens",
    "tls_context",
]

EXIT_OK = 0
#: Something the server refused or never confirmed: a message, or joining the channel.
EXIT_NOT_DELIVERED = 1
#: Bad command line or configuration (argparse uses 2 as well).
EXIT_USAGE = 2
#: Could not connect or register: refused, unreachable, TLS, nick in use, wrong password.
EXIT_CONNECT = 3

#: Settings of the commands that differ from the library's (the config file can change them).
_CLIENT_DEFAULTS: dict[str, Any] = {
    # Room for the registration burst (about 10 lines) *and* the JOIN plus CHATHISTORY after
    # it: written together, the server answers the history before any new message, so a
    # resumed `tail` prints in order. (The library's default, 8, makes every JOIN wait ~0.5 s.)
    "pace_burst": 16,
}

#: A server's (host, port).
Address = tuple[str, int]


class CannotConnect(Exception):
    """The first connection failed; ``reason`` says why (one line for the user)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- parsing --------------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[str, int | None]:
    """Split ``HOST``, ``HOST:PORT``, ``[IPv6]:PORT`` or a bare IPv6 address.

    Raises:
        argparse.ArgumentTypeError: the port is not a number from 1 to 65535.
    """
    host, port = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host:
        raise argparse.ArgumentTypeError(f"{text!r} has no host")
    if not port:
        return host, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{port!r} is not a port number")
    return host, int(port)


def parse_target(text: str) -> str:
    """Check a message target: one channel or nick (no spaces, commas or control characters).

    Raises:
        argparse.ArgumentTypeError: it is not a single valid target.
    """
    if not text or text[0] == ":" or any(c in text for c in " ,\r\n\0\x07"):
        raise argparse.ArgumentTypeError(f"{text!r} is not one channel or nick")
    return text


# --- output ---------------------------------------------------------------------------------------


def fail(text: str, code: int) -> int:
    """Print ``relaychat: text`` on stderr; returns ``code`` for the command to exit with."""
    print(f"relaychat: {text}", file=sys.stderr)
    return code


class _OneLine(logging.Formatter):
    """``relaychat: message``, never a traceback (those are for ``-v`` runs of a developer)."""

    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""


#: The library's warnings as ``relaychat: ...`` lines on stderr (not while `chat` draws).
STDERR_LOG = logging.StreamHandler(sys.stderr)
STDERR_LOG.setFormatter(_OneLine("relaychat: %(message)s"))


def quiet_logging() -> None:
    """Send the library's warnings to stderr as one line each, without tracebacks."""
    logger = logging.getLogger("relaychat")
    if STDERR_LOG not in logger.handlers:
        logger.addHandler(STDERR_LOG)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


# --- settings -------------------------------------------------------------------------------------


def load_config(
    args: argparse.Namespace,
    defaults: dict[str, Any] | None = None,
    *,
    join: tuple[str, ...] = (),
    **overrides: Any,
) -> ClientConfig:
    """The client's settings from every source (see :mod:`relaychat.cli_client`).

    Args:
        args: the command line.
        defaults: this command's defaults (below the config file).
        join: channels to join besides the config file's (``chat --join``).
        overrides: settings decided by the command (above everything).

    Raises:
        ConfigError: the config file, the environment or ``--tls-ca`` is not usable.
    """
    path = args.config or client_config_path()
    from_file = read_client_file(path, missing_ok=args.config is None)
    host, port = args.host if args.host is not None else (None, None)
    base = {"nick": login_nick(), **_CLIENT_DEFAULTS, **(defaults or {}), **from_file}
    if join:
        known = {irc_lower(c) for c in join}
        kept = [c for c in base.pop("channels", ()) if irc_lower(c) not in known]
        overrides["channels"] = (*kept, *join)
    return ClientConfig.from_env(
        file_settings=base,
        host=host,
        port=port,
        nick=args.nick,
        tls=tls_context(args.tls_ca) if args.tls_ca else args.tls,
        password=args.password,
        delivery=getattr(args, "delivery", None),
        **overrides,
    )


def tls_context(cafile: str) -> ssl.SSLContext:
    """A client TLS context that trusts ``cafile`` (and checks the host name as usual).

    Raises:
        ConfigError: ``cafile`` cannot be read or holds no usable certificate.
    """
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("--tls-ca", f"{cafile}: {reason}") from None


# --- connecting -----------------------------------------------------------------------------------


async def first_connection(
    client: Client | PlainClient, events: AsyncIterator[Event]
) -> list[Event]:
    """Start ``client`` and wait until it is registered, giving up at the first failure.

    Args:
        client: a client not started yet (IRC, or plain: then "registered" is "connected").
        events: its event stream, subscribed before starting.

    Returns:
        The events read on the way (up to and including :class:`Connected`), to pass on.

    Raises:
        CannotConnect: the first attempt failed (refused, unreachable, TLS, wrong password...).
    """
    seen: list[Event] = []
    client.start()
    async for event in events:
        seen.append(event)
        if isinstance(event, Connected):
            return seen
        if isinstance(event, Reconnecting | GaveUp):
            await client.close()
            reason = event.reason
            if client.config.tls and "timed out" in reason:
                reason += " (is that port a TLS port?)"
            raise CannotConnect(reason)
    raise CannotConnect("the client stopped before it connected")


async def chain_events(first: Iterable[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The events of ``first`` (those :func:`first_connection` read), then those of ``rest``."""
    for event in first:
        yield event
    async for event in rest:
        yield event


def refusal_text(exc: RequestFailed) -> str:
    """The server's refusal as ``474: Cannot join channel (+b)``."""
    err = exc.reply.error
    if err is None:
        return str(exc)
    return f"{err.command}: {err.params[-1]}" if err.params else err.command


async def join_or_fail(client: Client, channel: str) -> int | None:
    """Join ``channel``: ``None`` once joined, else the exit code, the refusal said on stderr."""
    try:
        await client.join(channel)
    except RequestFailed as exc:
        return fail(f"cannot join {channel}: {refusal_text(exc)}", EXIT_NOT_DELIVERED)
    return None


async def check_nick(client: Client, args: argparse.Namespace) -> None:
    """Close ``client`` if it fell back from the nick given with ``--nick``.

    Raises:
        CannotConnect: that nick was in use.
    """
    if args.nick and irc_lower(client.nick) != irc_lower(args.nick):
        await client.close()
        raise CannotConnect(f"the nick {args.nick} is already in use")


# --- which server, when none was named ------------------------------------------------------------


def host_given(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the user named a server: as the argument, in ``RELAYCHAT_HOST``, or in the file.

    Raises:
        ConfigError: the config file cannot be read.
    """
    env = os.environ if environ is None else environ
    if args.host is not None or env.get(ENV_HOST):
        return True
    path = args.config or client_config_path(environ)
    return "host" in read_client_file(path, missing_ok=args.config is None)


async def tcp_listens(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts a TCP connection on ``host``:``port`` (it is closed at once)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.transport.abort()
    return True


async def pick_server(
    default: Address,
    *,
    listens: Callable[[str, int], Awaitable[bool]] = tcp_listens,
    browse: Callable[[], Awaitable[list[Address]]],
) -> tuple[Address, str]:
    """The server ``chat`` connects to when none was named.

    ``default`` when something listens there; else the first server browsing found that
    accepts a connection.

    Args:
        default: where to look first (127.0.0.1 and the IRC port).
        listens: whether something listens at (host, port).
        browse: the servers announced on the local network, best first
            (:func:`relaychat.discovery.find_hosts`); it raises when there are none.

    Returns:
        The address, and a line for the user saying how it was found (``""`` for ``default``).

    Raises:
        CannotConnect: nothing listens at ``default`` and browsing found no server that answers.
    """
    from relaychat.discovery import DiscoveryError, NoServersFound

    if await listens(*default):
        return default, ""
    here = _endpoint(default)
    try:
        found = await browse()
    except (NoServersFound, DiscoveryError) as exc:
        raise CannotConnect(f"no server on {here}, and {_lower_first(str(exc))}") from None
    for address in found:
        if await listens(*address):
            more = f" (of {len(found)} found)" if len(found) > 1 else ""
            return address, (
                f"no server on {here}; connecting to {_endpoint(address)}, found on the "
                f"local network{more}"
            )
    where = ", ".join(_endpoint(a) for a in found)
    raise CannotConnect(f"no server on {here}, and none of those found answers: {where}")


def _endpoint(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
