"""The HTTP port's routes: ``/ws``, ``/metrics``, ``/healthz``, ``/readyz``, ``/hooks/<token>``,
``/upload`` and ``/uploads/<id>`` (``uploads.py``) and the browser client's files at ``/``.

Rules:
1. One :class:`WebApp` per server, made by the server with itself as the :class:`WebHost`.
   It owns the HTTP connections (the WebSocket ones belong to the server like any client).
2. ``/ws`` checks the ``Origin`` (``http.allowed_origins``; by default the request's own
   ``Host``; a request without ``Origin`` is not from a browser page and is let through), then
   lets ``websockets`` answer the handshake. The client's address is the peer's, or the
   ``X-Forwarded-For`` hop nearest to us that is not a trusted proxy, when the peer is one of
   ``http.trusted_proxies``.
3. Every response carries a strict Content-Security-Policy (scripts, styles, images, fonts
   from this origin only, no inline code; WebSocket connections to this host) and
   ``X-Content-Type-Options: nosniff``.
   Upload responses (``/upload``, ``/uploads/...``) get ``default-src 'none'; sandbox``
   instead: nothing served from there may run or load anything.
4. A periodic task measures the event loop's lag and, every ``http.ws_ping_interval``,
   pings WebSocket clients that were quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Protocol

from relaychat.config import Config
from relaychat.server.commands.messaging import post_internal
from relaychat.server.connection import Hub
from relaychat.server.tls import server_context
from relaychat.web.health import health, readiness
from relaychat.web.hooks import HookStore, Webhooks
from relaychat.web.http import (
    HOST_FIELD,
    Begin,
    HttpConnection,
    HttpRequest,
    Response,
    Upgrade,
    request_base,
)
from relaychat.web.metrics import CONTENT_TYPE_LATEST, Metrics, RelaychatCollector
from relaychat.web.static import StaticFiles
from relaychat.web.uploads import UPLOAD_CSP, UploadService
from relaychat.web.websocket import WebSocketConnection, handshake

__all__ = ["WebApp", "WebHost", "client_ip", "origin_allowed"]

log = logging.getLogger("relaychat.web")

#: Seconds between event-loop lag samples.
LAG_STEP = 0.25
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class WebHost(Hub, Protocol):
    """What the web edge needs from the server (``listeners.Server`` is one)."""

    commit_error: str | None

    @property
    def listening(self) -> bool:
        """Every listener is open and serving."""

    def history_path(self) -> Path | None:
        """The history database file, or ``None`` when history is off."""


def origin_allowed(origin: str | None, host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a page from ``origin`` may open ``/ws`` on ``host`` (rule 2)."""
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if allowed:
        return "*" in allowed or origin in allowed
    if host is None:
        return False
    _, sep, netloc = origin.partition("://")
    return bool(sep) and netloc == host.strip().lower()


def client_ip(peer: str, forwarded: str | None, proxies: tuple[_Net, ...]) -> str:
    """The client's address (rule 2): ``peer``, or from ``X-Forwarded-For`` via trusted proxies."""
    if not proxies or not forwarded or not _within(peer, proxies):
        return peer
    best = peer
    for hop in reversed([h.strip() for h in forwarded.split(",")]):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage: believe no further
        text = str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)
        best = text
        if not _within(text, proxies):
            break
    return best


