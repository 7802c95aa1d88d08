"""A blocking facade for simple scripts: one call, one message, a clear error if it failed.

::

    from relaychat.client.sync import send_message
    send_message("127.0.0.1", 6667, "#deploys", "build 42 is out", nick="deploybot")
"""

from __future__ import annotations

import asyncio
from typing import Any

from relaychat.client.connection import Client

__all__ = ["send_message"]


def send_message(
    host: str | None,
    port: int | None,
    target: str,
    text: str,
    *,
    nick: str | None = None,
    notice: bool = False,
    timeout: float = 30.0,
    **settings: Any,
) -> None:
    """Connect, join ``target`` if it is a channel, send ``text``, wait for the server to
    confirm it, and disconnect. Blocks; must not be called from a running event loop.

    Args:
        host, port, nick: as for :class:`~relaychat.client.Client` (``None``: environment).
        target: a channel or a nick.
        text: any length (it is split to fit).
        notice: send a NOTICE.
        timeout: the longest the whole call may take, in seconds.
        settings: other :class:`~relaychat.client.ClientConfig` fields (default
            ``max_attempts=3`` so that an unreachable server fails instead of waiting for ever).

    Raises:
        NotSent: some of the text was not delivered (``unsent`` says which lines).
        GaveUpError: the server could not be reached.
        RequestFailed: the channel could not be joined.
        TimeoutError: the whole call took longer than ``timeout``.
        ConfigError: bad settings (e.g. no nick).
    """
    settings.setdefault("max_attempts", 3)

    async def main() -> None:
        async with Client(host, port, nick=nick, **settings) as client:
            if client.is_channel(target):
                await client.join(target)
            await client.send(target, text, notice=notice, confirm=True)

    async def bounded() -> None:
        await asyncio.wait_for(main(), timeout)

    asyncio.run(bounded())
