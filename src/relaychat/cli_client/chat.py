"""``relaychat chat``: the full-screen terminal client (IRC, or raw lines with ``--plain``).

With no server named anywhere it picks one with :func:`~relaychat.cli_client.common.pick_server`;
Textual is imported only once the first connection has succeeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import ssl
import sys

from relaychat.cli_client.common import (
    EXIT_OK,
    STDERR_LOG,
    Address,
    chain_events,
    check_nick,
    first_connection,
    host_given,
    load_config,
    pick_server,
    tls_context,
)
from relaychat.client import Client, ClientConfig
from relaychat.client.plain import PLAIN_PORT, PlainClient

__all__ = ["plain_client", "run_chat"]


#: Messages a channel shows when it is first opened (the config file's ``backlog`` changes it).
BACKLOG = 50


async def run_chat(args: argparse.Namespace) -> int:
    """Run ``chat`` until the user leaves; returns the exit code.

    Raises:
        CannotConnect: the first connection failed, or the ``--nick`` given is in use.
        ConfigError: the settings are not usable.
    """
    note = ""
    link: Client | PlainClient
    if args.plain:
        link = plain_client(args)
    else:
        channels = tuple(c.strip() for c in (args.join or "").split(",") if c.strip())
        config, note = await _discovered_config(
            args, load_config(args, {"backlog": BACKLOG}, join=channels)
        )
        link = Client(config=config)
    events = link.events()
    seen = await first_connection(link, events)
    if isinstance(link, Client):
        await check_nick(link, args)
    from relaychat.cli_client.files import dcc_config
    from relaychat.tui.app import ChatApp  # Textual is imported only when it is needed
    from relaychat.tui.model import SERVER

    dcc = dcc_config(args) if isinstance(link, Client) else None
    app = ChatApp(link, events=chain_events(seen, events), dcc=dcc)
    if note:
        app.state.info(note, app.state.buffers[SERVER])
    logger = logging.getLogger("relaychat")
    logger.removeHandler(STDERR_LOG)  # on screen, the app shows warnings in its server buffer
    try:
        await app.run_async()
    finally:
        logger.addHandler(STDERR_LOG)
        if isinstance(link, PlainClient):
            await link.close(timeout=2.0)
        else:
            await link.close("Leaving", timeout=2.0)
    return app.return_code or EXIT_OK


def plain_client(args: argparse.Namespace) -> PlainClient:
    """The plain-line link of ``chat --plain`` (TLS only when asked on the command line).

    Raises:
        ConfigError: the settings (or ``--tls-ca``) are not usable.
    """
    host, port = args.host if args.host is not None else ("127.0.0.1", None)
    tls: bool | ssl.SSLContext = tls_context(args.tls_ca) if args.tls_ca else bool(args.tls)
    config = dataclasses.replace(load_config(args, channels=()), tls=tls)
    return PlainClient(host, port or PLAIN_PORT, config=config)


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
