"""``relaychat tail``: print a channel's (or a nick's) messages on stdout until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from relaychat.cli_client.common import (
    EXIT_CONNECT,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    chain_events,
    check_nick,
    fail,
    first_connection,
    join_or_fail,
    load_config,
)
from relaychat.client import (
    Client,
    Connected,
    Disconnected,
    ErrorReply,
    Event,
    GaveUp,
    Message,
    Reconnecting,
)
from relaychat.protocol.casemap import irc_lower

__all__ = ["message_record", "run_tail"]

#: Replies that refuse a JOIN (RFC 2812 §3.2.1).
_JOIN_REFUSED = frozenset({"403", "405", "471", "473", "474", "475", "476", "477"})


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


async def run_tail(args: argparse.Namespace) -> int:
    """Run ``tail`` until SIGINT/SIGTERM (exit 0) or a failure; returns the exit code.

    Raises:
        CannotConnect: the first connection failed, or the ``--nick`` given is in use.
        ConfigError: the settings are not usable.
    """
    config = load_config(args, channels=())  # (joins TARGET only)
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
        await check_nick(client, args)
        if client.is_channel(args.target):
            refused = await join_or_fail(client, args.target)
            if refused is not None:
                return refused
        reading = asyncio.ensure_future(_follow(client, args, chain_events(seen, events), news))
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


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
                return fail(f"cannot rejoin {args.target}: {event.text}", EXIT_NOT_DELIVERED)
        elif isinstance(event, GaveUp):
            return fail(f"gave up: {event.reason}", EXIT_CONNECT)
    return EXIT_OK
