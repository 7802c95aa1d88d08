"""Uploads over real sockets: the URL advertised, who may upload (Basic, Bearer tokens, 401,
lock-outs, the loop never waiting on argon2), the size, quota and space limits (before and
while the body streams), and the body going to disk as it arrives."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

from relaychat.server.listeners import Server
from tests.harness import TIMEOUT, LineClient
from tests.integration.upload_support import (
    account,
    basic,
    exchange,
    path_of,
    token,
    upload_server,
    web_port,
)
from tests.integration.web_support import WsClient, fetch

MakeServer = Callable[..., Any]
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(200)


def tmp_files(srv: Server) -> list[str]:
    assert srv.web is not None and srv.web.uploads is not None
    return os.listdir(srv.web.uploads.index.tmp_dir)


def stored(srv: Server) -> int:
    assert srv.web is not None and srv.web.uploads is not None
    return len(srv.web.uploads.index)


async def test_upload_url_is_advertised_and_a_token_uploads_once(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        url = f"http://127.0.0.1:{port}/upload"
        isupport = " ".join(line for line in alice.seen if " 005 " in line)
        assert f"draft/FILEHOST={url}" in isupport
        assert f"soju.im/FILEHOST={url}" in isupport
        assert "draft/AUTHTOKEN" in isupport
        given, secret = await token(alice)
        assert given == url
        headers = {"Authorization": f"Bearer {secret}", "Content-Type": "image/png"}
        answer = await fetch(port, "POST", "/upload?name=dot.png", body=PNG, headers=headers)
        assert answer.status == 201, answer.body
        location = answer.headers["location"]
        assert location.startswith(f"http://127.0.0.1:{port}/uploads/")
        assert location.endswith("/dot.png")
        assert answer.json() == {
            "url": location,
            "name": "dot.png",
            "size": len(PNG),
            "type": "image/png",
        }
        got = await fetch(port, "GET", path_of(location))
        assert got.status == 200 and got.body == PNG
        again = await fetch(port, "POST", "/upload", body=PNG, headers=headers)
        assert again.status == 401  # one use
        assert 'error="invalid_token"' in again.headers["www-authenticate"]
        assert b"TOKEN GENERATE FILEHOST" in again.body
    finally:
        await alice.close()


async def test_websocket_clients_get_the_url_of_the_host_they_used(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    ws = await WsClient.open(port)
    try:
        await ws.send("NICK wendy")
        await ws.send("USER wendy 0 * :wendy")
        await ws.expect(rf"draft/FILEHOST=http://127\.0\.0\.1:{port}/upload")
    finally:
        await ws.close()


async def test_public_url_is_what_everyone_is_told(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, public_url="https://files.example.org/chat/")
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        assert any(
            "soju.im/FILEHOST=https://files.example.org/chat/upload" in x for x in alice.seen
        )
        headers = {"Authorization": basic("alice")}
        answer = await fetch(port, "POST", "/upload?name=a.txt", body=b"hi", headers=headers)
        assert answer.status == 201
        assert answer.headers["location"].startswith("https://files.example.org/chat/uploads/")
    finally:
        await alice.close()


async def test_unauthenticated_upload_is_refused_before_its_body(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    # The body is never sent: the answer must come from the head alone.
    answer, sent = await exchange(
        port, "POST", "/upload", {"Content-Length": "1000000"}, send_body=False
    )
    assert sent == 0
    assert answer.status == 401
    challenges = answer.headers["www-authenticate"]
    assert 'Basic realm="relaychat uploads"' in challenges and "Bearer" in challenges
    for bad in ("Basic !!!", "Basic " + "YWxpY2U=", "Digest x", "Bearer"):
        answer, _ = await exchange(port, "POST", "/upload", {"Authorization": bad}, b"data")
        assert answer.status == 401, bad
    assert stored(srv) == 0 and tmp_files(srv) == []


async def test_wrong_password_is_refused_without_blocking_the_loop(
    make_server: MakeServer,
) -> None:
    """The argon2 checks (about 0.1 s of CPU each) run on the accounts' worker: a PING sent at
    the same time as three uploads with a wrong password is answered before any of them."""
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    bob = await account(srv, "bob")
    loop = asyncio.get_running_loop()
    try:

        async def wrong(name: str) -> float:
            headers = {"Authorization": basic(name, "not the password")}
            answer, _ = await exchange(port, "POST", "/upload", headers, b"x" * 1000)
            assert answer.status == 401
            assert answer.body == b"Wrong account name or password\n"
            return loop.time()

        async def pong() -> float:
            await bob.send("PING :still-here")
            await bob.expect(r"PONG \S+ :?still-here")
            return loop.time()

        *refused, ponged = await asyncio.gather(
            wrong("alice"), wrong("alice"), wrong("nobody"), pong()
        )
        assert ponged < min(refused)
        assert stored(srv) == 0
    finally:
        await alice.close()
        await bob.close()


async def test_failed_logins_lock_the_address_out(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        for _ in range(srv.config.throttle.login_failures):
            headers = {"Authorization": "Bearer made-up"}
            answer, _ = await exchange(port, "POST", "/upload", headers, b"x")
            assert answer.status == 401
        headers = {"Authorization": basic("alice")}
        answer, _ = await exchange(port, "POST", "/upload", headers, b"x")
        assert answer.status == 429
        assert int(answer.headers["retry-after"]) >= 1
        assert b"Too many failed logins" in answer.body
    finally:
        await alice.close()


async def test_basic_login_uploads_and_the_token_expires(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, token_ttl=0.2)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        headers = {"Authorization": basic("alice"), "Content-Type": "text/plain"}
        answer = await fetch(port, "POST", "/upload?name=n.txt", body=b"notes", headers=headers)
        assert answer.status == 201
        _, secret = await token(alice)
        await asyncio.sleep(0.3)
        late = await fetch(
            port, "POST", "/upload", body=b"x", headers={"Authorization": f"Bearer {secret}"}
        )
        assert late.status == 401
    finally:
        await alice.close()


async def test_too_large_is_refused_from_content_length(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, max_size=1000)
    port = web_port(srv)
    headers = {"Authorization": basic("nobody"), "Content-Length": "1001"}
    answer, sent = await exchange(port, "POST", "/upload", headers, send_body=False)
    assert answer.status == 413 and sent == 0
    assert answer.body == b"File too large: 1001 B; the largest upload is 1000 B\n"
    assert answer.headers["upload-limit"] == "max-size=1000"
    answer, _ = await exchange(port, "POST", "/upload", {"Authorization": basic("x")}, b"")
    assert answer.status == 400 and answer.body == b"The file is empty\n"
    query = "/upload?" + "&".join(f"k{n}=v" for n in range(20))
    answer, _ = await exchange(port, "POST", query, {"Authorization": basic("x")}, b"x")
    assert answer.status == 400 and answer.body == b"Too many query parameters\n"


async def test_too_large_is_refused_while_streaming(make_server: MakeServer) -> None:
    """A chunked body (no Content-Length) is cut off as soon as it passes max_size; nothing
    of it stays on disk."""
    srv = await upload_server(make_server, max_size=3 << 20)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:

        def chunks() -> Iterator[bytes]:
            for _ in range(64):  # 16 MiB offered
                yield b"z" * (256 << 10)

        answer, sent = await exchange(
            port, "POST", "/upload", {"Authorization": basic("alice")}, chunks()
        )
        assert answer.status == 413, answer.body
        assert answer.body == b"File too large: the largest upload is 3.0 MiB\n"
        assert sent < 12 << 20  # it stopped reading well before the end
        assert stored(srv) == 0
        for _ in range(100):
            if not tmp_files(srv):
                break
            await asyncio.sleep(0.02)
        assert tmp_files(srv) == []
        # The same account may upload within the limit afterwards (nothing stays reserved).
        ok, _ = await exchange(port, "POST", "/upload", {"Authorization": basic("alice")}, b"y")
        assert ok.status == 201
    finally:
        await alice.close()


async def test_quota_refuses_or_deletes_the_oldest(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, quota_per_account=3000, max_files_per_account=3)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        auth = {"Authorization": basic("alice")}
        first = await fetch(port, "POST", "/upload", body=b"a" * 2000, headers=auth)
        assert first.status == 201
        over = await fetch(port, "POST", "/upload", body=b"b" * 1500, headers=auth)
        assert over.status == 413
        assert over.body == (
            b"Over your upload quota: you keep 2.0 KiB of 2.9 KiB, and this file is 1.5 KiB\n"
        )
        for _ in range(2):
            assert (await fetch(port, "POST", "/upload", body=b"c", headers=auth)).status == 201
        many = await fetch(port, "POST", "/upload", body=b"d", headers=auth)
        assert many.status == 413 and many.body == b"Too many files: you keep 3, the limit is 3\n"
    finally:
        await alice.close()

    srv = await upload_server(make_server, quota_per_account=3000, quota_delete_oldest=True)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        auth = {"Authorization": basic("alice")}
        first = await fetch(port, "POST", "/upload", body=b"a" * 2000, headers=auth)
        second = await fetch(port, "POST", "/upload", body=b"b" * 1500, headers=auth)
        assert second.status == 201
        assert (await fetch(port, "GET", path_of(first.headers["location"]))).status == 404
        assert (await fetch(port, "GET", path_of(second.headers["location"]))).status == 200
        huge = await fetch(port, "POST", "/upload", body=b"c" * 3001, headers=auth)
        assert huge.status == 413  # bigger than the whole quota: nothing deleted for it
        assert (await fetch(port, "GET", path_of(second.headers["location"]))).status == 200
    finally:
        await alice.close()


async def test_server_space_limits_give_507(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, max_total=1000)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        auth = {"Authorization": basic("alice")}
        assert (await fetch(port, "POST", "/upload", body=b"a" * 800, headers=auth)).status == 201
        full = await fetch(port, "POST", "/upload", body=b"b" * 300, headers=auth)
        assert full.status == 507 and full.body == b"The server's space for uploads is full\n"
    finally:
        await alice.close()
    srv = await upload_server(make_server, min_free=1 << 62)
    port = web_port(srv)
    alice = await account(srv, "alice")
    try:
        answer = await fetch(
            port, "POST", "/upload", body=b"x", headers={"Authorization": basic("alice")}
        )
        assert answer.status == 507
        assert answer.body == b"Not enough disk space on the server for this file\n"
    finally:
        await alice.close()


async def test_the_body_goes_to_disk_as_it_arrives(make_server: MakeServer) -> None:
    """Half of a 16 MiB body is sent, then the sender waits: the part received is already in a
    file under tmp/ (the server holds at most a few MiB in memory). Then the rest follows and
    the stored file is whole."""
    srv = await upload_server(make_server)
    port = web_port(srv)
    alice = await account(srv, "alice")
    data = os.urandom(16 << 20)
    try:
        headers = {"Authorization": basic("alice"), "Content-Length": str(len(data))}
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = (
            f"POST /upload?name=big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        )
        writer.write(head.encode())
        writer.write(data[: len(data) // 2])
        await writer.drain()
        assert srv.web is not None and srv.web.uploads is not None
        tmp = srv.web.uploads.index.tmp_dir
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        on_disk = 0
        while on_disk < 4 << 20:
            files = list(tmp.iterdir())
            on_disk = files[0].stat().st_size if files else 0
            assert loop.time() < deadline, f"only {on_disk} bytes on disk"
            await asyncio.sleep(0.02)
        assert on_disk <= len(data) // 2
        writer.write(data[len(data) // 2 :])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), TIMEOUT)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 201 "), answer
        meta = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        got = await fetch(port, "GET", path_of(meta["url"]))
        assert hashlib.sha256(got.body).digest() == hashlib.sha256(data).digest()
        assert tmp_files(srv) == []
    finally:
        await alice.close()


async def test_origins_and_preflight(make_server: MakeServer) -> None:
    srv = await upload_server(make_server)
    port = web_port(srv)
    own = f"http://127.0.0.1:{port}"
    pre = await fetch(port, "OPTIONS", "/upload", headers={"Origin": own})
    assert pre.status == 204
    assert pre.headers["access-control-allow-origin"] == own
    assert "Authorization" in pre.headers["access-control-allow-headers"]
    assert pre.headers["access-control-expose-headers"] == "Location, Upload-Limit"
    assert pre.headers["accept-post"] == "*/*"
    assert pre.headers["upload-limit"] == f"max-size={100 << 20}"
    evil = await fetch(
        port,
        "POST",
        "/upload",
        body=b"x",
        headers={"Origin": "https://evil.example", "Authorization": basic("a")},
    )
    assert evil.status == 403
    assert "access-control-allow-origin" not in evil.headers
    wrong = await fetch(port, "GET", "/upload")
    assert wrong.status == 405 and wrong.headers["allow"] == "OPTIONS, POST"


async def test_uploads_off(make_server: MakeServer) -> None:
    srv = await upload_server(make_server, enabled=False)
    port = web_port(srv)
    alice: LineClient = await account(srv, "alice")
    try:
        assert not any("FILEHOST" in line for line in alice.seen)
        await alice.send("TOKEN GENERATE FILEHOST")
        await alice.expect("FAIL TOKEN UNKNOWN_SERVICE FILEHOST")
        answer = await fetch(
            port, "POST", "/upload", body=b"x", headers={"Authorization": basic("alice")}
        )
        assert answer.status in (404, 405)
    finally:
        await alice.close()


async def test_a_stop_during_an_upload_leaves_nothing_behind(
    make_server: MakeServer, tmp_path: Any, caplog: Any
) -> None:
    """The server stops while a body is arriving: nothing fails loudly, and the partial file is
    gone (at once, or at the next start); nothing is listed."""
    folder = str(tmp_path / "up")
    srv = await upload_server(make_server, dir=folder)
    port = web_port(srv)
    alice = await account(srv, "alice")
    await alice.close()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {basic('alice')}\r\n"
        f"Content-Length: {8 << 20}\r\n\r\n"
    )
    writer.write(head.encode() + os.urandom(2 << 20))
    await writer.drain()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not tmp_files(srv):
        assert loop.time() < deadline, "the upload never reached tmp/"
        await asyncio.sleep(0.02)
    caplog.set_level("ERROR")
    await srv.stop()
    writer.close()
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    again = await upload_server(make_server, dir=folder)
    assert tmp_files(again) == [] and stored(again) == 0
