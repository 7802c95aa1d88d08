"""Two and three nodes of one network: clients on different nodes see one network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster.support import needs_nats
from tests.harness import LineClient

pytestmark = needs_nats


async def client(srv: Any, nick: str) -> LineClient:
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    await c.register(nick)
    return c


async def test_channel_and_private_chat_across_nodes(network: Callable[..., Any]) -> None:
    a, b = await network(2)
    alice = await client(a, "alice")
    bob = await client(b, "bob")
    await alice.send("JOIN #chat")
    await alice.expect(r" 366 alice #chat ")
    await bob.send("JOIN #chat")
    await bob.expect(r" 353 bob = #chat :.*alice")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #chat$")
    await bob.send("PRIVMSG #chat :hello alice")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 PRIVMSG #chat :hello alice$")
    await alice.send("PRIVMSG bob :hi bob, privately")
    await bob.expect(r"^:alice!~alice@127\.0\.0\.1 PRIVMSG bob :hi bob, privately$")
    await alice.send("WHOIS bob")
    await alice.expect(r" 312 alice bob n2\.test ")
    await bob.send("QUIT :bye")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 QUIT :Quit: bye$")
    await alice.close()
