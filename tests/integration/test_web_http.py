"""The HTTP port's other routes over real sockets: static files, /metrics, /healthz, /readyz,
webhooks, and the HTTP edge's bounds."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relaychat.server.listeners import Server
from relaychat.web.hooks import HookStore
from tests.harness import TIMEOUT, LineClient
from tests.integration.web_support import WsClient, fetch, tcp_client, web_port, web_server

MakeServer = Callable[..., Any]


async def raw_request(port: int, data: bytes, *, until_closed: bool = True) -> bytes:
    """Send ``data`` on a new socket; read until the server closes it (or one read)."""

    def run() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
            s.sendall(data)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
                    if not until_closed:
                        break
            except ConnectionResetError:
                pass
            return out

    return await asyncio.to_thread(run)


# --- static files ------------------------------------------------------------------------------


async def test_index_has_csp_nosniff_and_caching_headers(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    port = web_port(srv)
    page = await fetch(port, "GET", "/")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<!doctype html>" in page.body.lower()
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert f"connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port}" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    again = await fetch(port, "GET", "/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status == 304 and again.body == b""
    css = await fetch(port, "GET", "/style.css")
    assert css.status == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["cache-control"].startswith("public, max-age=")
    head = await fetch(port, "HEAD", "/index.html")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["content-length"]) == len(page.body)
    post = await fetch(port, "POST", "/", body=b"x")
    assert post.status == 405


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/../pyproject.toml",
        "/..%2f..%2fpyproject.toml",
        "/%2e%2e/%2e%2e/README.md",
        "/static/../../../etc/passwd",
        "//etc/passwd",
        "/web/static/index.html",
        "/.hidden",
    ],
)
async def test_unknown_paths_and_traversal_get_404(make_server: MakeServer, path: str) -> None:
    srv = await web_server(make_server)
    answer = await raw_request(
        web_port(srv), f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]
    assert b"root:" not in answer and b"[project]" not in answer


async def test_malformed_request_gets_400_and_keep_alive_works(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    port = web_port(srv)
    assert (await raw_request(port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
    two = await raw_request(
        port,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert two.startswith(b"HTTP/1.1 200 ") and b"HTTP/1.1 404 " in two


async def test_slow_request_times_out(make_server: MakeServer) -> None:
    srv = await web_server(make_server, http_settings={"request_timeout": 0.3})
    unfinished = b"GET / HTTP/1.1\r\nHost: x\r\n"  # the head never ends
    answer = await raw_request(web_port(srv), unfinished)
    assert answer.startswith(b"HTTP/1.1 408 ")


async def test_http_connections_are_bounded(make_server: MakeServer) -> None:
    srv = await web_server(make_server, http_settings={"max_connections": 2})
    port = web_port(srv)
    held = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) for _ in range(2)]
    await asyncio.sleep(0.1)
    data = await raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data == b""
    for h in held:
        h.close()
    await asyncio.sleep(0.1)
    assert (await fetch(port, "GET", "/healthz")).status == 200


# --- health and metrics ------------------------------------------------------------------------


async def test_healthz_and_readyz(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    port = web_port(srv)
    health = await fetch(port, "GET", "/healthz")
    assert health.status == 200 and health.headers["content-type"] == "application/json"
    assert health.json()["status"] == "ok"
    ready = await fetch(port, "GET", "/readyz")
    assert ready.status == 200
    assert ready.json() == {"status": "ready", "listening": "ok", "store": "ok"}
    # A database nobody can write to (its write lock held elsewhere) is not ready.
    path = srv.history_path()
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        blocked = await fetch(port, "GET", "/readyz")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert blocked.status == 503
    assert blocked.json()["status"] == "not ready" and "locked" in blocked.json()["store"]
    assert (await fetch(port, "GET", "/readyz")).status == 200


async def test_readyz_without_history(make_server: MakeServer) -> None:
    from dataclasses import replace

    from tests.harness import free_config

    base = free_config()
    srv = await web_server(make_server, history=replace(base.history, enabled=False))
    ready = await fetch(web_port(srv), "GET", "/readyz")
    assert ready.status == 200 and ready.json()["store"] == "disabled"


def metrics_of(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def test_metrics_count_what_the_test_did(make_server: MakeServer) -> None:
    srv = await web_server(make_server)
    port = web_port(srv)
    before = metrics_of((await fetch(port, "GET", "/metrics")).body.decode())
    assert before["relaychat_connections{transport=websocket}"] == 0
    alice = await tcp_client(srv, "alice")
    bob = await tcp_client(srv, "bob")
    web = await WsClient.open(port)
    await web.register("web")
    for c, nick in ((alice, "alice"), (bob, "bob")):
        await c.send("JOIN #m")
        await c.expect(rf" 366 {nick} #m ")
    await web.send("JOIN #m")
    await web.expect(r" 366 web #m ")
    await alice.send("JOIN #other")
    await alice.expect(r" 366 alice #other ")
    for i in range(3):
        await alice.send(f"PRIVMSG #m :message {i}")
    await web.send("PRIVMSG bob :private")
    await bob.expect(r"PRIVMSG bob :private")
    await web.expect(r"PRIVMSG #m :message 2")
    answer = await fetch(port, "GET", "/metrics")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain")
    m = metrics_of(answer.body.decode())
    assert m["relaychat_connections{transport=tcp}"] == 2
    assert m["relaychat_connections{transport=websocket}"] == 1
    assert m["relaychat_connections{transport=tls}"] == 0
    assert m["relaychat_registered_users"] == 3
    assert m["relaychat_channels"] == 2
    assert m["relaychat_messages_relayed_total"] - before["relaychat_messages_relayed_total"] == 4
    assert m["relaychat_bytes_out_total"] > 1000
    assert m["relaychat_history_commit_seconds_count"] >= 1
    assert (
        m["relaychat_history_commit_seconds_bucket{le=+Inf}"]
        == m["relaychat_history_commit_seconds_count"]
    )
    assert m["relaychat_sendq_drops_total"] == 0
    assert m["relaychat_flood_throttles_total"] == 0
    assert m["relaychat_event_loop_lag_seconds"] >= 0
    assert m["process_resident_memory_bytes"] > 0


async def test_metrics_count_flood_throttles(make_server: MakeServer) -> None:
    srv = await web_server(make_server, limits={"flood_rate": 5.0, "flood_burst": 5})
    flooder = await tcp_client(srv, "flooder")
    flooder.writer.write(b"".join(b"PING :x%d\r\n" % i for i in range(20)))
    await flooder.expect(r"PONG .*x19")
    m = metrics_of((await fetch(web_port(srv), "GET", "/metrics")).body.decode())
    assert m["relaychat_flood_throttles_total"] == 1


async def test_metrics_bearer_token(make_server: MakeServer) -> None:
    srv = await web_server(make_server, http_settings={"metrics_token": "s3cret"})
    port = web_port(srv)
    refused = await fetch(port, "GET", "/metrics")
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    wrong = await fetch(port, "GET", "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    ok = await fetch(port, "GET", "/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status == 200 and b"relaychat_connections" in ok.body


# --- webhooks ----------------------------------------------------------------------------------


async def hook_setup(
    make_server: MakeServer, **http_settings: Any
) -> tuple[Server, int, str, LineClient]:
    srv = await web_server(make_server, http_settings=http_settings)
    token = HookStore(srv.config.data_path()).add("#deploys", "ci", time.time())
    watcher = await tcp_client(srv, "watcher")
    await watcher.send("JOIN #deploys")
    await watcher.expect(r" 366 watcher #deploys ")
    return srv, web_port(srv), token, watcher


async def nothing_posted(srv: Server, watcher: LineClient) -> None:
    """The next line the watcher gets is a marker sent now: nothing came before it."""
    marker = await tcp_client(srv, "marker")
    await marker.send("PRIVMSG watcher :marker")
    line = await watcher.readline()
    assert line.endswith("PRIVMSG watcher :marker"), line
    await marker.close()


async def test_webhook_posts_to_the_channel_as_a_bot(make_server: MakeServer) -> None:
    _srv, port, token, watcher = await hook_setup(make_server)
    answer = await fetch(
        port,
        "POST",
        f"/hooks/{token}",
        body=json.dumps({"text": "deployed build 42\nall green"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status == 200, answer.body
    assert answer.json()["ok"] is True and answer.json()["posted"] == 2
    await watcher.expect(r"^:ci/hook!hook@relaychat\.local PRIVMSG #deploys :deployed build 42$")
    await watcher.expect(r"^:ci/hook!hook@relaychat\.local PRIVMSG #deploys :all green$")
    # curl -d (form type, JSON body), Slack's payload= form, and text/plain all work.
    for body, ctype, text in (
        (b'{"text":"from curl"}', "application/x-www-form-urlencoded", "from curl"),
        (b"payload=%7B%22text%22%3A%22slack%22%7D", "application/x-www-form-urlencoded", "slack"),
        (b"plain words", "text/plain; charset=utf-8", "plain words"),
    ):
        ok = await fetch(
            port, "POST", f"/hooks/{token}", body=body, headers={"Content-Type": ctype}
        )
        assert ok.status == 200, ok.body
        await watcher.expect(rf"PRIVMSG #deploys :{text}$")
    # In history, with the msgids the post returned.
    await watcher.send("CAP REQ :draft/chathistory message-tags batch server-time")
    await watcher.expect(r" CAP watcher ACK ")
    await watcher.send("CHATHISTORY LATEST #deploys * 10")
    m = await watcher.expect(r"msgid=([^; ]+)\S* :ci/hook!\S+ PRIVMSG #deploys :deployed build 42$")
    assert m.group(1) == answer.json()["msgids"][0]


async def test_webhook_errors_post_nothing(make_server: MakeServer) -> None:
    srv, port, token, watcher = await hook_setup(make_server, max_body=200, hook_max_lines=3)
    url = f"/hooks/{token}"
    js = {"Content-Type": "application/json"}
    cases = [
        ("POST", "/hooks/wrong-token", b'{"text":"x"}', js, 401),
        ("POST", "/hooks/", b'{"text":"x"}', js, 404),
        ("POST", "/hookz/abc", b'{"text":"x"}', js, 404),
        ("GET", url, None, {}, 405),
        ("POST", url, b'{"text": "' + b"x" * 300 + b'"}', js, 413),
        ("POST", url, b'{"text": ', js, 400),
        ("POST", url, b'["text"]', js, 400),
        ("POST", url, b'{"txt": "x"}', js, 400),
        ("POST", url, b"\xff\xfe", {"Content-Type": "text/plain"}, 400),
        ("POST", url, b"a\nb\nc\nd", {"Content-Type": "text/plain"}, 400),
        ("POST", url, b"", {"Content-Type": "text/plain"}, 400),
        ("POST", url, b"x", {"Content-Type": "image/png"}, 400),
    ]
    for method, path, body, headers, status in cases:
        answer = await fetch(port, method, path, body=body, headers=headers)
        assert answer.status == status, (path, body, answer.status, answer.body)
        if status in (400, 401):
            reason = answer.json()["error"]
            assert reason and "\n" not in reason
    await nothing_posted(srv, watcher)


async def test_webhook_rate_limit_gives_429_with_retry_after(make_server: MakeServer) -> None:
    srv, port, token, watcher = await hook_setup(
        make_server, hook_rate=0.5, hook_burst=3, hook_max_lines=3
    )
    js = {"Content-Type": "application/json"}
    ok = await fetch(port, "POST", f"/hooks/{token}", body=b'{"text":"1\\n2"}', headers=js)
    assert ok.status == 200
    too_many = await fetch(port, "POST", f"/hooks/{token}", body=b'{"text":"3\\n4"}', headers=js)
    assert too_many.status == 429
    assert int(too_many.headers["retry-after"]) >= 1
    for text in ("1", "2"):
        await watcher.expect(rf"PRIVMSG #deploys :{text}$")
    await nothing_posted(srv, watcher)


async def test_webhook_to_an_empty_channel_is_409(make_server: MakeServer) -> None:
    _srv, port, token, watcher = await hook_setup(make_server)
    await watcher.send("PART #deploys")
    await watcher.expect(r" PART #deploys")
    answer = await fetch(
        port, "POST", f"/hooks/{token}", body=b"hi", headers={"Content-Type": "text/plain"}
    )
    assert answer.status == 409 and "#deploys" in answer.json()["error"]


async def test_hooks_added_and_removed_while_running(make_server: MakeServer) -> None:
    srv, port, token, watcher = await hook_setup(make_server)
    store = HookStore(srv.config.data_path())
    second = store.add("#deploys", "backup", time.time())
    body, ctype = b"nightly backup done", {"Content-Type": "text/plain"}
    assert (await fetch(port, "POST", f"/hooks/{second}", body=body, headers=ctype)).status == 200
    await watcher.expect(r"^:backup/hook!\S+ PRIVMSG #deploys :nightly backup done$")
    assert store.remove("backup")
    assert (await fetch(port, "POST", f"/hooks/{second}", body=body, headers=ctype)).status == 401
    assert (await fetch(port, "POST", f"/hooks/{token}", body=body, headers=ctype)).status == 200
