"""Helpers for the browser tests (not a test module): servers with an HTTP port on the test's
event loop, pages signed in to the web client, and reading what a page shows."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from relaychat.config import Config
from relaychat.server.listeners import ListenError, Server
from tests.harness import TIMEOUT, LineClient, free_config
from tests.integration.tls_support import free_port

__all__ = [
    "WAIT_MS",
    "http_port",
    "log_texts",
    "open_page",
    "say",
    "start_server",
    "tcp",
    "wait_text",
]

#: How long a page may take to show something (ms), scaled like every other wait.
WAIT_MS = int(TIMEOUT * 4 * 1000)


async def start_server(
    servers: list[Server], config: Config | None = None, **kwargs: Any
) -> Server:
    """A server with an HTTP port (a free one unless ``config`` fixes it)."""
    for _ in range(5):
        cfg = config or free_config(**kwargs)
        if cfg.http.port == 0 and config is None:
            cfg = replace(cfg, http=replace(cfg.http, port=free_port()))
        srv = Server(cfg)
        try:
            await srv.start()
        except ListenError:
            if config is not None:
                raise
            continue
        servers.append(srv)
        return srv
    raise AssertionError("no free HTTP port")


def http_port(srv: Server) -> int:
    ((_, port),) = srv.addresses_of("http")
    return port


async def tcp(srv: Server, nick: str, *channels: str) -> LineClient:
    """A registered IRC client over TCP that joined ``channels``."""
    host, port = srv.addresses[0]
    c = await LineClient.open(host, port)
    await c.register(nick)
    for ch in channels:
        await c.send(f"JOIN {ch}")
        await c.expect(rf" 366 {nick} {ch} ")
    return c


async def open_page(
    browser: Any,
    port: int,
    nick: str,
    channels: str = "#lobby",
    *,
    width: int = 1280,
    height: int = 800,
    password: str = "",
    register: bool = False,
    context: Any = None,
) -> Any:
    """A new page (in a new context unless given) signed in as ``nick``, joined to ``channels``."""
    ctx = context or await browser.new_context(viewport={"width": width, "height": height})
    page = await ctx.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # checked by tests: the page threw nothing
    await page.add_init_script(
        "window.__cspViolations = [];"
        "document.addEventListener('securitypolicyviolation',"
        " e => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    await page.goto(f"http://127.0.0.1:{port}/")
    await page.fill("#login-nick", nick)
    if password:
        await page.fill("#login-password", password)
    if register:
        await page.check("#login-register")
    await page.fill("#login-channels", channels)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector('#status[data-state="connected"]')
    first = channels.split()[0] if channels else ""
    if first:
        await page.wait_for_selector(f'#buffers li.buffer.active[data-key="{first.lower()}"]')
        await page.wait_for_function(
            "name => { const b = window.relaychatApp.state.get(name);"
            " return b && b.joined && b.history.loaded; }",
            arg=first,
        )
    return page


async def say(page: Any, text: str) -> None:
    await page.fill("#input", text)
    await page.press("#input", "Enter")


async def wait_text(page: Any, text: str, selector: str = "#log .msg .text") -> None:
    """Wait until a row of the log (of the buffer on screen) shows exactly ``text``."""
    try:
        await page.wait_for_function(
            "([sel, text]) =>"
            " [...document.querySelectorAll(sel)].some(e => e.textContent === text)",
            arg=[selector, text],
        )
    except Exception as exc:
        shown = await page.eval_on_selector_all(selector, "els => els.map(e => e.textContent)")
        raise AssertionError(f"{text!r} not shown; the page shows {shown[-10:]!r}") from exc


async def log_texts(page: Any) -> list[str]:
    """The text of every conversation row of the buffer on screen, in order."""
    texts: list[str] = await page.eval_on_selector_all(
        "#log .msg:not(.k-event):not(.k-info):not(.k-error) .text",
        "els => els.map(e => e.textContent)",
    )
    return texts
