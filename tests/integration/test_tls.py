"""TLS listeners over real sockets, with certificates made by trustme in the test.

The handshake (TLS 1.2 minimum: a TLS 1.1 client is refused), client certificates from a CA
the server does not know (fingerprint in WHOIS 276, SASL EXTERNAL), SASL PLAIN and
SCRAM-SHA-256 over TLS with every outcome (900/903/904/905/906/907/908), clear errors for a
bad certificate, and the self-signed development certificate.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from relaychat.server.listeners import Server
from relaychat.server.tls import TLSSetupError
from tests.harness import TIMEOUT, LineClient, ServerProcess, free_config
from tests.integration.tls_support import (
    client_context,
    der_fingerprint,
    free_port,
    tls_client,
    tls_config,
)
from tests.unit.accounts_support import scram_client_final

PASSWORD = "tls-secret-123"
MakeServer = Callable[..., Any]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def client_ca() -> trustme.CA:
    """Another CA, unknown to the server: its certificates are as good as self-signed."""
    return trustme.CA()


@pytest.fixture
async def tls_server(make_server: MakeServer, ca: trustme.CA, tmp_path: Path) -> Server:
    server: Server = await make_server(tls_config(ca, tmp_path))
    return server


def tls_port(server: Server) -> int:
    ((_, port),) = server.addresses_of("tls")
    return port


async def register(c: LineClient, nick: str) -> None:
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick}")
    await c.expect(r" 001 ")
    await c.expect(r" (376|422) ")


async def sasl_start(c: LineClient, nick: str) -> str:
    """CAP LS 302, CAP REQ sasl, NICK, USER; return the sasl capability's value."""
    value = (await c.cap_ls())["sasl"]
    await c.send(f"NICK {nick}")
    await c.send(f"USER {nick} 0 * :{nick}")
    await c.send("CAP REQ sasl")
    await c.expect(r" ACK :?sasl")
    return value


def plain(account: str, password: str) -> str:
    return base64.b64encode(f"\0{account}\0{password}".encode()).decode()


async def register_account(port: int, ctx: ssl.SSLContext, nick: str) -> None:
    """Connect over TLS, register ``nick`` with REGISTER, disconnect."""
    c = await tls_client(port, ctx)
    try:
        await register(c, nick)
        await c.send(f"REGISTER * * {PASSWORD}")
        await c.expect(rf"REGISTER SUCCESS {nick} ")
        await c.expect(rf" 900 {nick} ")
    finally:
        await c.close()


class TestHandshake:
    async def test_register_over_tls(self, tls_server: Server, ca: trustme.CA) -> None:
        c = await tls_client(tls_port(tls_server), client_context(ca))
        try:
            version = c.writer.get_extra_info("ssl_object").version()
            assert version in ("TLSv1.2", "TLSv1.3")
            await register(c, "alice")
            await c.send("WHOIS alice")
            await c.expect(r" 318 ")
            assert not any(" 276 " in line for line in c.seen)  # no client certificate
        finally:
            await c.close()

    async def test_plain_port_still_serves(self, tls_server: Server) -> None:
        host, port = tls_server.addresses[0]
        c = await LineClient.open(host, port)
        try:
            await register(c, "bob")
        finally:
            await c.close()

    async def test_tls_1_2_is_the_minimum(self, tls_server: Server, ca: trustme.CA) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1_1
            old = client_context(ca)
            old.set_ciphers("DEFAULT:@SECLEVEL=0")
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        # Control: this client does speak TLS 1.1, to a server that allows it.
        permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(permissive)
        permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            permissive.minimum_version = ssl.TLSVersion.TLSv1
        control = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=permissive)
        try:
            port = control.sockets[0].getsockname()[1]
            _, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=old, server_hostname="127.0.0.1"),
                TIMEOUT,
            )
            assert w.get_extra_info("ssl_object").version() == "TLSv1.1"
            w.close()
        finally:
            control.close()
        # relaychat refuses it.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.wait_for(tls_client(tls_port(tls_server), old), TIMEOUT)
        # TLS 1.2 exactly is fine.
        v12 = client_context(ca)
        v12.maximum_version = ssl.TLSVersion.TLSv1_2
        c = await tls_client(tls_port(tls_server), v12)
        try:
            assert c.writer.get_extra_info("ssl_object").version() == "TLSv1.2"
            await register(c, "carol")
        finally:
            await c.close()


