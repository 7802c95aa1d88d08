"""The client subcommands: ``relaychat chat``, ``relaychat send`` and ``relaychat tail``.

All three are built on :class:`relaychat.client.Client` and share one way to start:

- Settings, lowest precedence first: built-in defaults, the client config file
  (``~/.config/relaychat/client.toml``, or ``--config`` / ``RELAYCHAT_CLIENT_CONFIG``),
  ``RELAYCHAT_HOST/PORT/NICK``, then the command line.
- The *first* connection is tried once: if it fails (refused, unreachable, TLS, wrong password)
  the command prints one line and exits with :data:`EXIT_CONNECT`. Once connected, ``chat``
  and ``tail`` reconnect forever; ``send`` tries a few times (``max_attempts``, default 5).
- A nick given with ``--nick`` is required: if it is taken the command fails. A nick from the
  config file, the environment or the login name falls back to ``nick_`` instead.
- ``chat`` with no host anywhere (argument, ``RELAYCHAT_HOST``, config file) tries
  127.0.0.1:6667; if nothing listens there it looks for servers announced on the local network
  (:func:`relaychat.discovery.find_hosts`) and takes the first that answers (:func:`pick_server`).
- ``chat --plain`` speaks raw text lines to any line-based TCP service
  (:class:`relaychat.client.plain.PlainClient`) instead of IRC; default port 12345.

Failures are one line on stderr (``relaychat: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import ssl
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

from relaychat.client import (
    Client,
    ClientClosed,
    ClientConfig,
    Connected,
    Delivery,
    Disconnected,
    ErrorReply,
    Event,
    GaveUp,
    Message,
    NotSent,
    OutboxFull,
    Reconnecting,
    RequestFailed,
)
from relaychat.client.config import ENV_HOST, client_config_path, login_nick, read_client_file
from relaychat.client.plain import PLAIN_PORT, PlainClient
from relaychat.errors import ConfigError
from relaychat.protocol.casemap import irc_lower

__all__ = [
    "EXIT_CONNECT",
    "EXIT_NOT_DELIVERED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CannotConnect",
    "add_client_commands",
    "first_connection",
    "host_given",
    "parse_address",
    "parse_target",
    "pick_server",
    "run_client_command",
    "tcp_listens",
]

EXIT_OK = 0
#: Something the server refused or never confirmed: a message, or joining the channel.
EXIT_NOT_DELIVERED = 1
#: Bad command line or configuration (argparse uses 2 as well).
EXIT_USAGE = 2
#: Could not connect or register: refused, unreachable, TLS, nick in use, wrong password.
EXIT_CONNECT = 3
#: Replies that refuse a JOIN (RFC 2812 §3.2.1).
_JOIN_REFUSED = frozenset({"403", "405", "471", "473", "474", "475", "476", "477"})

#: Settings of the commands that differ from the library's (the config file can change them).
_CLIENT_DEFAULTS: dict[str, Any] = {
    # Room for the registration burst (about 10 lines) *and* the JOIN plus CHATHISTORY after
    # it: written together, the server answers the history before any new message, so a
    # resumed `tail` prints in order. (The library's default, 8, makes every JOIN wait ~0.5 s.)
    "pace_burst": 16,
}

_EXIT_CODES = """\
exit codes:
  0  done (send: the server confirmed every message)
  1  the server refused or did not confirm a message, or refused to let us join the channel
  2  bad command line or configuration
  3  could not connect or register: connection refused, host unreachable, TLS failure,
     nick given with --nick in use, wrong server password
"""
_SETTINGS = """\
settings come from, lowest first: built-in defaults, the client config file (%s,
or --config, or $RELAYCHAT_CLIENT_CONFIG), RELAYCHAT_HOST / RELAYCHAT_PORT / RELAYCHAT_NICK,
then the command line. The file holds client settings as TOML, e.g.
  nick = "alice"
  channels = ["#lobby"]
  password = "server password"
