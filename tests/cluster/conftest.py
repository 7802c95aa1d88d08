"""Fixtures: one NATS server per test module, and relaychat nodes on it (one network per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from relaychat.server.listeners import Server
from tests.cluster.support import NatsServer, needs_nats, new_prefix, node_config

pytestmark = needs_nats


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer().start()
    yield server
    server.cleanup()


class Network:
    """Nodes of one new network on a NATS server: ``await network(3)`` starts three."""

    def __init__(self, nats: NatsServer) -> None:
        self.nats = nats
        self.prefix = new_prefix()
        self.started: list[Server] = []
        self.count = 0

    def name(self) -> str:
        self.count += 1
        return f"n{self.count}"

    async def __call__(self, count: int = 1, **kwargs: Any) -> list[Server]:
        nodes = []
        for _ in range(count):
            srv = Server(node_config(self.nats.url, self.prefix, self.name(), **kwargs))
            await srv.start()
            self.started.append(srv)
            nodes.append(srv)
        return nodes

    async def stop(self) -> None:
        for srv in reversed(self.started):
            await srv.stop()


@pytest.fixture
async def network(nats_server: NatsServer) -> AsyncIterator[Network]:
    """Nodes of a new network on the module's NATS server."""
    net = Network(nats_server)
    yield net
    await net.stop()


@pytest.fixture
async def own_nats() -> AsyncIterator[NatsServer]:
    """A NATS server for one test (which may stop and restart it)."""
    server = NatsServer().start()
    yield server
    server.cleanup()