class TestClientCertificates:
    async def test_fingerprint_in_whois(
        self, tls_server: Server, ca: trustme.CA, client_ca: trustme.CA
    ) -> None:
        cert = client_ca.issue_cert("alice@example.org")
        fp = der_fingerprint(cert)
        port = tls_port(tls_server)
        alice = await tls_client(port, client_context(ca, cert))
        bob = await tls_client(port, client_context(ca))
        try:
            await register(alice, "alice")
            await register(bob, "bob")
            await alice.send("WHOIS alice")
            await alice.expect(rf" 276 alice alice :has client certificate fingerprint {fp}$")
            await bob.send("WHOIS alice")
            await bob.expect(r" 318 bob alice ")
            assert not any(" 276 " in line for line in bob.seen)  # not shown to others
        finally:
            await alice.close()
            await bob.close()

    async def test_sasl_external(
        self, tls_server: Server, ca: trustme.CA, client_ca: trustme.CA
    ) -> None:
        cert = client_ca.issue_cert("dave@example.org")
        port = tls_port(tls_server)
        with_cert = client_context(ca, cert)
        # REGISTER over a connection with a certificate adds it to the new account.
        await register_account(port, with_cert, "dave")
        c = await tls_client(port, with_cert)
        try:
            assert await sasl_start(c, "dave") == "PLAIN,SCRAM-SHA-256,EXTERNAL"
            await c.send("AUTHENTICATE EXTERNAL")
            await c.expect(r"^AUTHENTICATE \+$")
            await c.send("AUTHENTICATE +")
            await c.expect(r" 900 dave dave!~dave@127\.0\.0\.1 dave :You are now logged in as dave")
            await c.expect(r" 903 dave :SASL authentication successful")
            await c.send("CAP END")
            await c.expect(r" 001 dave ")
            await c.send("WHOIS dave")
            await c.expect(r" 330 dave dave dave :is logged in as")
        finally:
            await c.close()
        # Without a certificate, EXTERNAL is not among this connection's mechanisms.
        bare = await tls_client(port, client_context(ca))
        try:
            await sasl_start(bare, "eve")
            await bare.send("AUTHENTICATE EXTERNAL")
            await bare.expect(r" 908 eve PLAIN,SCRAM-SHA-256 :are available SASL mechanisms")
            await bare.expect(r" 904 eve :SASL authentication failed: EXTERNAL needs a TLS")
        finally:
            await bare.close()

    async def test_unregistered_certificate(
        self, tls_server: Server, ca: trustme.CA, client_ca: trustme.CA
    ) -> None:
        cert = client_ca.issue_cert("mallory@example.org")
        c = await tls_client(tls_port(tls_server), client_context(ca, cert))
        try:
            await sasl_start(c, "mallory")
            await c.send("AUTHENTICATE EXTERNAL")
            await c.send("AUTHENTICATE +")
            await c.expect(
                rf" 904 mallory :SASL authentication failed: your certificate "
                rf"{der_fingerprint(cert)} is not registered to any account"
            )
        finally:
            await c.close()