"""

_CHAT_ABOUT = (
    "A full-screen terminal chat client. Type /help inside for the commands; Ctrl+Q or /quit "
    "leaves. With no server given (argument, RELAYCHAT_HOST or config file) it connects to "
    "127.0.0.1:6667, or, when nothing listens there, to the first server announced on the local "
    "network (as `relaychat discover` lists them). With --plain it speaks raw text lines to any "
    "line-based TCP service (the sockets tutorial's server, netcat, relaychat's plain port; "
    "default 127.0.0.1:12345). If the first connection fails it exits at once (code 3); after "
    "that it reconnects forever."
)
_SEND_ABOUT = (
    "Post TEXT to TARGET (a channel or a nick), or, without TEXT, each line of stdin as one "
    "message as it comes. Exits 0 only when the server confirmed every message. A channel is "
    "joined first unless --no-join. If the first connection fails, send exits at once (code 3); "
    "if the link drops later, it reconnects up to max_attempts times (default 5) and then sends "
    "what was still waiting."
)
_TAIL_ABOUT = (
    "Print every message to TARGET (a #channel, or a nick's private messages to you) on stdout, "
    "one per line, until interrupted (exit 0). If the first connection fails, tail exits at "
    "once (code 3); after that it reconnects forever and, when the server keeps history "
    "(IRCv3 chathistory), prints what was said while it was away, without duplicates. Without "
    "server history, messages sent while it was disconnected are missed. Connection news goes "
    "to stderr."
)


class CannotConnect(Exception):
    """The first connection failed; ``reason`` says why (one line for the user)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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


# --- argparse -----------------------------------------------------------------------------------


def _wrap(text: str) -> str:
    return textwrap.fill(text, 79)


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--nick", help="your nick (default: from the config file, else login name)")
    group.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=None, help="connect with TLS"
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="trust the certificates in FILE (PEM), e.g. a development server's self-signed "
        "one; implies --tls",
    )
    group.add_argument("--password", help="the server password (better kept in the config file)")
    group.add_argument("--config", metavar="FILE", help="client config file (TOML)")


