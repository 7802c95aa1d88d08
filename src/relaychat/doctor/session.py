"""The steps of ``relaychat doctor`` that run over the open connection: TLS, IRC, PING.

The same rules as :mod:`relaychat.doctor.steps` hold: a network failure is a failed
:class:`StepResult` with its likely cause, never an exception; every read has a deadline.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import ssl
import statistics
import time
from typing import Any

from relaychat.doctor.steps import (
    TIMEOUT_CAUSES,
    Explained,
    StepResult,
    error_text,
    failed,
    stats_ms,
)
from relaychat.errors import ProtocolError
from relaychat.protocol.lines import LineBuffer, Overlong
from relaychat.protocol.message import Message, parse_bytes

__all__ = ["LineReader", "handshake_tls", "ping_irc", "register_irc"]


# --- TLS ----------------------------------------------------------------------------------------


#: RFC 4514 short names of the attributes ssl spells out.
_SHORT = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
}


def _name(parts: Any) -> str:
    """An X.509 name from :meth:`ssl.SSLSocket.getpeercert`, as ``CN=x, O=y``."""
    return ", ".join(f"{_SHORT.get(k, k)}={v}" for rdn in parts or () for k, v in rdn)


def _cert_details(tls: ssl.SSLSocket, verified: bool) -> dict[str, Any]:
    der = tls.getpeercert(binary_form=True) or b""
    details: dict[str, Any] = {
        "version": tls.version(),
        "cipher": (tls.cipher() or ("?",))[0],
        "verified": verified,
        "sha256": hashlib.sha256(der).hexdigest(),
    }
    cert = tls.getpeercert() if verified else None
    if cert:
        details["subject"] = _name(cert.get("subject"))
        details["issuer"] = _name(cert.get("issuer"))
        details["names"] = [str(pair[1]) for pair in cert.get("subjectAltName", ())]
        not_after = str(cert.get("notAfter", ""))
        if not_after:
            expires = ssl.cert_time_to_seconds(not_after)
            details["not_after"] = not_after
            details["days_left"] = int((expires - time.time()) // 86400)
    elif der:
        details.update(_describe_der(der))
    return details


def _describe_der(der: bytes) -> dict[str, Any]:
    """Subject, issuer, names and expiry of an unverified certificate, when ``cryptography``
    is installed (the standard library only decodes verified ones)."""
    try:
        from cryptography import x509
    except ImportError:  # pragma: no cover - optional
        return {}
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return {}
    details: dict[str, Any] = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_left": int((cert.not_valid_after_utc.timestamp() - time.time()) // 86400),
        "self_signed": cert.subject == cert.issuer,
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        details["names"] = [str(n.value) for n in san.value]
    except x509.ExtensionNotFound:
        pass
    return details


def handshake_tls(
    sock: socket.socket,
    server_name: str,
    timeout: float,
    *,
    verify: bool = True,
    cafile: str | None = None,
) -> tuple[StepResult, ssl.SSLSocket | None]:
    """Run the TLS handshake over the connected ``sock`` and describe the certificate.

    Args:
        sock: the connected TCP socket (closed on failure).
        server_name: sent as SNI and checked against the certificate when verifying.
        timeout: seconds for the whole handshake.
        verify: check the chain and the name (``--insecure`` turns it off).
        cafile: extra trust anchors (PEM), e.g. a development server's certificate.

    Returns:
        The result, and the TLS socket on success.
    """
    started = time.perf_counter()
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        bad = Explained(
            f"cannot use --cafile {cafile}: {error_text(exc)}",
            "the CA file is missing, unreadable, or not PEM certificates",
        )
        return failed("tls", started, bad, server_name=server_name), None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    sock.settimeout(timeout)
    try:
        tls = ctx.wrap_socket(sock, server_hostname=server_name)
    except (OSError, ssl.SSLError) as exc:
        sock.close()
        return failed("tls", started, exc, server_name=server_name, verified=verify), None
    duration = time.perf_counter() - started
    details = _cert_details(tls, verify)
    return StepResult(step="tls", status="ok", duration=duration, details=details), tls


# --- IRC ----------------------------------------------------------------------------------------


class LineReader:
    """IRC lines from a blocking socket, each read bounded by a deadline."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = LineBuffer(8191 + 512)
        self.lines: list[bytes] = []
        self.first_bytes = b""

    def read(self, deadline: float) -> Message | None:
        """The next parseable line, or ``None`` at end of stream.

        Raises:
            TimeoutError: ``deadline`` (a :func:`time.perf_counter` time) passed.
            OSError: the connection failed.
        """
        while True:
            while self.lines:
                raw = self.lines.pop(0)
                try:
                    return parse_bytes(raw)
                except ProtocolError:
                    continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("timed out")
            self.sock.settimeout(remaining)
            data = self.sock.recv(4096)
            if not data:
                return None
            if len(self.first_bytes) < 64:
                self.first_bytes += data[: 64 - len(self.first_bytes)]
            self.lines.extend(x for x in self.buffer.feed(data) if not isinstance(x, Overlong))

    def send(self, line: str) -> None:
        """Write one line (CR-LF added)."""
        self.sock.sendall(line.encode("utf-8") + b"\r\n")


