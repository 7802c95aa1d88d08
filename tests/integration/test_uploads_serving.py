"""Uploaded files as they are served, over real sockets: types and dispositions (nothing
executable from our origin), names, ranges and caching, retention with an injected clock,
restarts, and the link a client pastes in chat seen by another user."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from relaychat.client import Client
from relaychat.client.errors import UploadError
from relaychat.client.upload import filehost_url, upload
from relaychat.web.upload_policy import OCTET_STREAM
from tests.harness import LineClient
from tests.integration.upload_support import (
    PASSWORD,
    account,
    basic,
    path_of,
    upload_server,
    web_port,
)
from tests.integration.web_support import HttpAnswer, fetch

MakeServer = Callable[..., Any]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
GIF = b"GIF89a" + os.urandom(100)


async def put(
    port: int, body: bytes, *, name: str = "", kind: str = "", disposition: str = ""
) -> HttpAnswer:
    headers = {"Authorization": basic("alice")}
    if kind:
        headers["Content-Type"] = kind
    if disposition:
        headers["Content-Disposition"] = disposition
    path = f"/upload?name={name}" if name else "/upload"
    answer = await fetch(port, "POST", path, body=body, headers=headers)
    assert answer.status == 201, answer.body
    return answer


@pytest.mark.parametrize(
    ("body", "kind", "name", "served", "inline"),
    [
        (PNG, "image/png", "a.png", "image/png", True),
        (GIF, "", "anim.gif", "image/gif", True),  # the type from the extension
        (b"<html><script>alert(1)</script>", "text/html", "x.html", OCTET_STREAM, False),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
            "image/svg+xml",
            "x.svg",
            OCTET_STREAM,
            False,
        ),
        (b"alert(document.cookie)", "text/javascript", "x.js", OCTET_STREAM, False),
        (b"<html>not a png</html>", "image/png", "fake.png", OCTET_STREAM, False),
        (b"plain words", "text/plain", "notes.txt", "text/plain; charset=utf-8", False),
        (b"\x00\x01", "", "blob", OCTET_STREAM, False),
    ],
)
async def test_types_are_served_safely(
    make_server: MakeServer, body: bytes, kind: str, name: str, served: str, inline: bool
) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        answer = await put(port, body, name=name, kind=kind)
        got = await fetch(port, "GET", path_of(answer.headers["location"]))
        assert got.status == 200 and got.body == body
        assert got.headers["content-type"] == served
        assert got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"
        disposition = got.headers["content-disposition"]
        assert disposition == f'{"inline" if inline else "attachment"}; filename="{name}"'
    finally:
        await alice.close()


async def test_names_are_sanitised(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        cases = [
            ('attachment; filename="../../etc/passwd"', "passwd", "passwd"),
            (
                "attachment; filename*=UTF-8''%2E%2E%2Fcaf%C3%A9%0A.png",
                "café .png",
                "caf%C3%A9%20.png",
            ),
            ('attachment; filename=".htaccess"', "htaccess", "htaccess"),
        ]
        for disposition, name, in_url in cases:
            answer = await put(port, b"data", disposition=disposition)
            assert answer.json()["name"] == name
            assert answer.headers["location"].endswith("/" + in_url)
        answer = await put(port, b"data", name="..%2F..%2Fx%00y.txt")
        assert answer.json()["name"] == "x y.txt"
    finally:
        await alice.close()


async def test_ranges_head_and_etags(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    data = os.urandom(3 << 20)  # bigger than one chunk read from disk
    try:
        path = path_of((await put(port, data, name="r.bin")).headers["location"])
        whole = await fetch(port, "GET", path)
        assert whole.body == data and whole.headers["accept-ranges"] == "bytes"
        etag = whole.headers["etag"]
        part = await fetch(port, "GET", path, headers={"Range": "bytes=100-199"})
        assert part.status == 206 and part.body == data[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
        tail = await fetch(port, "GET", path, headers={"Range": "bytes=-5"})
        assert tail.status == 206 and tail.body == data[-5:]
        past = await fetch(port, "GET", path, headers={"Range": f"bytes={len(data)}-"})
        assert past.status == 416 and past.headers["content-range"] == f"bytes */{len(data)}"
        stale = await fetch(port, "GET", path, headers={"Range": "bytes=0-9", "If-Range": '"x"'})
        assert stale.status == 200 and stale.body == data
        head = await fetch(port, "HEAD", path)
        assert head.status == 200 and head.body == b""
        assert head.headers["content-length"] == str(len(data))
        cached = await fetch(port, "GET", path, headers={"If-None-Match": etag})
        assert cached.status == 304 and cached.body == b""
        assert (await fetch(port, "GET", path.rsplit("/", 1)[0])).body == data  # no name: same
        assert (await fetch(port, "DELETE", path)).status == 405
        for bad in ("/uploads/", "/uploads/../index.db", "/uploads/" + "A" * 22):
            assert (await fetch(port, "GET", bad)).status == 404, bad
    finally:
        await alice.close()


async def test_retention_deletes_old_files(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, retention_days=1.0)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        old = path_of((await put(port, b"old")).headers["location"])
        assert srv.web is not None and srv.web.uploads is not None
        uploads = srv.web.uploads
        now = uploads.clock()
        uploads.clock = lambda: now + 86400 * 0.75
        new = path_of((await put(port, b"new")).headers["location"])
        assert await uploads.sweep() == 0
        uploads.clock = lambda: now + 86400 * 1.5
        assert await uploads.sweep() == 1
        assert (await fetch(port, "GET", old)).status == 404
        assert (await fetch(port, "GET", new)).body == b"new"
        assert len(list(uploads.index.files_dir.iterdir())) == 1
    finally:
        await alice.close()


async def test_files_survive_a_restart(make_server: MakeServer, tmp_path: Path) -> None:
    srv = await upload_server(make_server, dir=str(tmp_path / "up"))
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        path = path_of((await put(port, PNG, name="keep.png")).headers["location"])
    finally:
        await alice.close()
    await srv.stop()
    srv = await upload_server(make_server, dir=str(tmp_path / "up"))
    port = web_port(srv)
    got = await fetch(port, "GET", path)
    assert got.status == 200 and got.body == PNG and got.headers["content-type"] == "image/png"


async def test_an_upload_reaches_a_tcp_user_as_a_link(make_server: MakeServer) -> None:
    """Our client library finds the upload URL in ISUPPORT, gets a token with TOKEN GENERATE,
    uploads 5 MiB, and posts the link; bob, a plain TCP client, follows it to the same bytes."""
    srv = await upload_server(make_server)
    host, irc_port = srv.addresses[0]
    alice = await account(srv, "alice")
    await alice.close()
    bob = await LineClient.open(host, irc_port)
    await bob.register("bob")
    await bob.send("JOIN #lobby")
    await bob.expect(" 366 bob #lobby ")
    data = os.urandom(5 << 20)
    path = Path(srv.config.data_path()) / "report.bin"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    try:
        async with Client(host, irc_port, nick="alice", sasl=("alice", PASSWORD)) as client:
            await client.join("#lobby")
            assert filehost_url(client.isupport) == f"http://127.0.0.1:{web_port(srv)}/upload"
            done = await upload(
                client, path, progress=lambda sent, total: seen.append((sent, total))
            )
            await client.send("#lobby", done.url)
        m = await bob.expect(r"PRIVMSG #lobby :(http://\S+/uploads/\S+/report\.bin)$")
        assert m.group(1) == done.url and done.size == len(data)
        assert seen[-1] == (len(data), len(data))
        got = await fetch(web_port(srv), "GET", path_of(m.group(1)))
        assert hashlib.sha256(got.body).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        await bob.close()


async def test_client_errors_are_one_clear_line(make_server: MakeServer, tmp_path: Path) -> None:
    srv = await upload_server(make_server, max_size=10)
    host, irc_port = srv.addresses[0]
    alice = await account(srv, "alice")
    await alice.close()
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * 11)
    async with Client(host, irc_port, nick="alice", sasl=("alice", PASSWORD)) as client:
        with pytest.raises(UploadError) as refused:
            await upload(client, big)
        assert refused.value.status == 413
        assert refused.value.reason == "File too large: 11 B; the largest upload is 10 B"
        with pytest.raises(UploadError, match="cannot read"):
            await upload(client, tmp_path / "missing")
    async with Client(host, irc_port, nick="guest") as client:
        with pytest.raises(UploadError, match="log in to an account first") as anonymous:
            await upload(client, big)
        assert "ACCOUNT_REQUIRED" not in str(anonymous.value)
    srv = await upload_server(make_server, enabled=False)
    host, irc_port = srv.addresses[0]
    async with Client(host, irc_port, nick="alice") as client:
        with pytest.raises(UploadError, match="does not offer uploads"):
            await upload(client, big)
    await asyncio.sleep(0)
