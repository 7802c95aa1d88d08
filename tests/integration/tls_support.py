"""Helpers for the TLS and account tests over real sockets (not itself a test module).

Certificates are made by trustme in the test: a CA the clients trust, a server certificate for
127.0.0.1, and client certificates from an *unrelated* CA, as IRC clients' self-signed
certificates are: the server cannot verify them and must accept them anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from pathlib import Path
from typing import Any

import trustme

from relaychat.config import Config
from tests.harness import LineClient, free_config

__all__ = [
    "client_context",
    "der_fingerprint",
    "free_port",
    "leaf",
    "served_fingerprint",
    "tls_client",
    "tls_config",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (``tls_port = 0`` means "no TLS listener")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_server_cert(ca: trustme.CA, folder: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost, as PEM files (chain, key)."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = folder / "server-cert.pem", folder / "server-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return cert, key


def tls_config(ca: trustme.CA, folder: Path, **kwargs: Any) -> Config:
    """A test config with a TLS listener on a free port and a data directory in ``folder``."""
    cert, key = write_server_cert(ca, folder)
    return free_config(
        tls_port=free_port(),
        tls_cert=str(cert),
        tls_key=str(key),
        data_dir=str(folder / "data"),
        **kwargs,
    )


def client_context(ca: trustme.CA, cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    """A client context that trusts ``ca`` and presents ``cert`` when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    if cert is not None:
        cert.configure_cert(ctx)
    return ctx


def der_fingerprint(cert: trustme.LeafCert) -> str:
    """The SHA-256 of a trustme certificate's DER form: what the server shows as certfp."""
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    return hashlib.sha256(der).hexdigest()


def leaf(ca: trustme.CA, folder: Path, n: int) -> tuple[Path, Path, str]:
    """Certificate ``n`` for 127.0.0.1, as files, and its SHA-256 fingerprint (for reloads)."""
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = folder / f"cert{n}.pem", folder / f"key{n}.pem"
    cert_path.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_path.write_bytes(cert.private_key_pem.bytes())
    return cert_path, key_path, der_fingerprint(cert)


async def served_fingerprint(port: int, ctx: ssl.SSLContext) -> str:
    """The fingerprint of the certificate a new handshake on ``port`` gets."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return hashlib.sha256(der).hexdigest()


async def tls_client(port: int, ctx: ssl.SSLContext) -> LineClient:
    """A LineClient over TLS to 127.0.0.1:``port``."""
    return await LineClient.open("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