def _silent_cause(reader: LineReader, tls: bool) -> str:
    head = reader.first_bytes
    if not head:
        return TIMEOUT_CAUSES["irc"]
    if not tls and head[:1] in (b"\x15", b"\x16"):
        return "the port answered with TLS: it is a TLS port, use --tls"
    return f"the peer answered but not with IRC (it sent {head[:40]!r}): a different service?"


def _closed_cause(reader: LineReader, tls: bool) -> str:
    head = reader.first_bytes
    if not tls and head[:1] in (b"\x15", b"\x16"):
        return "the port answered with TLS: it is a TLS port, use --tls"
    if not head:
        return (
            "the port accepted the connection and closed it without a word: not an IRC server, "
            "a TLS port (try --tls), or a server refusing this address"
        )
    return "the server refused us (see its last message), or it does not speak IRC"


#: Numerics that end registration with a failure: numeric -> (error, likely cause).
REGISTRATION_REFUSALS = {
    "464": ("password incorrect (464)", "the server needs a password: give it with --password"),
    "465": ("banned from this server (465)", "this address or nick is banned on the server"),
}


def register_irc(
    reader: LineReader, timeout: float, *, password: str | None = None, tls: bool = False
) -> StepResult:
    """Register as a throwaway nick: time to 001, then read the welcome until end of MOTD.

    Returns:
        ``ok`` with server, network, nick and version, or the failure with its cause.
    """
    started = time.perf_counter()
    deadline = started + timeout
    nick = f"doc{secrets.randbelow(1_000_000):06d}"
    details: dict[str, Any] = {"nick": nick}
    try:
        if password:
            reader.send(f"PASS :{password}")
        reader.send(f"NICK {nick}")
        reader.send("USER doctor 0 * :relaychat doctor")
        welcomed: float | None = None
        tries = 0
        while True:
            msg = reader.read(deadline)
            if msg is None:
                if welcomed is not None:
                    break
                raise Explained(
                    "the server closed the connection during registration",
                    _closed_cause(reader, tls),
                )
            cmd = msg.command
            if cmd == "PING":
                reader.send(f"PONG :{msg.param(0)}")
            elif cmd in ("432", "433", "436") and welcomed is None and tries < 3:
                tries += 1
                nick = f"doc{secrets.randbelow(1_000_000):06d}"
                details["nick"] = nick
                reader.send(f"NICK {nick}")
            elif cmd in REGISTRATION_REFUSALS and welcomed is None:
                raise Explained(*REGISTRATION_REFUSALS[cmd])
            elif cmd == "ERROR":
                raise Explained(
                    f"the server closed the link: {msg.param(0)}",
                    "the server refused this connection (see its message: a limit, a ban, "
                    "or a missing password)",
                )
            elif cmd == "001":
                welcomed = time.perf_counter()
                details["server"] = msg.source or ""
                details["nick"] = msg.param(0) or nick
                deadline = min(deadline, welcomed + max(1.0, timeout / 2))
            elif cmd == "004" and len(msg.params) > 2:
                details["version"] = msg.params[2]
            elif cmd == "005":
                for token in msg.params[1:-1]:
                    if token.startswith("NETWORK="):
                        details["network"] = token[len("NETWORK=") :]
            elif cmd in ("376", "422") and welcomed is not None:
                break
    except TimeoutError:
        if welcomed is None:
            silent = Explained(f"no welcome (001) within {timeout:g} s", _silent_cause(reader, tls))
            return failed("irc", started, silent, **details)
        details["end_of_motd"] = False
    except (OSError, Explained) as exc:
        return failed("irc", started, exc, **details)
    assert welcomed is not None
    return StepResult(step="irc", status="ok", duration=welcomed - started, details=details)


def ping_irc(reader: LineReader, count: int, timeout: float) -> StepResult:
    """Send ``count`` PINGs one after another and time each PONG."""
    rtts: list[float] = []
    started = time.perf_counter()
    try:
        for _ in range(count):
            token = f"doctor-{secrets.token_hex(4)}"
            sent = time.perf_counter()
            reader.send(f"PING :{token}")
            deadline = sent + timeout
            while True:
                msg = reader.read(deadline)
                if msg is None:
                    raise Explained(
                        "the server closed the connection",
                        "the server dropped us after registration (see its log)",
                    )
                if msg.command == "PING":
                    reader.send(f"PONG :{msg.param(0)}")
                elif msg.command == "PONG" and msg.params and msg.params[-1] == token:
                    rtts.append(time.perf_counter() - sent)
                    break
    except (OSError, Explained) as exc:
        return failed("ping", started, exc, answered=len(rtts), sent=count)
    details: dict[str, Any] = {"count": count, **stats_ms(rtts)}
    return StepResult(step="ping", status="ok", duration=statistics.fmean(rtts), details=details)
