"""Races and failures: a nick claimed from two nodes at once, a node killed with SIGKILL, and
NATS restarted under a chatting network."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from relaychat.server.listeners import Server
from tests.cluster.conftest import Network
from tests.cluster.support import NatsServer, needs_nats, node_config
from tests.harness import TIMEOUT, LineClient, ServerProcess

pytestmark = needs_nats


async def client(srv: Any, nick: str, caps: str = "") -> LineClient:
    if isinstance(srv, ServerProcess):
        host, port = srv.host, srv.port
    else:
        host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    if caps:
        await c.send(f"CAP REQ :{caps}")
        await c.expect(r" CAP \S+ ACK ")
        await c.send("CAP END")
    await c.register(nick)
    return c


async def test_a_nick_raced_from_two_nodes_has_one_owner(network: Network) -> None:
    n1, n2 = await network(2)
    one = await client(n1, "one")
    two = await client(n2, "two")
    rounds = 200
    wins = {"one": 0, "two": 0}
    nicks = {"one": "one", "two": "two"}
    for i in range(rounds):
        nick = f"race{i}"
        one.writer.write(f"NICK {nick}\r\n".encode())
        two.writer.write(f"NICK {nick}\r\n".encode())
        await asyncio.gather(one.writer.drain(), two.writer.drain())
        results = {}
        for name, c in (("one", one), ("two", two)):
            m = await c.expect(rf"(^:{nicks[name]}!\S+ NICK :?{nick}$)|( 433 \S+ {nick} )")
            results[name] = m.group(1) is not None
        assert sum(results.values()) == 1, (i, results)
        winner = "one" if results["one"] else "two"
        wins[winner] += 1
        nicks[winner] = nick
    # Both nodes won some: the race was real, not decided by one side always being first.
    assert wins["one"] and wins["two"], wins
    # Registrations raced from two nodes: one gets 001, the other 433.
    for i in range(30):
        nick = f"reg{i}"
        host1, port1 = n1.addresses[0]
        host2, port2 = n2.addresses[0]
        a = await LineClient.open(host1, port1)
        b = await LineClient.open(host2, port2)
        for c in (a, b):
            c.writer.write(f"NICK {nick}\r\nUSER u 0 * :u\r\n".encode())
        await asyncio.gather(a.writer.drain(), b.writer.drain())
        got = []
        for c in (a, b):
            m = await c.expect(rf"( 001 {nick} )|( 433 \* {nick} )")
            got.append(m.group(1) is not None)
        assert sum(got) == 1, (i, got)
        await a.close()
        await b.close()
    await one.close()
    await two.close()


async def test_a_killed_node_splits_off_and_frees_its_nicks(network: Network) -> None:
    n1, n2 = await network(2)
    nats = network.nats
    n3 = await ServerProcess.start(
        "--cluster",
        nats.url,
        "--cluster-node-name",
        "n3",
        "--cluster-prefix",
        network.prefix,
        "--cluster-heartbeat",
        "0.5",
        "--cluster-node-timeout",
        "3",
        "--server-name",
        "n3.test",
    )
    try:
        alice = await client(n1, "alice", "message-tags server-time batch draft/chathistory")
        bob = await client(n2, "bob")
        carol = await client(n3, "carol", "echo-message message-tags")
        for c, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await c.send("JOIN #room")
            await c.expect(rf" 366 {nick} #room ")
        await alice.expect(r":carol!\S+ JOIN #room")
        await bob.expect(r":carol!\S+ JOIN #room")
        for i in range(3):
            await carol.send(f"PRIVMSG #room :before the crash {i}")
            await carol.expect(rf"PRIVMSG #room :before the crash {i}$")  # acknowledged
        n3.proc.kill()  # SIGKILL: no goodbye
        killed = time.monotonic()
        for c in (alice, bob):
            await c.expect(r":carol!\S+ QUIT :\*\.net \*\.split$", timeout=15)
        assert time.monotonic() - killed < 15
        # Its nick is free again, on any node.
        again = await client(n1, "carol")
        # Nothing acknowledged is lost from history.
        await alice.send("CHATHISTORY LATEST #room * 10")
        for i in range(3):
            await alice.expect(rf"PRIVMSG #room :before the crash {i}$")
        await alice.expect(r"BATCH -")
        for c in (alice, bob, again):
            await c.close()
    finally:
        if n3.proc.returncode is None:
            n3.proc.kill()
        await n3.proc.wait()


async def _healed(nodes: list[Server]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 6 * TIMEOUT
    while loop.time() < deadline:
        if all(s.cluster is not None and not s.cluster.isolated for s in nodes) and all(
            s.cluster is not None and s.cluster.recovery.task is None for s in nodes
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the nodes did not reconnect")


def _consistent(nodes: list[Server]) -> None:
    """Every node's view: the same users (each local somewhere), nicks, and memberships."""
    local = {}
    for srv in nodes:
        for user in srv.core.connections.values():
            if user.registered:
                local[user.key] = (srv.core.name, sorted(user.channels))
    for srv in nodes:
        seen = {
            key: (u.server or srv.core.name, sorted(u.channels))
            for key, u in srv.core.users.items()
            if u.registered
        }
        assert seen == local, (srv.core.name, seen, local)
        assert srv.cluster is not None
        claims = {k for k, (holder, _) in srv.cluster.mirror.claims.items()}
        assert claims == set(local), (srv.core.name, claims, set(local))


