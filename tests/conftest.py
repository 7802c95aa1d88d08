"""Shared fixtures: a real server on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping

import pytest
from hypothesis import settings

from relaychat.config import Config
from relaychat.server.listeners import Server
from tests.harness import free_config

# Property tests check what code does, not how fast: a loaded 2-core CI machine running the suite
# with -n 2 can take several times hypothesis' default 200 ms deadline for one example.
settings.register_profile("relaychat", deadline=None)
settings.load_profile("relaychat")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run the async tests on uvloop, the loop `relaychat serve` uses, when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server(free_config())
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., object]]:
    started: list[Server] = []

    async def factory(config: Config | None = None, **kwargs: object) -> Server:
        srv = Server(config or free_config(**kwargs))
        await srv.start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        await srv.stop()
