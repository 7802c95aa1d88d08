"""TLS for the listeners: the server's SSL context, a development certificate, client certificates.

- The context speaks TLS 1.2 or later only, with the certificate chain and key the operator gave
  (``tls_cert``/``tls_key``), or with a self-signed development certificate made by the
  ``cryptography`` library under ``data_dir/tls/`` (``tls_self_signed``) and reused while valid.
- Clients may present a certificate (IRC clients use self-signed ones as a login key, SASL
  EXTERNAL). Python's ``ssl`` can ask for one only with ``CERT_OPTIONAL``, which then *verifies*
  it against trusted CAs and aborts the handshake when it fails, as it does for any self-signed
  certificate. OpenSSL lets a verify callback accept it anyway (what Go's
  ``tls.RequestClientCert`` does, as Ergo uses); the ``ssl`` module does not expose that, so
  :func:`accept_any_client_cert` installs one through ``ctypes`` on the context's own
  ``SSL_CTX``, after checking it found the right object. Where that check fails (another Python
  implementation or layout), client certificates are simply not requested and EXTERNAL is not
  offered: TLS itself is unaffected.
- A client certificate is only a key to look up: its SHA-256 fingerprint (:func:`peer_certfp`)
  becomes ``User.certfp``, shown in WHOIS (276) and matched by SASL EXTERNAL. It is never
  trusted for anything else, which is why accepting unverifiable ones is safe.

Every failure an operator can fix raises :class:`TLSSetupError`: one line, exit code 2.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import ipaddress
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from relaychat.config import Config
from relaychat.errors import RelaychatError

__all__ = [
    "TLSSetupError",
    "accept_any_client_cert",
    "fingerprint",
    "peer_certfp",
    "self_signed_certificate",
    "server_context",
]

log = logging.getLogger("relaychat.server")

#: The development certificate is made again when it has less than this left.
_RENEW_BEFORE = datetime.timedelta(days=7)
_VALIDITY = datetime.timedelta(days=365)


class TLSSetupError(RelaychatError):
    """TLS cannot be set up (a certificate or key missing or wrong).

    Attributes:
        reason: what went wrong, naming the files.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"TLS setup failed: {reason}")
        self.reason = reason


def fingerprint(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, as lower-case hex (``User.certfp``)."""
    return hashlib.sha256(der).hexdigest()


def peer_certfp(transport: Any) -> str | None:
    """The fingerprint of the client certificate on an asyncio (or uvloop) TLS transport.

    Returns:
        ``None`` on a plain connection, or when the client sent no certificate.
    """
    obj = transport.get_extra_info("ssl_object")
    if obj is None:
        return None
    der = obj.getpeercert(binary_form=True)
    return fingerprint(der) if der else None


def server_context(config: Config, *, client_certs: bool = True) -> tuple[ssl.SSLContext, bool]:
    """The SSL context for the TLS listeners.

    Args:
        client_certs: ask clients for a certificate (for SASL EXTERNAL); not for browsers.

    Returns:
        The context, and whether it asks clients for certificates (SASL EXTERNAL).

    Raises:
        TLSSetupError: the certificate or key cannot be loaded, or made.
    """
    if config.tls_cert and config.tls_key:
        cert, key = Path(config.tls_cert).expanduser(), Path(config.tls_key).expanduser()
    else:
        cert, key = self_signed_certificate(config)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for path, what in ((cert, "certificate"), (key, "key")):
        if not path.is_file():
            raise TLSSetupError(f"the {what} file {path} does not exist")
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TLSSetupError(
            f"cannot load the certificate {cert} with the key {key}: {exc.reason or exc}"
            " (are both PEM, and do they belong together?)"
        ) from None
    except OSError as exc:
        raise TLSSetupError(f"cannot read {cert} or {key}: {exc.strerror or exc}") from None
    return ctx, accept_any_client_cert(ctx) if client_certs else False


# --- client certificates: the verify callback -----------------------------------------------------

_VERIFY_PEER = 0x01  # SSL_VERIFY_PEER
_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept_any(preverify_ok: int, store: int | None) -> int:
    # Any certificate is accepted: it is only a key looked up by its fingerprint.
    return 1


_ACCEPT = _VerifyCallback(_accept_any)  # kept alive here: OpenSSL holds a pointer to it


def _libssl() -> Any | None:
    """The OpenSSL that Python's ``_ssl`` module uses (not just any libssl on the system)."""
    try:
        import _ssl

        path = getattr(_ssl, "__file__", None)
        lib = ctypes.CDLL(path) if path else ctypes.CDLL(None)
        lib.SSL_CTX_set_verify.argtypes = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback]
        lib.SSL_CTX_set_verify.restype = None
        lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def _ssl_ctx_pointer(ctx: ssl.SSLContext, lib: Any) -> int | None:
    """The ``SSL_CTX *`` inside ``ctx``: CPython keeps it right after the object header.

    The guess is checked through OpenSSL itself before use: the context's verify mode and
    options, as OpenSSL reports them, must be what Python reports.
    """
    if sys.implementation.name != "cpython":
        return None
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr:
        return None
    try:
        if lib.SSL_CTX_get_verify_mode(ptr) != _VERIFY_PEER:  # CERT_OPTIONAL, set just before
            return None
        if lib.SSL_CTX_get_options(ptr) != int(ctx.options):
            return None
    except (OSError, ValueError):
        return None
    return int(ptr)