def _within(ip: str, networks: tuple[_Net, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in net for net in networks)


def _json(
    status: int, data: dict[str, object], headers: tuple[tuple[str, str], ...] = ()
) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return Response(status, body, "application/json", headers)


class WebApp:
    """The routes (rule 1).

    Args:
        host: the server.
    """

    def __init__(self, host: WebHost) -> None:
        self.host = host
        config: Config = host.config
        web = config.http
        self.settings = web
        self.static = StaticFiles()
        self.http_connections: set[HttpConnection] = set()
        self.origins = tuple(
            o.strip().lower().rstrip("/") for o in web.allowed_origins.split(",") if o.strip()
        )
        self.proxies = tuple(
            ipaddress.ip_network(p.strip(), strict=False)
            for p in web.trusted_proxies.split(",")
            if p.strip()
        )
        self.hooks = Webhooks(
            HookStore(config.data_path()),
            host.core,
            post_internal,
            max_lines=web.hook_max_lines,
            rate=web.hook_rate,
            burst=web.hook_burst,
        )
        self.uploads: UploadService | None = None
        if config.uploads.enabled:
            self.uploads = UploadService(
                host,
                client_ip=lambda r: client_ip(
                    r.peer, r.headers.get("x-forwarded-for"), self.proxies
                ),
                origin_ok=lambda r: origin_allowed(
                    r.headers.get("origin"), r.headers.get("host"), self.origins
                ),
            )
            self.uploads.open()
        extra = [("relaychat_webhook_messages", "Messages posted by webhooks", self.hooks.posted)]
        self.metrics = Metrics(RelaychatCollector(host.core, host.connections, host.stats, extra))
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    # --- life cycle ----------------------------------------------------------------------------

    def tls_context(self) -> ssl.SSLContext | None:
        """The context for HTTPS (``http.tls``), or ``None``.

        Browsers are never asked for a client certificate (they would show a chooser).

        Raises:
            TLSSetupError: the certificate or key cannot be loaded (or made).
        """
        if not self.settings.tls:
            return None
        ctx, _ = server_context(self.host.config, client_certs=False)
        return ctx

    def connection(self) -> HttpConnection:
        """A new HTTP connection (the listener's protocol factory)."""
        web = self.settings
        return HttpConnection(
            self,
            self.http_connections,
            max_connections=web.max_connections,
            max_body=web.max_body,
            timeout=web.request_timeout,
        )

    def start(self) -> None:
        """Start the lag and keepalive task (rule 4)."""
        self._task = asyncio.get_running_loop().create_task(self._monitor())
        if self.uploads is not None:
            self.uploads.start()

    def stop(self) -> None:
        """Stop the task and close every HTTP connection (WebSockets close with the core)."""
        if self._task is not None:
            self._task.cancel()
        for conn in list(self.http_connections):
            if conn.transport is not None:
                conn.transport.close()
        if self.uploads is not None:
            self.uploads.stop()

    async def _monitor(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.host.stats
        interval = self.settings.ws_ping_interval
        next_ping = loop.time() + interval
        while True:
            start = loop.time()
            await asyncio.sleep(LAG_STEP)
            now = loop.time()
            lag = max(0.0, now - start - LAG_STEP)
            stats.loop_lag = lag
            stats.loop_lag_max = max(stats.loop_lag_max, lag)
            if interval and now >= next_ping:
                next_ping = now + interval
                for conn in list(self.host.connections):
                    if isinstance(conn, WebSocketConnection):
                        with contextlib.suppress(Exception):
                            conn.keepalive()

    # --- routes --------------------------------------------------------------------------------

    def common_headers(self, request: HttpRequest | None) -> list[tuple[str, str]]:
        """Security headers for every response (rule 3)."""
        host = request.headers.get("host") if request is not None else None
        connect = "'self'"
        if host and HOST_FIELD.match(host):
            connect += f" ws://{host} wss://{host}"
        csp = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
            f"font-src 'self'; connect-src {connect}; manifest-src 'self'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        if request is not None and request.path.startswith("/upload"):
            csp = UPLOAD_CSP
        return [
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("X-Frame-Options", "DENY"),
        ]

    def begin(self, request: HttpRequest) -> Begin:
        """Uploads stream their body (``http.Router.begin``); everything else is read whole."""
        if request.path == "/upload" and self.uploads is not None:
            return self.uploads.begin(request)
        return None

    def route(self, request: HttpRequest) -> Response | Upgrade | Awaitable[Response]:
        """The answer to ``request``."""
        path = request.path
        if path == "/ws":
            return self._websocket(request)
        if path.startswith("/uploads/") or path == "/upload":
            if self.uploads is None:
                return Response.text(404, "Uploads are off on this server")
            return self.uploads.serve(request)
        if path.startswith("/hooks/"):
            return self._hook(request)
        if path in ("/metrics", "/healthz", "/readyz"):
            if request.method not in ("GET", "HEAD"):
                return Response.text(405, "Method not allowed", headers=(("Allow", "GET, HEAD"),))
            if path == "/metrics":
                return self._metrics(request)
            if path == "/healthz":
                return health(self.host.core.version_string(), time.monotonic() - self.started)
            host = self.host
            return readiness(host.listening, host.history_path(), host.commit_error)
        return self.static.serve(request.method, path, request.headers.get("if-none-match"))

    def _websocket(self, request: HttpRequest) -> Response | Upgrade:
        origin = request.headers.get("origin")
        if not origin_allowed(origin, request.headers.get("host"), self.origins):
            log.info("WebSocket refused from %s: origin %r not allowed", request.peer, origin)
            return Response.text(403, f"Origin {origin} is not allowed", close=True)
        target = request.path + (f"?{request.query}" if request.query else "")
        response, subprotocol = handshake(target, request.raw_headers)
        if response.status_code != 101:
            keep = ("Upgrade", "Allow", "Sec-WebSocket-Version")
            headers = tuple((k, v) for k, v in response.headers.raw_items() if k in keep)
            body = bytes(response.body)
            return Response(response.status_code, body, headers=headers, close=True)
        ip = client_ip(request.peer, request.headers.get("x-forwarded-for"), self.proxies)
        conn = WebSocketConnection(
            self.host,
            subprotocol=subprotocol,
            ip=ip if ip != request.peer else None,
            max_message=self.settings.ws_max_message,
            base_url=request_base(request),
        )
        return Upgrade(response.serialize(), conn)

    def _metrics(self, request: HttpRequest) -> Response:
        token = self.settings.metrics_token
        if token:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode("utf-8", "replace"), token.encode("utf-8")
            )
            if not ok:
                return Response.text(
                    401,
                    "/metrics needs the bearer token (Authorization: Bearer <http.metrics_token>)",
                    headers=(("WWW-Authenticate", 'Bearer realm="relaychat metrics"'),),
                )
        return Response(200, self.metrics.render(), CONTENT_TYPE_LATEST)

    def _hook(self, request: HttpRequest) -> Response:
        token = request.path[len("/hooks/") :]
        if not token or "/" in token:
            return Response.text(404, "Not found")
        if request.method != "POST":
            return Response.text(405, "Webhooks take POST", headers=(("Allow", "POST"),))
        outcome = self.hooks.post(
            token, request.headers.get("content-type", ""), request.body, time.monotonic()
        )
        if outcome.status != 200:
            headers: tuple[tuple[str, str], ...] = ()
            if outcome.retry_after is not None:
                headers = (("Retry-After", str(outcome.retry_after)),)
            return _json(outcome.status, {"ok": False, "error": outcome.reason}, headers)
        self.host.request_flush()
        return _json(
            200, {"ok": True, "posted": len(outcome.msgids), "msgids": list(outcome.msgids)}
        )
