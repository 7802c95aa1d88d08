"""Issue 14: a reload gives the HTTPS port (``http.tls``) the new certificate for new handshakes,
as it does the TLS port; a wss:// session already up carries on."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trustme

from relaychat.server.listeners import Server
from relaychat.server.reload import ConfigSource
from tests.integration.tls_support import client_context
from tests.integration.web_support import WsClient, tcp_client, web_port, web_server

MakeServer = Callable[..., Any]


def leaf(ca: trustme.CA, folder: Path, n: int) -> tuple[Path, Path, str]:
    """Certificate ``n`` for 127.0.0.1, as files, and its SHA-256 fingerprint."""
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = folder / f"cert{n}.pem", folder / f"key{n}.pem"
    cert_path.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return cert_path, key_path, hashlib.sha256(der).hexdigest()


async def served_fingerprint(port: int, ctx: ssl.SSLContext) -> str:
    """The fingerprint of the certificate a new handshake on ``port`` gets."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return hashlib.sha256(der).hexdigest()


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
