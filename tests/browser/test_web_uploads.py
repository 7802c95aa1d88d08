"""Uploads from the web client in a real browser (Chromium via playwright): a file dropped on
the page, or pasted into the message box, becomes a link in the channel for everyone; what
cannot be uploaded says why in one line. See tests/browser/conftest.py for the browser."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import pytest

from relaychat.server.listeners import Server
from tests.browser.browser_support import http_port, open_page, start_server, tcp, wait_text
from tests.integration.web_support import fetch

pytestmark = pytest.mark.asyncio(loop_scope="module")

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(300)

#: Dispatch drag-and-drop of one file (made in the page from the bytes given) on the chat area.
DROP = """([name, type, bytes]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
  const main = document.querySelector("main.main");
  const ev = (kind) => new DragEvent(kind, { dataTransfer: dt, bubbles: true, cancelable: true });
  main.dispatchEvent(ev("dragenter"));
  main.dispatchEvent(ev("dragover"));
  const shown = document.body.classList.contains("dropping");
  main.dispatchEvent(ev("drop"));
  return shown;
}"""

#: Paste one file into the message box.
PASTE = """([name, type, bytes]) => {
  const dt = new DataTransfer();
  dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
  const ev = new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true });
  document.getElementById("input").dispatchEvent(ev);
}"""


def link_in(line: str) -> str:
    m = re.search(r"PRIVMSG #lobby :(http://\S+)$", line)
    assert m, line
    return m.group(1)


async def test_a_dropped_image_becomes_a_link_for_everyone(
    browser: Any, servers: list[Server]
) -> None:
    srv = await start_server(servers, uploads={"max_size": 4000})
    port = http_port(srv)
    alice = await open_page(browser, port, "alice", password="correct horse", register=True)
    await alice.wait_for_function("() => window.relaychatApp.client.account === 'alice'")
    bob = await open_page(browser, port, "bob")
    carol = await tcp(srv, "carol", "#lobby")

    hinted = await alice.evaluate(DROP, ["dot.png", "image/png", list(PNG)])
    assert hinted  # the drop zone showed while a file was dragged over
    m = await carol.expect(r":alice!\S+ PRIVMSG #lobby :(http://\S+)$")
    url = m.group(1)
    assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/uploads/[A-Za-z0-9_-]{{22}}/dot\.png", url)
    got = await fetch(port, "GET", url.split(str(port), 1)[1])
    assert got.body == PNG and got.headers["content-type"] == "image/png"
    assert got.headers["content-disposition"] == 'inline; filename="dot.png"'
    # everyone in the channel sees it as a link
    await bob.wait_for_selector(f'#log .msg a[href="{url}"]')
    await alice.wait_for_selector(f'#log .msg.self a[href="{url}"]')
    await wait_text(alice, "Uploaded dot.png (308 B)")
    assert not await alice.evaluate("() => document.body.classList.contains('dropping')")

    # pasting a file into the message box uploads it too (text pastes stay text)
    notes = "naïve notes\n".encode() * 10
    await alice.evaluate(PASTE, ["notes é.txt", "text/plain", list(notes)])
    m = await carol.expect(r":alice!\S+ PRIVMSG #lobby :(http://\S+)$")
    assert m.group(1).endswith("/notes%20%C3%A9.txt")
    got = await fetch(port, "GET", m.group(1).split(str(port), 1)[1])
    assert hashlib.sha256(got.body).digest() == hashlib.sha256(notes).digest()
    assert got.headers["content-disposition"].startswith("attachment;")

    # too big for the server: said before sending anything
    await alice.evaluate(DROP, ["big.bin", "application/octet-stream", [0] * 5000])
    await wait_text(
        alice, "Upload of big.bin failed: the file is 4.9 KiB; the largest upload is 3.9 KiB"
    )
    # without an account: the server refuses a token, and the page says what to do
    await bob.evaluate(DROP, ["dot.png", "image/png", list(PNG)])
    await wait_text(bob, "Upload of dot.png failed: log in to an account to upload files")
    assert srv.web is not None and srv.web.uploads is not None
    assert len(srv.web.uploads.index) == 2  # the image and the notes: nothing else was stored
    for page in (alice, bob):
        assert page.errors == []
        assert await page.evaluate("() => window.__cspViolations") == []
    await carol.close()
    await alice.context.close()
    await bob.context.close()


async def test_the_paperclip_picks_files(browser: Any, servers: list[Server]) -> None:
    srv = await start_server(servers)
    port = http_port(srv)
    alice = await open_page(browser, port, "alice", password="correct horse", register=True)
    await alice.wait_for_function("() => window.relaychatApp.client.account === 'alice'")
    carol = await tcp(srv, "carol", "#lobby")
    async with alice.expect_file_chooser() as chooser:
        await alice.click("#btn-attach")
    picked = await chooser.value
    await picked.set_files([{"name": "a.png", "mimeType": "image/png", "buffer": PNG}])
    url = link_in(await carol.readline())
    got = await fetch(port, "GET", url.split(str(port), 1)[1])
    assert got.body == PNG
    await carol.close()
    await alice.context.close()
