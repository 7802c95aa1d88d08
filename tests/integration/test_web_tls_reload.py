"""Issue 14: a reload gives the HTTPS port (``http.tls``) the new certificate for new handshakes,
as it does the TLS port; a wss:// session already up carries on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme

from relaychat.server.listeners import Server
from relaychat.server.reload import ConfigSource
from tests.integration.tls_support import client_context, leaf, served_fingerprint
from tests.integration.web_support import WsClient, tcp_client, web_port, web_server

MakeServer = Callable[..., Any]


async def test_a_reload_gives_https_the_new_certificate(
    make_server: MakeServer, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert1, key1, fp1 = leaf(ca, tmp_path, 1)
    cert2, key2, fp2 = leaf(ca, tmp_path, 2)
    srv: Server = await web_server(
        make_server, http_settings={"tls": True}, tls_cert=str(cert1), tls_key=str(key1)
    )
    ctx = client_context(ca)
    port = web_port(srv)
    assert await served_fingerprint(port, ctx) == fp1
    ws = await WsClient.open(port, scheme="wss", ssl=ctx)
    await ws.register("secure")

    assert srv.ops.reloader is not None
    srv.ops.reloader.source = ConfigSource(
        fixed=replace(srv.config, tls_cert=str(cert2), tls_key=str(key2))
    )
    assert srv.ops.reloader.reload("test")[1] is None
    assert await served_fingerprint(port, ctx) == fp2
    # The session made with the old certificate goes on.
    tcp = await tcp_client(srv, "plainbob")
    await tcp.send("PRIVMSG secure :still there?")
    await ws.expect(r"PRIVMSG secure :still there\?")
    await ws.close()
    await tcp.close()
