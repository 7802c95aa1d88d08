"""``/upload PATH`` in the terminal client, against a real server with its HTTP port: the app
logs in (REGISTER, no password in its config), uploads with a TOKEN GENERATE token, and the
link lands in the channel, where bob (a raw TCP client) reads it and fetches the same bytes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import relaychat.tui.upload as tui_upload
from relaychat.tui.model import Kind
from tests.e2e.test_tui import bob_in, chat, submit, texts, until
from tests.integration.upload_support import PASSWORD, path_of, upload_server, web_port
from tests.integration.web_support import fetch

MakeServer = Callable[..., Any]


async def test_upload_pastes_the_link_for_everyone(
    make_server: MakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tui_upload, "PROGRESS_EVERY", 0.0)  # a progress line for every chunk
    srv = await upload_server(make_server)
    bob = await bob_in(srv, "#lobby")
    data = os.urandom(3 << 20)
    photo = tmp_path / "holiday photo.bin"
    photo.write_bytes(data)
    async with chat(srv, channels=("#lobby",)) as (app, pilot):
        await until(pilot, lambda: app.state.current == "#lobby", "#lobby on screen")
        await submit(pilot, f"/quote REGISTER * * {PASSWORD}")
        await until(pilot, lambda: app.client.connected and _logged_in(app), "logged in")
        await submit(pilot, f"/upload {photo}")
        m = await bob.expect(r"^:alice!\S+ PRIVMSG #lobby :(http://\S+)$")
        url = m.group(1)
        assert url.startswith(f"http://127.0.0.1:{web_port(srv)}/uploads/")
        assert url.endswith("/holiday%20photo.bin")
        got = await fetch(web_port(srv), "GET", path_of(url))
        assert hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
        await until(pilot, lambda: url in texts(app.state.get("#lobby")), "the link shown")
        lines = texts(app.state.get("#lobby"))
        assert "uploading holiday photo.bin (3.0 MiB) ..." in lines
        assert any(
            line.startswith("uploading holiday photo.bin: 33% (1.0 MiB of 3.0 MiB, ")
            for line in lines
        ), lines
        assert any(
            line.startswith("uploaded holiday photo.bin, 3.0 MiB") and url in line for line in lines
        ), lines
    await bob.close()


async def test_upload_errors_are_one_line(make_server: MakeServer, tmp_path: Path) -> None:
    srv = await upload_server(make_server, max_size=100)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 101)
    async with chat(srv) as (app, pilot):
        await submit(pilot, f"/upload {big}")
        server_buffer = app.state.current_buffer
        await until(pilot, lambda: any(ln.kind is Kind.ERROR for ln in server_buffer.lines), "1")
        errors = [ln.text for ln in server_buffer.lines if ln.kind is Kind.ERROR]
        assert errors[-1] == (
            "upload of big.bin failed: log in to an account first (sasl in the client config, "
            "or REGISTER): You must be logged into an account to generate a token for the "
            "FILEHOST service"
        )
        await submit(pilot, f"/quote REGISTER * * {PASSWORD}")
        await until(pilot, lambda: _logged_in(app), "logged in")
        await submit(pilot, f"/upload {big}")
        await until(pilot, lambda: len(_errors(app)) == 2, "the second error")
        assert _errors(app)[-1] == (
            "upload of big.bin failed: File too large: 101 B; the largest upload is 100 B"
        )
        await submit(pilot, f"/upload {tmp_path / 'nothing here'}")
        await until(pilot, lambda: len(_errors(app)) == 3, "the third error")
        assert _errors(app)[-1].startswith("no such file: ")


def _errors(app: Any) -> list[str]:
    return [ln.text for ln in app.state.current_buffer.lines if ln.kind is Kind.ERROR]


def _logged_in(app: Any) -> bool:
    return any(
        "You are now logged in as alice" in ln.text
        for b in app.state.buffers.values()
        for ln in b.lines
    )
