"""``relaychat send``: post TEXT, or each line of stdin, and exit 0 only once all is confirmed,
each message exactly once (docs/delivery.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import threading
from collections.abc import AsyncIterator

from relaychat.cli_client.common import (
    EXIT_CONNECT,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_USAGE,
    check_nick,
    fail,
    first_connection,
    join_or_fail,
    load_config,
)
from relaychat.client import Client, ClientClosed, Delivery, NotSent, OutboxFull

__all__ = ["run_send"]


async def run_send(args: argparse.Namespace) -> int:
    """Run ``send``; returns the exit code (0 only when the server confirmed every message).

    Raises:
        CannotConnect: the first connection failed, or the ``--nick`` given is in use.
        ConfigError: the settings are not usable.
    """
    config = load_config(args, {"max_attempts": 5}, channels=())  # (joins TARGET only)
    client = Client(config=config)
    events = client.events()
    await first_connection(client, events)
    try:
        await check_nick(client, args)
        if client.is_channel(args.target) and not args.no_join:
            refused = await join_or_fail(client, args.target)
            if refused is not None:
                return refused
        texts: AsyncIterator[str] = _one(args.text) if args.text is not None else _stdin_lines()
        return await _post(client, args, texts)
    finally:
        await client.close(timeout=2.0)


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


async def _one(text: str) -> AsyncIterator[str]:
    yield text


async def _post(client: Client, args: argparse.Namespace, texts: AsyncIterator[str]) -> int:
    """Send every text, then wait for the server to confirm them all, each exactly once."""
    pending: list[Delivery] = []
    failures: list[NotSent] = []
    twice: list[Delivery] = []  # confirmed, but written again where a repeat is not recognised
    total = 0

    async def settle(d: Delivery) -> None:
        error = await d.settled()
        if error is not None:
            failures.append(error)
        elif not d.exactly_once:
            twice.append(d)

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
                return fail(f"{exc.reason}; stopped after {total - 1} messages", EXIT_CONNECT)
        while pending and pending[0].done():
            await settle(pending.pop(0))
    if total == 0:
        return fail("nothing to send (empty input)", EXIT_USAGE)
    try:
        await asyncio.wait_for(asyncio.gather(*(settle(d) for d in pending)), args.timeout)
    except TimeoutError:
        unconfirmed = sum(not d.done() for d in pending)
        return fail(
            f"{unconfirmed} of {total} messages not confirmed within {args.timeout:g} s",
            EXIT_NOT_DELIVERED,
        )
    if failures:
        return fail(
            f"{len(failures)} of {total} messages not delivered: {failures[0].reason}",
            EXIT_NOT_DELIVERED,
        )
    if twice:
        return fail(
            f"{len(twice)} of {total} messages may have arrived twice: they were sent again "
            f"after a drop, with {client.delivery} delivery (the server cannot recognise a "
            "repeat)",
            EXIT_NOT_DELIVERED,
        )
    return EXIT_OK
