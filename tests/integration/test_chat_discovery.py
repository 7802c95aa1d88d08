"""`relaychat chat` with no host: nothing on 127.0.0.1:6667, so it connects to a server
announced on the local network. On loopback only (the announcement and the browsing stay on
``lo``), like the other discovery tests."""

from __future__ import annotations

import asyncio
import secrets
import socket

from relaychat import __version__
from relaychat.cli_client import first_connection, pick_server
from relaychat.client import Client
from relaychat.discovery import AnnouncePlan, Announcer, find_hosts
from relaychat.server.listeners import Server
from tests.harness import TIMEOUT
from tests.integration.test_discovery import BROWSE_S, LOOPBACK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_chat_without_host_finds_an_announced_server(server: Server) -> None:
    network = f"net{secrets.token_hex(4)}"
    port = server.addresses[0][1]
    announcer = Announcer(
        AnnouncePlan(
            instance=f"relaychat chat test {network}",
            host=f"rc-chat-{network}.local.",
            port=port,
            addresses=("127.0.0.1",),
            interfaces=("127.0.0.1",),
            txt={"txtvers": "1", "network": network, "version": __version__},
        )
    )
    announcer.start()
    try:
        assert await announcer.wait_announced(TIMEOUT), "registration did not complete"

        async def browse() -> list[tuple[str, int]]:
            return await find_hosts(BROWSE_S, network=network, interfaces=LOOPBACK)

        nobody = ("127.0.0.1", free_port())  # stands for an empty 127.0.0.1:6667
        address, note = await pick_server(nobody, browse=browse)
        assert address == ("127.0.0.1", port)
        assert note == (
            f"no server on 127.0.0.1:{nobody[1]}; connecting to 127.0.0.1:{port}, found on the "
            "local network"
        )
        client = Client(*address, nick="finder")
        events = client.events()
        await asyncio.wait_for(first_connection(client, events), TIMEOUT)
        await client.close(timeout=1.0)
    finally:
        await asyncio.wait_for(announcer.stop(), TIMEOUT)
