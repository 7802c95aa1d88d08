"""WHO scans in parts over a real socket (issue 17 item 10): every part is sent, including after
parts that matched nobody, and the asker's later commands come after the 315."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from relaychat.server.commands import who as who_module
from relaychat.server.listeners import Server
from tests.harness import LineClient

MakeServer = Callable[..., Any]


async def test_a_scan_whose_first_parts_match_nobody_goes_on(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(who_module, "WHO_PART", 3, raising=False)
    server: Server = await make_server()
    host, port = server.addresses[0]
    clients: list[LineClient] = []
    try:
        for i in range(10):
            c = await LineClient.open(host, port)
            await c.register(f"filler{i}")
            clients.append(c)
        zed = await LineClient.open(host, port)
        await zed.register("zed")
        clients.append(zed)
        asker = clients[0]
        await asker.send("WHO zed*")  # the first three parts (nine users) match nobody
        await asker.send("PING :after-who")
        await asker.expect(r" 352 filler0 \* ~?zed \S+ \S+ zed H :0 zed$")
        await asker.expect(r" 315 filler0 zed\* :End of WHO list$")
        await asker.expect(r"PONG \S+ :?after-who$")
    finally:
        for c in clients:
            await c.close()