def add_client_commands(sub: Any) -> None:
    """Add the ``chat``, ``send`` and ``tail`` subcommands to ``sub`` (from add_subparsers).

    Each sets ``handler`` to :func:`run_client_command`, which ``relaychat.cli.main`` calls.
    """
    path = client_config_path()
    settings = _SETTINGS % path
    fmt = argparse.RawDescriptionHelpFormatter
    chat = sub.add_parser(
        "chat",
        help="chat in a full-screen terminal client",
        description=_wrap(_CHAT_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    chat.add_argument(
        "host", nargs="?", type=parse_address, metavar="HOST[:PORT]", help="the server"
    )
    chat.add_argument(
        "--plain",
        action="store_true",
        help="speak raw text lines, not IRC, to any line-based TCP service (port 12345 by "
        "default): each line typed is sent as it is",
    )
    chat.add_argument(
        "--join",
        metavar="'#a,#b'",
        help="channels to join (comma-separated), besides those of the config file",
    )
    _common(chat)

    send = sub.add_parser(
        "send",
        help="post a message (or each line of stdin) and confirm delivery",
        description=_wrap(_SEND_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    send.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    send.add_argument("target", type=parse_target, metavar="TARGET", help="a #channel or a nick")
    send.add_argument("text", nargs="?", metavar="TEXT", help="the message (default: stdin)")
    send.add_argument("--notice", action="store_true", help="send NOTICEs instead of PRIVMSGs")
    send.add_argument("--no-join", action="store_true", help="do not join the channel first")
    send.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the server to confirm the messages once the input has "
        "ended (default 30)",
    )
    _common(send)

    tail = sub.add_parser(
        "tail",
        help="stream a channel's messages to stdout",
        description=_wrap(_TAIL_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    tail.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    tail.add_argument("target", type=parse_target, metavar="TARGET", help="a #channel or a nick")
    tail.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: time, msgid (when the server gave one), nick, target, "
        "text, kind (message, action or notice)",
    )
    tail.add_argument("-q", "--quiet", action="store_true", help="no connection news on stderr")
    _common(tail)
    for parser in (chat, send, tail):
        parser.set_defaults(handler=run_client_command)


def run_client_command(args: argparse.Namespace) -> int:
    """Run ``chat``, ``send`` or ``tail`` (``args.command``); returns the exit code."""
    runner = {"chat": _chat, "send": _send, "tail": _tail}[args.command]
    _quiet_logging()
    try:
        return asyncio.run(runner(args))
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}", EXIT_USAGE)
    except CannotConnect as exc:
        return _fail(exc.reason, EXIT_CONNECT)
    except KeyboardInterrupt:
        return 130


def _fail(text: str, code: int) -> int:
    print(f"relaychat: {text}", file=sys.stderr)
    return code


class _OneLine(logging.Formatter):
    """``relaychat: message``, never a traceback (those are for ``-v`` runs of a developer)."""

    def formatException(self, ei: Any) -> str:
        return ""

    def formatStack(self, stack_info: str) -> str:
        return ""


#: The library's warnings as ``relaychat: ...`` lines on stderr (not while `chat` draws).
_STDERR = logging.StreamHandler(sys.stderr)
_STDERR.setFormatter(_OneLine("relaychat: %(message)s"))


def _quiet_logging() -> None:
    """Send the library's warnings to stderr as one line each, without tracebacks."""
    logger = logging.getLogger("relaychat")
    if _STDERR not in logger.handlers:
        logger.addHandler(_STDERR)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


# --- shared ---------------------------------------------------------------------------------------


def _config(
    args: argparse.Namespace,
    defaults: dict[str, Any] | None = None,
    *,
    join: tuple[str, ...] = (),
    **overrides: Any,
) -> ClientConfig:
    """The client's settings from every source (see the module docstring).

    Args:
        args: the command line.
        defaults: this command's defaults (below the config file).
        join: channels to join besides the config file's (``chat --join``).
        overrides: settings decided by the command (above everything).
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
        tls=_tls_context(args.tls_ca) if args.tls_ca else args.tls,
        password=args.password,
        **overrides,
    )


def _tls_context(cafile: str) -> ssl.SSLContext:
    """A client TLS context that trusts ``cafile`` (and checks the host name as usual)."""
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("--tls-ca", f"{cafile}: {reason}") from None


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


async def _chain(first: Iterable[Event], rest: AsyncIterator[Event]) -> AsyncIterator[Event]:
    for event in first:
        yield event
    async for event in rest:
        yield event


def _why(exc: RequestFailed) -> str:
    """The server's refusal as ``474: Cannot join channel (+b)``."""
    err = exc.reply.error
    if err is None:
        return str(exc)
    return f"{err.command}: {err.params[-1]}" if err.params else err.command


async def _check_nick(client: Client, args: argparse.Namespace) -> None:
    if args.nick and irc_lower(client.nick) != irc_lower(args.nick):
        await client.close()
        raise CannotConnect(f"the nick {args.nick} is already in use")


# --- chat: which server -------------------------------------------------------------------------

Address = tuple[str, int]


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


async def _discovered_config(
    args: argparse.Namespace, config: ClientConfig
) -> tuple[ClientConfig, str]:
    """``config`` pointed at the server to use when none was named (see :func:`pick_server`)."""
    if host_given(args):
        return config, ""
    from relaychat.discovery import DEFAULT_TIMEOUT, find_hosts

    tls = bool(config.tls)

    async def browse() -> list[Address]:
        return await find_hosts(DEFAULT_TIMEOUT, tls=tls)

    (host, port), note = await pick_server((config.host, config.port), browse=browse)
    if note:
        print(f"relaychat: {note}", file=sys.stderr)
    return dataclasses.replace(config, host=host, port=port), note


def _plain_client(args: argparse.Namespace) -> PlainClient:
    """The plain-line link of ``chat --plain`` (TLS only when asked on the command line)."""
    host, port = args.host if args.host is not None else ("127.0.0.1", None)
    tls: bool | ssl.SSLContext = _tls_context(args.tls_ca) if args.tls_ca else bool(args.tls)
    config = dataclasses.replace(_config(args, channels=()), tls=tls)
    return PlainClient(host, port or PLAIN_PORT, config=config)


# --- chat -----------------------------------------------------------------------------------------


async def _chat(args: argparse.Namespace) -> int:
    note = ""
    link: Client | PlainClient
    if args.plain:
        link = _plain_client(args)
    else:
        channels = tuple(c.strip() for c in (args.join or "").split(",") if c.strip())
        config, note = await _discovered_config(args, _config(args, join=channels))
        link = Client(config=config)
    events = link.events()
    seen = await first_connection(link, events)
    if isinstance(link, Client):
        await _check_nick(link, args)
    from relaychat.tui.app import ChatApp  # Textual is imported only when it is needed
    from relaychat.tui.model import SERVER

    app = ChatApp(link, events=_chain(seen, events))
    if note:
        app.state.info(note, app.state.buffers[SERVER])
    logger = logging.getLogger("relaychat")
    logger.removeHandler(_STDERR)  # on screen, the app shows warnings in its server buffer
    try:
        await app.run_async()
    finally:
        logger.addHandler(_STDERR)
        if isinstance(link, PlainClient):
            await link.close(timeout=2.0)
        else:
            await link.close("Leaving", timeout=2.0)
    return app.return_code or EXIT_OK


# --- send -----------------------------------------------------------------------------------------


async def _stdin_lines() -> AsyncIterator[str]:
    """The lines of stdin as they come (a daemon thread reads, so exiting never waits on it)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=256)

    def put(item: str | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    def read() -> None:
        # Any failure (stdin closed, the loop gone at exit) just ends the input, silently.
        with contextlib.suppress(BaseException):
            for raw in sys.stdin.buffer:
                put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        with contextlib.suppress(BaseException):
            put(None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def _send(args: argparse.Namespace) -> int:
    config = _config(args, {"max_attempts": 5}, channels=())  # (joins TARGET only)
    client = Client(config=config)
    events = client.events()
    await first_connection(client, events)
    try:
        await _check_nick(client, args)
        if client.is_channel(args.target) and not args.no_join:
            try:
                await client.join(args.target)
            except RequestFailed as exc:
                return _fail(f"cannot join {args.target}: {_why(exc)}", EXIT_NOT_DELIVERED)
        texts: AsyncIterator[str] = _one(args.text) if args.text is not None else _stdin_lines()
        return await _post(client, args, texts)
    finally:
        await client.close(timeout=2.0)


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def _post(client: Client, args: argparse.Namespace, texts: AsyncIterator[str]) -> int:
    """Send every text, then wait for the server to confirm them all."""
    pending: list[Delivery] = []
    failures: list[NotSent] = []
    total = 0

    async def settle(d: Delivery) -> None:
        error = await d.settled()
        if error is not None:
            failures.append(error)

    async for text in texts:
        if not text.strip():
            continue
        total += 1
        while True:
            try:
                pending.append(await client.send(args.target, text, notice=args.notice))
                break
            except OutboxFull:  # the server is slower than the input: wait for room
                await settle(pending.pop(0))
            except ClientClosed as exc:
                return _fail(f"{exc.reason}; stopped after {total - 1} messages", EXIT_CONNECT)
        while pending and pending[0].done():
            await settle(pending.pop(0))
    if total == 0:
        return _fail("nothing to send (empty input)", EXIT_USAGE)
    try:
        await asyncio.wait_for(asyncio.gather(*(settle(d) for d in pending)), args.timeout)
    except TimeoutError:
        unconfirmed = sum(not d.done() for d in pending)
        return _fail(
            f"{unconfirmed} of {total} messages not confirmed within {args.timeout:g} s",
            EXIT_NOT_DELIVERED,
        )
    if failures:
        return _fail(
            f"{len(failures)} of {total} messages not delivered: {failures[0].reason}",
            EXIT_NOT_DELIVERED,
        )
    return EXIT_OK


# --- tail -----------------------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message_record(event: Message) -> dict[str, Any]:
    """What ``tail --json`` prints for one message."""
    text, kind = event.text, "notice" if event.notice else "message"
    if not event.notice and text.startswith("\x01ACTION"):
        text, kind = text[8:].rstrip("\x01"), "action"
    record: dict[str, Any] = {"time": event.time or _utc_now()}
    if event.msgid:
        record["msgid"] = event.msgid
    record.update(nick=event.sender, target=event.target, text=text, kind=kind)
    return record


def _plain(record: dict[str, Any]) -> str:
    try:
        when = datetime.fromisoformat(record["time"].replace("Z", "+00:00")).astimezone()
        stamp = when.strftime("%H:%M:%S")
    except ValueError:
        stamp = record["time"]
    nick, text = record["nick"], record["text"]
    if record["kind"] == "action":
        return f"{stamp} * {nick} {text}"
    if record["kind"] == "notice":
        return f"{stamp} -{nick}- {text}"
    return f"{stamp} <{nick}> {text}"


async def _tail(args: argparse.Namespace) -> int:
    config = _config(args, channels=())  # (joins TARGET only)
    client = Client(config=config)
    events = client.events()
    seen = await first_connection(client, events)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    news: Callable[[str], None] = (
        (lambda _: None) if args.quiet else (lambda s: print(f"relaychat: {s}", file=sys.stderr))
    )
    try:
        await _check_nick(client, args)
        if client.is_channel(args.target):
            try:
                await client.join(args.target)
            except RequestFailed as exc:
                return _fail(f"cannot join {args.target}: {_why(exc)}", EXIT_NOT_DELIVERED)
        reading = asyncio.ensure_future(_follow(client, args, _chain(seen, events), news))
        stopping = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if reading in done:
            return reading.result()
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        return EXIT_OK
    finally:
        await client.close(timeout=2.0)


async def _follow(
    client: Client,
    args: argparse.Namespace,
    events: AsyncIterator[Event],
    news: Callable[[str], None],
) -> int:
    """Print the target's messages; report link changes; returns an exit code if it must end."""
    out: TextIO = sys.stdout
    target = irc_lower(args.target)
    was_connected = True
    async for event in events:
        if isinstance(event, Message) and irc_lower(event.reply_to) == target:
            record = message_record(event)
            line = json.dumps(record, ensure_ascii=False) if args.json else _plain(record)
            try:
                out.write(line + "\n")
                out.flush()
            except BrokenPipeError:  # the reader went away (`| head`): a normal end
                with contextlib.suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
                return EXIT_OK
        elif isinstance(event, Disconnected):
            was_connected = False
            news(f"disconnected: {event.reason}")
        elif isinstance(event, Reconnecting):
            news(f"reconnecting in {event.delay:.1f} s (attempt {event.attempt})")
        elif isinstance(event, Connected) and not was_connected:
            was_connected = True
            news(f"reconnected as {event.nick}")
        elif isinstance(event, ErrorReply) and event.code in _JOIN_REFUSED:
            if event.params and irc_lower(event.params[0]) == target:
                return _fail(f"cannot rejoin {args.target}: {event.text}", EXIT_NOT_DELIVERED)
        elif isinstance(event, GaveUp):
            return _fail(f"gave up: {event.reason}", EXIT_CONNECT)
    return EXIT_OK
