"""Accounts over real sockets: persistence across restarts, PASS login, nick protection, and the
event loop staying responsive while argon2 runs in a worker thread."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from relaychat.config import Accounts
from relaychat.server.listeners import Server
from tests.harness import LineClient, ServerProcess, free_config

PASSWORD = "hunter2-but-longer"
MakeServer = Callable[..., Any]


async def connect(host: str, port: int, nick: str, *, password: str | None = None) -> LineClient:
    c = await LineClient.open(host, port)
    if password is not None:
        await c.send(f"PASS {password}")
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick}")
    await c.expect(r" 001 ")
    await c.expect(r" (376|422) ")
    return c


def plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


async def test_accounts_survive_a_restart(tmp_path: Path) -> None:
    server = await ServerProcess.start("--data-dir", str(tmp_path))
    try:
        alice = await connect(server.host, server.port, "alice")
        await alice.send(f"REGISTER * alice@example.org {PASSWORD}")
        await alice.expect(r"REGISTER SUCCESS alice :Account alice registered")
        await alice.expect(r" 900 alice ")
        await alice.close()
    finally:
        assert await server.stop() == 0
    assert (tmp_path / "accounts.db").exists()

    server = await ServerProcess.start("--data-dir", str(tmp_path))
    clients: list[LineClient] = []
    try:
        # SASL PLAIN
        c = await LineClient.open(server.host, server.port)
        clients.append(c)
        await c.send("CAP LS 302")
        await c.send("CAP REQ sasl")
        await c.send("NICK alice")
        await c.send("USER alice 0 * :alice")
        await c.expect(r" ACK :?sasl")
        await c.send("AUTHENTICATE PLAIN")
        await c.expect(r"^AUTHENTICATE \+$")
        await c.send(f"AUTHENTICATE {plain('alice', PASSWORD)}")
        await c.expect(r" 903 alice ")
        await c.send("CAP END")
        await c.expect(r" 001 alice ")
        # PASS account:password
        other = await connect(server.host, server.port, "ally", password=f"alice:{PASSWORD}")
        clients.append(other)
        assert any(" 900 ally ally!~ally@127.0.0.1 alice :" in line for line in other.seen)
        # The name is taken for good.
        bob = await connect(server.host, server.port, "bob")
        clients.append(bob)
        await bob.send(f"REGISTER alice * {PASSWORD}")
        await bob.expect(r"FAIL REGISTER ACCOUNT_EXISTS alice :The account alice is registered")
    finally:
        for client in clients:
            await client.close()
        assert await server.stop() == 0


async def test_pass_login_failure_is_explained(make_server: MakeServer, tmp_path: Path) -> None:
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    host, port = server.addresses[0]
    c = await connect(host, port, "nobody", password="ghost:whatever")
    try:
        assert any(
            "Login failed: invalid account name or password; you are connected without an account"
            in line
            for line in c.seen
        )
    finally:
        await c.close()


async def test_hashing_does_not_block_other_clients(
    make_server: MakeServer, tmp_path: Path
) -> None:
    """argon2 takes ~0.2 s of CPU here; it runs in a worker thread, so others are served."""
    server: Server = await make_server(free_config(data_dir=str(tmp_path)))
    host, port = server.addresses[0]
    alice = await connect(host, port, "alice")
    bob = await connect(host, port, "bob")
    loop = asyncio.get_running_loop()
    try:
        await alice.send(f"REGISTER * * {PASSWORD}")
        await bob.send("PING :still-here")

        async def when(c: LineClient, pattern: str) -> float:
            await c.expect(pattern)
            return loop.time()

        registered, pong = await asyncio.gather(
            when(alice, r"REGISTER SUCCESS alice "), when(bob, r"PONG \S+ :?still-here")
        )
        assert pong < registered
    finally:
        await alice.close()
        await bob.close()


async def test_nick_protection_renames_a_stranger(make_server: MakeServer, tmp_path: Path) -> None:
    config = free_config(
        data_dir=str(tmp_path),
        registration_timeout=0.4,  # the server ticks every 0.1 s
        accounts=replace(Accounts(), nick_grace=0.2),
    )
    server: Server = await make_server(config)
    host, port = server.addresses[0]
    owner = await connect(host, port, "carol")
    await owner.send(f"REGISTER * * {PASSWORD}")
    await owner.expect(r" 900 carol ")
    await owner.send("QUIT")
    await owner.closed()
    stranger = await connect(host, port, "mallory")
    watcher = await connect(host, port, "walter")
    try:
        for c in (stranger, watcher):
            await c.send("JOIN #room")
            await c.expect(r" 366 ")
        await stranger.send("NICK carol")
        await stranger.expect(r"NOTICE carol :The nick carol is registered to the account carol")
        m = await stranger.expect(r"^:carol!\S+ NICK :?(Guest\d+)$")
        await watcher.expect(rf"^:carol!\S+ NICK :?{m.group(1)}$")
        await stranger.expect(r"you did not log in to it in time")
    finally:
        await stranger.close()
        await watcher.close()
