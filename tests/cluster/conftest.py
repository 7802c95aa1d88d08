"""Fixtures: one NATS server per test module, and relaychat nodes on it (one network per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
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


@pytest.fixture
async def network(nats_server: NatsServer) -> AsyncIterator[Callable[..., Any]]:
    """``await network(3)``: that many nodes (``Server``) of one new network, started."""
    started: list[Server] = []
    prefix = new_prefix()

    async def make(count: int = 1, **kwargs: Any) -> list[Server]:
        nodes = []
        for _ in range(count):
            name = f"n{len(started) + 1}"
            srv = Server(node_config(nats_server.url, prefix, name, **kwargs))
            await srv.start()
            started.append(srv)
            nodes.append(srv)
        return nodes

    yield make
    for srv in reversed(started):
        await srv.stop()
