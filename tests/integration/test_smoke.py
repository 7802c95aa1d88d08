"""Two real clients over loopback: register, join, chat."""

from __future__ import annotations

from relaychat.server.listeners import Server
from tests.harness import LineClient


async def test_two_clients_chat(server: Server) -> None:
    host, port = server.addresses[0]
    alice = await LineClient.open(host, port)
    bob = await LineClient.open(host, port)
    await alice.register("alice")
    await bob.register("bob")
    await alice.send("JOIN #chat")
    await alice.expect(r" 366 alice #chat ")
    await bob.send("JOIN #chat")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 JOIN #chat$")
    await bob.send("PRIVMSG #chat :hello alice")
    await alice.expect(r"^:bob!~bob@127\.0\.0\.1 PRIVMSG #chat :hello alice$")
    await alice.close()
    await bob.expect(r"^:alice!~alice@127\.0\.0\.1 QUIT :Connection closed$")
    await bob.close()