def accept_any_client_cert(ctx: ssl.SSLContext) -> bool:
    """Make ``ctx`` ask clients for a certificate and accept whatever they send.

    Returns:
        Whether it worked; when not, ``ctx`` asks for no certificate (``CERT_NONE``).
    """
    lib = _libssl()
    if lib is not None:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ptr = _ssl_ctx_pointer(ctx, lib)
        if ptr is not None:
            lib.SSL_CTX_set_verify(ptr, _VERIFY_PEER, _ACCEPT)
            return True
    ctx.verify_mode = ssl.CERT_NONE
    log.warning("TLS client certificates cannot be requested here; SASL EXTERNAL is off")
    return False


# --- the development certificate -----------------------------------------------------------------


def self_signed_certificate(config: Config) -> tuple[Path, Path]:
    """A self-signed certificate for development, made once under ``data_dir/tls/`` and reused.

    It names ``server_name``, ``localhost``, ``127.0.0.1`` and ``::1``; it is made again when
    missing, unreadable or within a week of expiry. Clients must be told to trust it (or not to
    verify); never use it in production.

    Returns:
        The certificate and key files (PEM).

    Raises:
        TLSSetupError: ``cryptography`` is not installed, or the files cannot be written.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise TLSSetupError(
            "tls_self_signed needs the cryptography package (pip install cryptography)"
        ) from None
    folder = config.data_path() / "tls"
    cert_path, key_path = folder / "selfsigned-cert.pem", folder / "selfsigned-key.pem"
    now = datetime.datetime.now(datetime.UTC)
    if cert_path.is_file() and key_path.is_file():
        try:
            existing = x509.load_pem_x509_certificate(cert_path.read_bytes())
            if existing.not_valid_after_utc - now > _RENEW_BEFORE:
                return cert_path, key_path
        except (OSError, ValueError):
            pass  # unreadable: make a new one
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, config.server_name)])
    alt_names: list[x509.GeneralName] = [
        x509.DNSName(config.server_name),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(key_path, key_pem, 0o600)
        _write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise TLSSetupError(
            f"cannot write the development certificate under {folder}: {exc.strerror or exc}"
        ) from None
    log.warning(
        "made a self-signed development certificate %s (SHA-256 %s); not for production",
        cert_path,
        fingerprint(cert.public_bytes(serialization.Encoding.DER)),
    )
    return cert_path, key_path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
