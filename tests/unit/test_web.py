"""The HTTP port's pure parts, in memory: Origin and proxy rules, webhook bodies and posts
through the core, WebSocket framing, the static file table, the [http] settings."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from relaychat.config import load_config
from relaychat.errors import ConfigError, SeveralLines
from relaychat.server.commands.messaging import post_internal
from relaychat.server.stats import LatencyHistogram
from relaychat.web.app import client_ip, origin_allowed
from relaychat.web.hooks import BadBody, HookError, HookStore, Webhooks, parse_body
from relaychat.web.static import StaticFiles
from relaychat.web.websocket import frame_lines
from tests.harness import CoreHarness


@pytest.mark.parametrize(
    ("origin", "host", "allowed", "ok"),
    [
        (None, "a.example", (), True),
        ("http://a.example", "a.example", (), True),
        ("https://A.example:8443", "a.example:8443", (), True),
        ("http://b.example", "a.example", (), False),
        ("null", "a.example", (), False),
        ("http://a.example", None, (), False),
        ("https://chat.example.org/", "x", ("https://chat.example.org",), True),
        ("https://evil.example", "x", ("https://chat.example.org",), False),
        ("https://evil.example", "x", ("*",), True),
    ],
)
def test_origin_rules(
    origin: str | None, host: str | None, allowed: tuple[str, ...], ok: bool
) -> None:
    assert origin_allowed(origin, host, allowed) is ok


def nets(*items: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(i) for i in items)


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "seen"),
    [
        ("10.0.0.1", "1.2.3.4", nets("10.0.0.0/8"), "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4", (), "10.0.0.1"),
        ("9.9.9.9", "1.2.3.4", nets("10.0.0.0/8"), "9.9.9.9"),
        ("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", nets("10.0.0.0/8"), "1.2.3.4"),
        ("10.0.0.1", "garbage, 1.2.3.4", nets("10.0.0.0/8"), "1.2.3.4"),
        ("10.0.0.1", "1.2.3.4, garbage", nets("10.0.0.0/8"), "10.0.0.1"),
        ("10.0.0.1", "10.0.0.3", nets("10.0.0.0/8"), "10.0.0.3"),
        ("10.0.0.1", "::ffff:1.2.3.4", nets("10.0.0.0/8"), "1.2.3.4"),
        ("10.0.0.1", None, nets("10.0.0.0/8"), "10.0.0.1"),
    ],
)
def test_client_ip_rules(peer: str, forwarded: str | None, proxies: tuple, seen: str) -> None:  # type: ignore[type-arg]
    assert client_ip(peer, forwarded, proxies) == seen


@pytest.mark.parametrize(
    ("ctype", "body", "text"),
    [
        ("application/json", b'{"text": "hi"}', "hi"),
        ("application/json; charset=utf-8", b'{"text": "a\\nb", "username": "x"}', "a\nb"),
        ("application/x-www-form-urlencoded", b'{"text":"curl -d"}', "curl -d"),
        ("application/x-www-form-urlencoded", b"payload=%7B%22text%22%3A%22s%22%7D", "s"),
        ("application/x-www-form-urlencoded", b"text=hello+there", "hello there"),
        ("text/plain", "grüße".encode(), "grüße"),
        ("", b'{"text": "no type"}', "no type"),
    ],
)
def test_webhook_bodies(ctype: str, body: bytes, text: str) -> None:
    assert parse_body(ctype, body) == text


@pytest.mark.parametrize(
    ("ctype", "body", "reason"),
    [
        ("application/json", b"{", "bad JSON"),
        ("application/json", b"[1]", "JSON object"),
        ("application/json", b'{"text": 5}', '"text" string'),
        ("text/plain", b"\xff", "not UTF-8"),
        ("application/x-www-form-urlencoded", b"a=b", "payload="),
        ("image/png", b"x", "unsupported content type"),
    ],
)
def test_bad_webhook_bodies(ctype: str, body: bytes, reason: str) -> None:
    with pytest.raises(BadBody, match=reason) as info:
        parse_body(ctype, body)
    assert "\n" not in str(info.value)


def test_hook_store_keeps_only_a_hash_and_reloads_on_change(tmp_path: Path) -> None:
    store = HookStore(tmp_path)
    token = store.add("#deploys", "ci", time.time())
    raw = (tmp_path / "hooks.json").read_text()
    assert token not in raw and "#deploys" in raw
    assert os.stat(tmp_path / "hooks.json").st_mode & 0o077 == 0
    found = store.find(token)
    assert found is not None and found.name == "ci"
    assert store.find("nope") is None
    other = HookStore(tmp_path)  # another process (the CLI) changes the file
    assert other.remove("CI")
    assert store.find(token) is None
    assert not other.remove("ci")
    with pytest.raises(HookError, match="bad name"):
        store.add("#x", "no spaces", 0)
    with pytest.raises(HookError, match="bad channel"):
        store.add("deploys", "ok", 0)
    store.add("#x", "dup", 0)
    with pytest.raises(HookError, match="exists already"):
        store.add("#y", "DUP", 0)
    (tmp_path / "hooks.json").write_text("{broken")
    with pytest.raises(HookError, match="not a hook list"):
        store.find("x")


def webhooks(tmp_path: Path, h: CoreHarness, **kw: float) -> tuple[Webhooks, str]:
    store = HookStore(tmp_path)
    token = store.add("#deploys", "ci", 0)
    settings = {"max_lines": 3, "rate": 1.0, "burst": 3, **kw}
    return Webhooks(store, h.core, post_internal, **settings), token  # type: ignore[arg-type]


def test_webhook_post_goes_through_the_core(tmp_path: Path) -> None:
    h = CoreHarness()
    h.connect("alice")
    h.send("alice", "JOIN #deploys")
    h.connect("bob")
    h.send("bob", "CAP REQ :message-tags server-time")
    h.send("bob", "JOIN #deploys")
    h.clear()
    hooks, token = webhooks(tmp_path, h)
    before = h.core.messages_relayed
    out = hooks.post(token, "text/plain", b"first\n\nsecond", now=10.0)
    assert out.status == 200 and len(out.msgids) == 2
    assert h.lines("alice") == [
        ":ci/hook!hook@relaychat.local PRIVMSG #deploys :first",
        ":ci/hook!hook@relaychat.local PRIVMSG #deploys :second",
    ]
    tagged = h.lines("bob")
    assert f"msgid={out.msgids[0]}" in tagged[0] and "time=" in tagged[0]
    assert h.core.messages_relayed - before == 2
    assert hooks.posted == {"ci": 2}
    # The bot holds no nick: nobody can message it, anybody may use "ci".
    h.send("alice", "PRIVMSG ci/hook :hi")
    assert h.numerics("alice") == ["401"]


def test_webhook_checks_come_before_posting(tmp_path: Path) -> None:
    h = CoreHarness()
    hooks, token = webhooks(tmp_path, h)
    assert hooks.post("bad", "text/plain", b"x", 0).status == 401
    assert hooks.post(token, "text/plain", b"x", 0).status == 409  # nobody in #deploys
    h.connect("alice")
    h.send("alice", "JOIN #deploys")
    h.clear()
    assert hooks.post(token, "text/plain", b"1\n2\n3\n4", 0).status == 400
    long = ("word " * 300).encode()  # 1500 bytes: split into 4 lines, over max_lines
    assert hooks.post(token, "text/plain", long, 0).status == 400
    assert hooks.post(token, "text/plain", b"1\n2", 0).status == 200
    limited = hooks.post(token, "text/plain", b"3\n4", 0.5)
    assert limited.status == 429 and limited.retry_after == 1  # 0.5 token short at 1/s
    assert h.lines("alice") == [
        ":ci/hook!hook@relaychat.local PRIVMSG #deploys :1",
        ":ci/hook!hook@relaychat.local PRIVMSG #deploys :2",
    ]
    assert hooks.post(token, "text/plain", b"3\n4", 2.5).status == 200


def test_webhook_splits_long_lines_to_fit(tmp_path: Path) -> None:
    h = CoreHarness()
    h.connect("alice")
    h.send("alice", "JOIN #deploys")
    h.clear()
    hooks, token = webhooks(tmp_path, h)
    text = "x" * 700
    assert hooks.post(token, "text/plain", text.encode(), 0).status == 200
    lines = h.lines("alice")
    assert len(lines) == 2 and all(len(line.encode()) <= 510 for line in lines)
    assert "".join(line.split(" :", 1)[1] for line in lines) == text


def parse_frames(data: bytes) -> list[Frame]:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while True:
        gen = Frame.parse(reader.read_exact, mask=False)
        try:
            next(gen)
        except StopIteration as done:
            frames.append(done.value)
            continue
        except EOFError:
            return frames
        return frames


def test_frame_lines_one_message_per_line() -> None:
    frames = parse_frames(frame_lines(b":a PRIVMSG #x :one\r\n:a PRIVMSG #x :two\r\n", False))
    assert [(f.opcode, f.data) for f in frames] == [
        (Opcode.TEXT, b":a PRIVMSG #x :one"),
        (Opcode.TEXT, b":a PRIVMSG #x :two"),
    ]
    (binary,) = parse_frames(frame_lines(b":a PRIVMSG #x :\xff\r\n", True))
    assert binary.opcode is Opcode.BINARY and binary.data == b":a PRIVMSG #x :\xff"
    (text,) = parse_frames(frame_lines(b":a PRIVMSG #x :\xff\r\n", False))
    assert text.data.decode("utf-8") == ":a PRIVMSG #x :\ufffd"  # never invalid UTF-8
    data = b":s 001 n :hi\r\n"
    assert frame_lines(data, False) is frame_lines(data, False)  # framed once, shared


def test_frame_lines_of_a_big_coalesced_output_one_message_per_line() -> None:
    # A channel's coalesced lines of one loop turn (server/fanout.py rule 4) can pass the size
    # cached whole: still one message per line, in order, the same for every member.
    lines = [b":a PRIVMSG #x :message %d \xff" % n + b"x" * 80 for n in range(100)]
    data = b"".join(line + b"\r\n" for line in lines)
    for binary in (False, True):
        frames = parse_frames(frame_lines(data, binary))
        assert len(frames) == 100
        if binary:
            assert [f.data for f in frames] == lines
        else:
            assert [f.data for f in frames] == [
                ln.decode("utf-8", "replace").encode("utf-8") for ln in lines
            ]
        assert frame_lines(data, binary) == frame_lines(data, binary)
        # The same output object (what every member of the batch gets) is framed once.
        assert frame_lines(data, binary) is frame_lines(data, binary)
    huge = b"".join([b":a PRIVMSG #x :" + b"y" * 400 + b"\r\n"] * 3000)  # > the cache's budget
    assert len(parse_frames(frame_lines(huge, False))) == 3000
    assert frame_lines(huge, False) is not frame_lines(huge, False)  # framed, not kept


def test_static_table_never_reaches_outside(tmp_path: Path) -> None:
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<p>home</p>")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (root / "app.js").write_text("x")
    (root / ".secret").write_text("no")
    (tmp_path / "outside.txt").write_text("secret")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    files = StaticFiles(root)  # type: ignore[arg-type]
    assert files.serve("GET", "/", None).body == b"<p>home</p>"
    assert files.serve("GET", "/sub/", None).body == b"<p>sub</p>"
    assert files.serve("GET", "/app.js", None).content_type == "text/javascript; charset=utf-8"
    for path in ("/../outside.txt", "/sub/../../outside.txt", "/.secret", "/sub", "/%2e%2e/x"):
        assert files.serve("GET", path, None).status == 404, path
    assert "/link.txt" in files.files  # a link inside the folder is the folder's choice


def test_latency_histogram_is_cumulative() -> None:
    hist = LatencyHistogram((0.01, 0.1))
    for v in (0.005, 0.05, 0.05, 3.0):
        hist.observe(v)
    assert hist.cumulative() == [("0.01", 1), ("0.1", 3), ("+Inf", 4)]
    assert hist.sum == pytest.approx(3.105)


def test_several_lines_error_and_pong_liveness_in_the_core() -> None:
    h = CoreHarness()
    user = h.connect("alice")
    h.core.protocol_error(user, SeveralLines(), h.now)
    (line,) = h.lines("alice")
    assert line.startswith(":relaychat.local 400 alice * :A WebSocket message must hold one")
    h.advance(h.config.ping_interval + 1)
    assert user.ping_sent_at is not None
    h.core.alive(user, h.now)
    assert user.ping_sent_at is None and user.last_seen == h.now


def test_http_settings_layers_and_validation() -> None:
    config = load_config(environ={"RELAYCHAT_HTTP__PORT": "9090"}, overrides={"http.tls": None})
    assert config.http.port == 9090 and config.http.tls is False
    config = load_config(environ={"RELAYCHAT_HTTP__PORT": "9090"}, overrides={"http.port": 0})
    assert config.http.port == 0
    for key, value, message in [
        ("http.port", 70000, "not a port"),
        ("http.tls", True, "needs tls_cert"),
        ("http.trusted_proxies", "10.0.0.0/8, nonsense", "not an IP"),
        ("http.allowed_origins", "chat.example.org", "not an origin"),
        ("http.ws_max_message", 100, "at least 1024"),
        ("http.hook_burst", 1, "at least http.hook_max_lines"),
        ("http.request_timeout", 0, "greater than 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(environ={}, overrides={key: value})