async def _until_consistent(nodes: list[Server]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 4 * TIMEOUT
    while True:
        try:
            _consistent(nodes)
            return
        except AssertionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_nats_restart_mid_chat_heals(own_nats: NatsServer) -> None:
    prefix = "restart"
    nodes = []
    for name in ("n1", "n2"):
        srv = Server(node_config(own_nats.url, prefix, name))
        await srv.start()
        nodes.append(srv)
    n1, n2 = nodes
    try:
        alice = await client(n1, "alice")
        bob = await client(n2, "bob")
        for c, nick in ((alice, "alice"), (bob, "bob")):
            await c.send("JOIN #r")
            await c.expect(rf" 366 {nick} #r ")
        await alice.expect(r":bob!\S+ JOIN #r")
        await bob.send("PRIVMSG #r :one")
        await alice.expect(r"PRIVMSG #r :one$")
        await _until_consistent(nodes)

        # A short outage (under the node timeout): nobody splits, the chat goes on after.
        own_nats.stop()
        await alice.expect(r"NOTICE alice :\*\*\* This server lost contact")
        await bob.expect(r"NOTICE bob :\*\*\* This server lost contact")
        host, port = n1.addresses[0]
        late = await LineClient.open(host, port)
        await late.send("NICK late\r\nUSER late 0 * :late")
        await late.expect(r"^ERROR :.*cut off")
        own_nats.start()
        await _healed(nodes)
        await bob.send("PRIVMSG #r :two")
        await alice.expect(r"PRIVMSG #r :two$")
        await _until_consistent(nodes)

        # A long outage: each side shows the other's users leaving, then back.
        own_nats.stop()
        await alice.expect(r"^:bob!\S+ QUIT :\*\.net \*\.split$", timeout=15)
        await bob.expect(r"^:alice!\S+ QUIT :\*\.net \*\.split$", timeout=15)
        own_nats.start()
        await _healed(nodes)
        await alice.expect(r"^:bob!\S+ JOIN #r$", timeout=15)
        await bob.expect(r"^:alice!\S+ JOIN #r$", timeout=15)
        await _until_consistent(nodes)
        await alice.send("PRIVMSG #r :three")
        await bob.expect(r"PRIVMSG #r :three$")
        await alice.close()
        await bob.close()
    finally:
        for srv in nodes:
            await srv.stop()