class TestSaslOverTls:
    async def test_plain_success_and_failures(self, tls_server: Server, ca: trustme.CA) -> None:
        port = tls_port(tls_server)
        ctx = client_context(ca)
        await register_account(port, ctx, "frank")
        c = await tls_client(port, ctx)
        try:
            await sasl_start(c, "frank")
            await c.send("AUTHENTICATE PLAIN")
            await c.expect(r"^AUTHENTICATE \+$")
            await c.send(f"AUTHENTICATE {plain('frank', 'wrong-password')}")
            await c.expect(
                r" 904 frank :SASL authentication failed: invalid account name or password$"
            )
            await c.send("AUTHENTICATE PLAIN")
            await c.send("AUTHENTICATE " + "A" * 401)
            await c.expect(r" 905 frank :SASL message too long: .*400 bytes")
            await c.send("AUTHENTICATE PLAIN")
            await c.send("AUTHENTICATE *")
            await c.expect(r" 906 frank :SASL authentication aborted$")
            await c.send("AUTHENTICATE PLAIN")
            await c.send(f"AUTHENTICATE {plain('frank', PASSWORD)}")
            await c.expect(r" 900 frank \S+ frank :")
            await c.expect(r" 903 frank ")
            await c.send("AUTHENTICATE PLAIN")
            await c.expect(r" 907 frank :You have already authenticated using SASL$")
            await c.send("CAP END")
            await c.expect(r" 001 frank ")
        finally:
            await c.close()

    async def test_scram_sha_256(self, tls_server: Server, ca: trustme.CA) -> None:
        port = tls_port(tls_server)
        ctx = client_context(ca)
        await register_account(port, ctx, "grace")
        c = await tls_client(port, ctx)
        try:
            await sasl_start(c, "grace")
            await c.send("AUTHENTICATE SCRAM-SHA-256")
            await c.expect(r"^AUTHENTICATE \+$")
            bare = "n=grace,r=rOprNGfwEbeRWgbNEkqO"
            await c.send("AUTHENTICATE " + base64.b64encode(f"n,,{bare}".encode()).decode())
            first = base64.b64decode((await c.expect(r"^AUTHENTICATE (\S+)$")).group(1)).decode()
            final, expected = scram_client_final(PASSWORD, bare, first)
            await c.send("AUTHENTICATE " + base64.b64encode(final.encode()).decode())
            verifier = (await c.expect(r"^AUTHENTICATE (\S+)$")).group(1)
            assert base64.b64decode(verifier) == b"v=" + base64.b64encode(expected)
            await c.send("AUTHENTICATE +")
            await c.expect(r" 900 grace \S+ grace :")
            await c.expect(r" 903 grace ")
        finally:
            await c.close()


class TestSetupErrors:
    async def test_missing_certificate(self, tmp_path: Path) -> None:
        server = Server(
            free_config(
                tls_port=free_port(),
                tls_cert=str(tmp_path / "nope.pem"),
                tls_key=str(tmp_path / "nope.key"),
                data_dir=str(tmp_path),
            )
        )
        with pytest.raises(TLSSetupError) as err:
            await server.start()
        assert str(err.value) == (
            f"TLS setup failed: the certificate file {tmp_path / 'nope.pem'} does not exist"
        )
        assert server.addresses == []  # nothing was left listening

    async def test_key_of_another_certificate(self, ca: trustme.CA, tmp_path: Path) -> None:
        config = tls_config(ca, tmp_path)
        other = ca.issue_cert("127.0.0.1")
        Path(config.tls_key).write_bytes(other.private_key_pem.bytes())
        with pytest.raises(TLSSetupError, match="do they belong together"):
            await Server(config).start()

    async def test_cli_prints_one_line_and_exits_2(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing.pem"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relaychat",
            "serve",
            "--port",
            "0",
            "--plain-port",
            "0",
            "--http-port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--tls-port",
            str(free_port()),
            "--tls-cert",
            str(missing),
            "--tls-key",
            str(missing),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 2)
        assert proc.returncode == 2
        assert err.decode().splitlines() == [
            f"relaychat: TLS setup failed: the certificate file {missing} does not exist"
        ]


async def test_self_signed_certificate_is_made_once(tmp_path: Path) -> None:
    """--tls-self-signed makes a development certificate under data_dir and reuses it."""
    port = free_port()
    args = ("--data-dir", str(tmp_path), "--tls-port", str(port), "--tls-self-signed")
    anyone = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anyone.check_hostname = False
    anyone.verify_mode = ssl.CERT_NONE
    seen: list[bytes] = []
    for _ in range(2):
        server = await ServerProcess.start(*args)
        try:
            c = await tls_client(port, anyone)
            der = c.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            seen.append(der)
            await register(c, "dev")
            await c.close()
        finally:
            assert await server.stop() == 0
    assert seen[0] == seen[1]
    key = tmp_path / "tls" / "selfsigned-key.pem"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    # The certificate verifies for 127.0.0.1 once trusted.
    strict = ssl.create_default_context(cafile=str(tmp_path / "tls" / "selfsigned-cert.pem"))
    c = None
    server = await ServerProcess.start(*args)
    try:
        c = await tls_client(port, strict)
        await register(c, "dev")
    finally:
        if c is not None:
            await c.close()
        await server.stop()
