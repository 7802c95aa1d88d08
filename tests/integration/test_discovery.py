"""Finding servers with DNS-SD over multicast DNS: on loopback, and across network namespaces.

The namespace test is the issue's done-criterion: ``relaychat serve`` in one namespace announces
itself and ``relaychat discover`` in another finds its address and port. Loopback tests keep
their multicast on ``lo`` (``interfaces=["127.0.0.1"]``), never on the host's real networks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
from pathlib import Path

import pytest

from relaychat import __version__
from relaychat.config import Config
from relaychat.discovery import (
    AnnouncePlan,
    Announcer,
    NoServersFound,
    browse,
    find_hosts,
)
from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, free_config
from tests.netns import NsProcess, netns_pair

LOOPBACK = ["127.0.0.1"]
# Browsing on the machine that announces takes up to about a second more: the first (QU) answer
# is unicast to port 5353, which this host's mDNS stacks share, and may reach another of them.
# The browser's second query, a second later, is answered by multicast, which reaches everyone.


#: How long to browse: mDNS on a shared port may need a second query under load.
BROWSE_S = 4.0


def _plan(network: str, port: int) -> AnnouncePlan:
    return AnnouncePlan(
        instance=f"relaychat test {network}",
        host=f"rc-test-{network}.local.",
        port=port,
        addresses=("127.0.0.1",),
        interfaces=("127.0.0.1",),
        txt={"txtvers": "1", "network": network, "version": __version__, "tls": "6697"},
    )


async def test_announced_service_is_browsed_and_resolved_on_loopback() -> None:
    network = f"net{secrets.token_hex(4)}"
    announcer = Announcer(_plan(network, 16667))
    announcer.start()
    try:
        assert await announcer.wait_announced(TIMEOUT), "registration did not complete"
        found = [s for s in await browse(BROWSE_S, interfaces=LOOPBACK) if s.network == network]
        assert len(found) == 1
        server = found[0]
        assert server.name == f"relaychat test {network}"
        assert server.addresses == ("127.0.0.1",)
        assert server.port == 16667
        assert server.tls_port == 6697
        assert server.txt["version"] == __version__
        # What `relaychat chat` calls when it is given no host:
        hosts = await find_hosts(BROWSE_S, network=network.upper(), interfaces=LOOPBACK)
        assert hosts == [("127.0.0.1", 16667)]
        assert await find_hosts(BROWSE_S, network=network, tls=True, interfaces=LOOPBACK) == [
            ("127.0.0.1", 6697)
        ]
        with pytest.raises(NoServersFound, match="no IRC servers of network nope"):
            await find_hosts(0.5, network="nope", interfaces=LOOPBACK)
    finally:
        await asyncio.wait_for(announcer.stop(), TIMEOUT)


async def test_withdrawn_service_is_no_longer_found() -> None:
    network = f"net{secrets.token_hex(4)}"
    announcer = Announcer(_plan(network, 16668))
    announcer.start()
    assert await announcer.wait_announced(TIMEOUT)
    await asyncio.wait_for(announcer.stop(), TIMEOUT)
    found = await browse(BROWSE_S, interfaces=LOOPBACK)
    assert not [s for s in found if s.network == network]


async def test_loopback_server_does_not_announce_by_default() -> None:
    # `auto`: a server only on 127.0.0.1 cannot be reached from elsewhere, so it stays quiet.
    server = Server(free_config())
    await server.start()
    try:
        assert server._announcer is None
    finally:
        await server.stop()


@pytest.mark.skipif(
    "announce" not in {f.name for f in dataclasses.fields(Config)},
    reason="Config has no `announce` setting yet",
)
async def test_server_with_announce_on_is_found_on_loopback() -> None:
    network = f"net{secrets.token_hex(4)}"
    config = dataclasses.replace(free_config(), network=network, announce="on")
    server = Server(config)
    await server.start()
    try:
        assert server._announcer is not None
        assert await server._announcer.wait_announced(TIMEOUT)
        port = server.addresses[0][1]
        hosts = await find_hosts(BROWSE_S, network=network, interfaces=LOOPBACK)
        assert hosts == [("127.0.0.1", port)]
    finally:
        await server.stop()


async def test_discover_finds_the_server_from_another_namespace(tmp_path: Path) -> None:
    with netns_pair() as net:
        server = await NsProcess.start(
            net.relaychat(
                net.a,
                "serve",
                "--host",
                net.addr_a,
                "--port",
                "0",
                "--plain-port",
                "0",
                "--http-port",
                "0",
                "--data-dir",
                str(tmp_path),
            )
        )
        try:
            m = await server.expect(r"listening on (\S+) port (\d+)")
            assert m.group(1) == net.addr_a
            port = int(m.group(2))
            await server.expect(r"announced .* port \d+", timeout=TIMEOUT * 2)

            result = await asyncio.to_thread(net.run, net.b, "discover", "--json", "--timeout", "2")
            assert result.returncode == 0, result.stderr
            found = json.loads(result.stdout)
            mine = [s for s in found if s["port"] == port]
            assert len(mine) == 1, found
            assert mine[0]["addresses"] == [net.addr_a]
            assert mine[0]["network"] == "relaychat"
            assert mine[0]["server"] == "relaychat.local"
            assert mine[0]["version"] == __version__

            text = await asyncio.to_thread(net.run, net.b, "discover", "--timeout", "2")
            assert text.returncode == 0, text.stderr
            assert f"{net.addr_a}:{port}  relaychat.local on " in text.stdout
        finally:
            assert await server.stop() == 0
        assert any("shutting down" in line for line in server.log)

        gone = await asyncio.to_thread(net.run, net.b, "discover", "--timeout", "1")
        assert gone.returncode == 1
        assert gone.stdout == ""
        assert gone.stderr.startswith("relaychat: no IRC servers found on the local network")
        assert "Traceback" not in gone.stderr
