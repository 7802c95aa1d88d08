"""File transfer in the terminal client: an offer shows in the conversation with the command
that accepts it, ``/dcc get`` takes it, ``/dcc send`` offers one, ``/dcc list`` shows the
transfers buffer with progress bars. The other side is the library's DccManager."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from textual.pilot import Pilot

from relaychat.client import Client
from relaychat.client.dcc import DccManager
from relaychat.client.dccstate import DccConfig, DccOffered, State
from relaychat.server.listeners import Server
from relaychat.tui.app import ChatApp
from relaychat.tui.dcc import TRANSFERS, progress_bar
from relaychat.tui.model import BufferKind, Kind, LinkState
from tests.e2e.test_tui import FAST, screen_log, submit, texts, until
from tests.harness import TIMEOUT


@asynccontextmanager
async def chat(server: Server, dcc: DccConfig) -> AsyncIterator[tuple[ChatApp, Pilot[int]]]:
    """alice's app, connected, with these DCC settings."""
    host, port = server.addresses[0]
    client = Client(host, port, nick="alice", **FAST)
    app = ChatApp(client, lag_interval=0.5, dcc=dcc)
    async with app.run_test(size=(110, 30)) as pilot:
        await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected")
        try:
            yield app, pilot
        finally:
            await client.close(timeout=1.0)


async def test_offers_get_send_and_the_transfers_buffer(server: Server, tmp_path: Path) -> None:
    host, port = server.addresses[0]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    data = os.urandom(2 * 1024 * 1024 + 1)
    source = tmp_path / "holiday photos.zip"
    source.write_bytes(data)
    async with (
        Client(host, port, nick="bob", **FAST) as bob_client,
        DccManager(bob_client) as bob,
        chat(server, dcc=DccConfig(download_dir=str(downloads))) as (app, pilot),
    ):
        # bob offers a file: it shows in the conversation with him, never accepted alone.
        sent = await bob.send("alice", source)
        await until(pilot, lambda: app.state.get("bob") is not None, "bob's buffer")
        buf = app.state.get("bob")
        assert buf is not None
        await until(pilot, lambda: any(ln.kind is Kind.OFFER for ln in buf.lines), "offer")
        offer_line = [ln for ln in buf.lines if ln.kind is Kind.OFFER][-1]
        assert offer_line.text == (
            f"bob offers the file holiday photos.zip, 2.0 MiB: /dcc get bob saves it in "
            f"{downloads}, /dcc close 1 declines"
        )
        assert offer_line.highlight and buf.highlight
        assert list(downloads.iterdir()) == []
        # /dcc get bob: into the download directory.
        await submit(pilot, "/dcc get bob")
        await bob.wait(sent, TIMEOUT * 2)
        got = downloads / "holiday photos.zip"
        await until(pilot, lambda: any("received holiday" in t for t in texts(buf)), "done")
        assert got.read_bytes() == data
        digest = hashlib.sha256(data).hexdigest()
        assert any(digest in t and str(got) in t for t in texts(buf))
        # /dcc send: alice offers a file to bob.
        offers = bob.events(DccOffered)
        back = tmp_path / "reply.txt"
        back.write_text("thanks!")
        await submit(pilot, f"/dcc send bob {back}")
        event = await anext(offers)
        assert isinstance(event, DccOffered) and event.transfer.name == "reply.txt"
        inbox = tmp_path / "bob-inbox"
        inbox.mkdir()
        await bob.wait(await bob.accept(event.transfer, inbox), TIMEOUT * 2)
        assert (inbox / "reply.txt").read_text() == "thanks!"
        # /dcc list: the transfers buffer, newest first, with progress bars.
        await submit(pilot, "/dcc list")
        assert app.state.current_buffer.kind is BufferKind.TRANSFERS
        assert app.state.current == TRANSFERS
        await until(pilot, lambda: "reply.txt to bob" in screen_log(app), "the table drawn")
        screen = screen_log(app)
        assert "#2 -> reply.txt to bob  done" in screen
        assert "#1 <- holiday photos.zip from bob  done" in screen
        assert progress_bar(1.0) in screen and "100%" in screen
        # A second offer, declined with /dcc close.
        again = await bob.send("alice", source)
        await until(pilot, lambda: len(app.dcc.offers()) == 1 if app.dcc else False, "offer")
        await submit(pilot, "/dcc close bob")
        await until(pilot, lambda: again.state is State.FAILED, "bob hears it was declined")
        assert "alice declined" in again.error
        # Mistakes get one error line.
        await submit(pilot, "/dcc get nobody")
        assert app.state.current_buffer.lines[-1].text == "no file offered by nobody"
        await submit(pilot, "/dcc frobnicate")
        assert app.state.current_buffer.lines[-1].text.startswith("usage: /dcc send")
        await submit(pilot, f"/dcc send bob {tmp_path / 'missing'}")
        assert app.state.current_buffer.lines[-1].text.startswith("cannot read ")


def test_progress_bar() -> None:
    assert progress_bar(0.0, 10) == "[----------]"
    assert progress_bar(0.5, 10) == "[#####-----]"
    assert progress_bar(1.0, 10) == "[##########]"
    assert progress_bar(2.0, 4) == "[####]"
