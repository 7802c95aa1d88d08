"""Make the README's screenshots of the web client: docs/web-desktop.png and docs/web-mobile.png.

    make screenshots        # or: .venv/bin/python docs/screenshots.py [--out docs]

Starts a relaychat server on free loopback ports with a scratch data directory, plays a short
conversation with a few IRC clients and a webhook, then photographs the page in Debian's
Chromium (driven by playwright, which never downloads a browser) at 1280x800 and at 360x740.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from relaychat.config import load_config
from relaychat.server.listeners import Server
from relaychat.web.hooks import HookStore

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class Irc:
    """A tiny IRC client over TCP for the script's cast."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, nick: str, caps: str = "") -> Irc:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        c = cls(reader, writer)
        if caps:
            await c.send(f"CAP REQ :{caps}")
        await c.send(f"NICK {nick}")
        await c.send(f"USER {nick} 0 * :{nick.title()}")
        if caps:
            await c.send("CAP END")
        await c.wait(" 001 ")
        return c

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def wait(self, needle: str) -> str:
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 10)).decode()
            if line.startswith("PING"):
                await self.send("PONG" + line[4:].rstrip())
            if needle in line:
                return line

    async def sync(self) -> None:
        """Wait until the server handled everything sent so far."""
        await self.send("PING :sync")
        await self.wait("sync")


async def scene(out: Path) -> None:
    from playwright.async_api import async_playwright

    data = tempfile.mkdtemp(prefix="relaychat-shots-")
    base = load_config(
        environ={},
        overrides={
            "host": "127.0.0.1",
            "port": 0,
            "plain_port": 0,
            "data_dir": data,
            "network": "relaychat",
        },
    )
    srv = None
    for http_port in range(18480, 18580):
        try:
            srv = Server(replace(base, http=replace(base.http, port=http_port)))
            await srv.start()
            break
        except Exception:  # the port is taken: the next one
            srv = None
    assert srv is not None, "no free port"
    irc_port = srv.addresses[0][1]
    web = f"http://127.0.0.1:{http_port}"
    token = HookStore(srv.config.data_path()).add("#dev", "ci", time.time())
    try:
        carol = await Irc.connect(irc_port, "carol")
        for ch in ("#dev", "#lobby", "#design"):
            await carol.send(f"JOIN {ch}")
        await carol.sync()
        await carol.send("TOPIC #dev :Release 0.2 planning · board: https://example.org/board")
        bob = await Irc.connect(irc_port, "bob")
        dave = await Irc.connect(irc_port, "dave")
        erin = await Irc.connect(irc_port, "erin", "message-tags")
        for c in (bob, dave, erin):
            await c.send("JOIN #dev,#lobby")
        await carol.send("MODE #dev +v bob")
        for c in (bob, dave, erin, carol):
            await c.sync()
        talk = [
            (carol, "morning all! the WebSocket edge landed on main"),
            (bob, "nice. did the fan-out benchmark hold up?"),
            (carol, "0.8x TCP on W3, comfortably over the 0.5 target"),
            (dave, "\x01ACTION grabs a coffee\x01"),
            (bob, "the history PR is ready for review: https://example.org/pr/42"),
        ]
        for who, text in talk:
            await who.send(f"PRIVMSG #dev :{text}")
            await who.sync()
            await asyncio.sleep(0.05)
        await carol.send("PRIVMSG #lobby :welcome to everyone who just joined")
        await carol.sync()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            desk = await browser.new_context(
                viewport={"width": 1280, "height": 800}, device_scale_factor=1, color_scheme="light"
            )
            page = await desk.new_page()
            await page.goto(web)
            await page.fill("#login-nick", "alice")
            await page.fill("#login-channels", "#dev #lobby #design")
            await page.click("#login-form button[type=submit]")
            await page.wait_for_selector('#status[data-state="connected"]')
            await page.wait_for_function(
                "() => { const b = window.relaychatApp.state.get('#dev');"
                " return b && b.history.loaded; }"
            )
            await page.click("#buffers li[data-key='#dev']")
            await page.fill("#input", "great, I'll try the web client on my phone today")
            await page.press("#input", "Enter")
            await bob.wait("try the web client")
            body = json.dumps({"text": "build 1482 passed · deployed to staging"}).encode()
            request = urllib.request.Request(f"{web}/hooks/{token}", data=body)
            await asyncio.to_thread(urllib.request.urlopen, request, timeout=10)
            await bob.wait("build 1482")
            await bob.send("PRIVMSG #dev :alice: can you look at it before lunch?")
            await bob.send("PRIVMSG alice :also, coffee at 11?")
            await dave.send("PRIVMSG #design :new mockups are up")
            await erin.send("@+typing=active TAGMSG #dev")
            await erin.sync()
            await page.wait_for_selector("#typing:has-text('erin is typing')")
            await page.wait_for_selector("#buffers li[data-key='bob'] .count")
            await page.fill("#input", "sure, looking now")
            await page.wait_for_timeout(300)
            await page.screenshot(path=str(out / "web-desktop.png"))

            phone = await browser.new_context(
                viewport={"width": 360, "height": 740},
                device_scale_factor=2,
                is_mobile=True,
                has_touch=True,
                color_scheme="dark",
            )
            mpage = await phone.new_page()
            await mpage.goto(web)
            await mpage.fill("#login-nick", "frank")
            await mpage.fill("#login-channels", "#dev")
            await mpage.click("#login-form button[type=submit]")
            await mpage.wait_for_selector('#status[data-state="connected"]')
            await mpage.wait_for_function(
                "() => { const b = window.relaychatApp.state.get('#dev');"
                " return b && b.history.loaded; }"
            )
            await carol.send("PRIVMSG #dev :frank: welcome! the phone layout has a drawer, tap ☰")
            await carol.send("PRIVMSG #lobby :lunch in 10?")
            await carol.sync()
            await mpage.wait_for_selector("text=the phone layout has a drawer")
            await mpage.wait_for_timeout(300)
            await mpage.screenshot(path=str(out / "web-mobile.png"))
            await browser.close()
    finally:
        await srv.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).parent), help="folder for the PNGs")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"screenshots: no Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    asyncio.run(scene(Path(args.out)))
    print(f"screenshots: wrote web-desktop.png and web-mobile.png in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
