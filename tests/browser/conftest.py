"""Real-browser tests of the web client: Debian's Chromium driven by playwright.

One browser per test process (module scope, on the module's event loop); each test gets new
browser contexts (empty localStorage) and its own server. Never downloads a browser: playwright
launches ``/usr/bin/chromium`` (``RELAYCHAT_CHROMIUM`` to use another); without it, or without
the playwright package, every test here is skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from relaychat.server.listeners import Server

CHROMIUM = os.environ.get("RELAYCHAT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def _skip_reason() -> str | None:
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS
        )
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="module")
async def servers() -> AsyncIterator[list[Server]]:
    """Servers a test started (stopped at its end, in reverse order)."""
    started: list[Server] = []
    yield started
    for srv in reversed(started):
        await srv.stop()
