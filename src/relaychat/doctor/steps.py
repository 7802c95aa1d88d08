"""The steps of ``relaychat doctor``: each one small function returning a :class:`StepResult`.

Rules:
- A step never raises for a network failure: it returns a failed result naming the error and
  its likely cause (looked up in the tables below by :func:`likely_cause`).
- Each step measures its own duration with :func:`time.perf_counter` and is bounded by a
  timeout; the sockets are plain blocking ``socket`` objects with timeouts set.
- A step that cannot run because an earlier one failed is reported as skipped, saying which.
"""

from __future__ import annotations

import errno
import queue
import re
import socket
import ssl
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from relaychat.doctor.icmp import IcmpNotPermitted, ping

__all__ = [
    "CAUSES",
    "TIMEOUT_CAUSES",
    "TITLES",
    "Explained",
    "Status",
    "StepResult",
    "check_icmp",
    "connect_tcp",
    "error_text",
    "failed",
    "likely_cause",
    "resolve",
    "skipped",
    "stats_ms",
]

Status = Literal["ok", "failed", "skipped"]

#: Step keys and their titles, in the order they run.
TITLES = {
    "dns": "DNS resolution",
    "icmp": "ICMP echo",
    "tcp": "TCP connect",
    "tls": "TLS handshake",
    "irc": "IRC registration",
    "ping": "PING round trip",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """The outcome of one step.

    Attributes:
        step: its key (``dns``, ``icmp``, ``tcp``, ``tls``, ``irc``, ``ping``).
        status: ``ok``, ``failed`` or ``skipped``.
        duration: seconds it took (``None`` when skipped).
        details: what it found, JSON-ready.
        error: what went wrong (failed), or why it did not run (skipped).
        likely_cause: the probable reason for a failure, and what to try.
    """

    step: str
    status: Status
    duration: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    likely_cause: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the step ran and succeeded."""
        return self.status == "ok"

    @property
    def title(self) -> str:
        """The step's name for people, e.g. "TCP connect"."""
        return TITLES.get(self.step, self.step)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field, plus ``ok`` and ``title``."""
        return {
            "step": self.step,
            "title": self.title,
            "status": self.status,
            "ok": self.ok,
            "duration_ms": None if self.duration is None else round(self.duration * 1000, 3),
            "details": self.details,
            "error": self.error,
            "likely_cause": self.likely_cause,
        }


def skipped(step: str, why: str) -> StepResult:
    """A step that did not run, and why."""
    return StepResult(step=step, status="skipped", error=why)


def failed(step: str, started: float, exc: BaseException, **details: Any) -> StepResult:
    """A failed result for ``step``, begun at ``started``, with ``exc`` and its likely cause."""
    return StepResult(
        step=step,
        status="failed",
        duration=time.perf_counter() - started,
        details=details,
        error=error_text(exc),
        likely_cause=likely_cause(step, exc),
    )


# --- likely causes ------------------------------------------------------------------------------

_EAI = {name: getattr(socket, name) for name in dir(socket) if name.startswith("EAI_")}

#: (step, errno) -> the likely cause. ``None`` as the step matches any step.
CAUSES: dict[tuple[str | None, int], str] = {
    ("dns", _EAI["EAI_NONAME"]): "the name does not exist: check its spelling, the DNS zone "
    "or /etc/hosts",
    ("dns", _EAI["EAI_AGAIN"]): "the DNS server did not answer: this machine may be offline, "
    "or its resolver (/etc/resolv.conf) is wrong",
    ("dns", _EAI["EAI_FAIL"]): "the DNS server failed to answer (a broken zone or server)",
    ("dns", _EAI.get("EAI_NODATA", -5)): "the name exists but has no address records",
    ("dns", _EAI.get("EAI_ADDRFAMILY", -9)): "the name has no address of a usable family",
    ("dns", _EAI["EAI_SERVICE"]): "the port is not valid",
    (None, errno.ECONNREFUSED): "nothing is listening on that port: the server is not running, "
    "listens on another port or address, or a firewall rejects the connection",
    (None, errno.ETIMEDOUT): "no answer in time: a firewall dropping packets, a wrong address, "
    "or the host is down",
    (None, errno.EHOSTUNREACH): "no route to the host: it is down, or the address is wrong",
    (None, errno.ENETUNREACH): "this machine has no route to that network (no default route, "
    "or the network is down)",
    (None, errno.ECONNRESET): "the server reset the connection: it is overloaded, refuses this "
    "address, or a middlebox cut it",
    (None, errno.EPIPE): "the server closed the connection while we were writing",
    (None, errno.EADDRNOTAVAIL): "the address is not valid here (e.g. a link-local address "
    "without its interface)",
    (None, errno.EACCES): "a local firewall or security policy forbids this connection",
    (None, errno.EPERM): "a local firewall or security policy forbids this connection",
}

#: Timeouts, by step.
TIMEOUT_CAUSES: dict[str, str] = {
    "dns": "the DNS server did not answer in time: offline, or the resolver is misconfigured",
    "icmp": "no echo reply: the host or a firewall on the way drops ICMP (common); "
    "TCP may still work",
    "tcp": "no answer to the connection attempt: a firewall dropping packets, a wrong address, "
    "or the host is down",
    "tls": "the TLS handshake stalled: the port probably speaks plain IRC, not TLS (drop --tls)",
    "irc": "the port accepted the connection but never completed IRC registration: it is not "
    "an IRC server, it is a TLS port (try --tls), or the server is overloaded",
    "ping": "the server did not answer PING in time: it is overloaded or stuck",
}

#: Words in an OpenSSL verification message -> the likely cause.
TLS_VERIFY_CAUSES: tuple[tuple[str, str], ...] = (
    (
        "self-signed",
        "the server uses a self-signed certificate: trust it with --cafile FILE, or "
        "inspect it with --insecure",
    ),
    ("expired", "the certificate has expired: the server must renew it (or the clock is wrong)"),
    ("not yet valid", "the certificate is not valid yet: check this machine's clock"),
    (
        "hostname mismatch",
        "the certificate is for another name: connect with the name it was issued for",
    ),
    (
        "IP address mismatch",
        "the certificate does not cover this IP address: connect by the name it was issued for",
    ),
    (
        "local issuer",
        "the certificate's issuer is not trusted here: a private CA (--cafile FILE) "
        "or a missing intermediate certificate on the server",
    ),
)


def likely_cause(step: str, exc: BaseException) -> str:
    """The probable reason ``exc`` happened during ``step``, and what to try.

    Args:
        step: the step key (``dns``, ``icmp``, ``tcp``, ``tls``, ``irc``, ``ping``).
        exc: what was raised.

    Returns:
        One sentence; a generic one when nothing more specific is known.
    """
    if isinstance(exc, IcmpNotPermitted):
        return f"this process may not send ICMP: {exc.hint}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = str(exc.verify_message or exc)
        for words, cause in TLS_VERIFY_CAUSES:
            if words.lower() in message.lower():
                return cause
        return f"the certificate was not accepted ({message})"
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or exc)
        if reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"):
            return "the port does not speak TLS: it is probably a plain IRC port (drop --tls)"
        return f"the TLS handshake failed ({reason}): the server's TLS settings do not match ours"
    if isinstance(exc, TimeoutError):
        return TIMEOUT_CAUSES.get(step, "no answer in time")
    if isinstance(exc, UnicodeError):
        return "that is not a valid host name (a label is empty or longer than 63 characters)"
    if isinstance(exc, Explained):
        return exc.cause
    code = exc.errno if isinstance(exc, OSError) else None
    if code is not None:
        for key in ((step, code), (None, code)):
            if key in CAUSES:
                return CAUSES[key]
    return "unexpected: see the error for details"


def error_text(exc: BaseException) -> str:
    """``exc`` in words, without its class name."""
    if isinstance(exc, TimeoutError):
        # ssl's timeouts read "_ssl.c:989: The handshake operation timed out".
        return re.sub(r"^_ssl\.c:\d+: ", "", str(exc)) or "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class Explained(Exception):
    """A failure whose likely cause is known where it happens (raised and caught in steps)."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error)
        self.cause = cause


# --- DNS ----------------------------------------------------------------------------------------

Addr = tuple[int, tuple[Any, ...]]  # (family, sockaddr)


def resolve(host: str, port: int, timeout: float) -> tuple[StepResult, list[Addr]]:
    """Look ``host`` up (getaddrinfo: /etc/hosts, then DNS), bounded by ``timeout``.

    getaddrinfo has no timeout of its own, so it runs in a daemon thread we stop waiting for.

    Returns:
        The result, and the (family, sockaddr) to try in order (empty on failure).
    """
    started = time.perf_counter()
    answers: queue.Queue[list[Addr] | BaseException] = queue.Queue(maxsize=1)

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            answers.put([(info[0], info[4]) for info in infos])
        except (OSError, UnicodeError) as exc:
            answers.put(exc)

    threading.Thread(target=lookup, name="relaychat-doctor-dns", daemon=True).start()
    try:
        answer = answers.get(timeout=timeout)
    except queue.Empty:
        answer = TimeoutError(f"no answer in {timeout:g} s")
    if isinstance(answer, BaseException):
        return failed("dns", started, answer, host=host), []
    addrs = list(dict.fromkeys(answer))
    result = StepResult(
        step="dns",
        status="ok",
        duration=time.perf_counter() - started,
        details={"host": host, "addresses": [str(a[1][0]) for a in addrs]},
    )
    return result, addrs


# --- ICMP ---------------------------------------------------------------------------------------


def stats_ms(values: list[float] | tuple[float, ...]) -> dict[str, float]:
    """Min, mean and max of ``values`` (seconds), in milliseconds."""
    ms = [v * 1000 for v in values]
    return {
        "min_ms": round(min(ms), 3),
        "avg_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def check_icmp(address: str, count: int, timeout: float) -> StepResult:
    """Send ``count`` ICMP echo requests to ``address`` and report the replies."""
    started = time.perf_counter()
    try:
        result = ping(address, count=count, timeout=min(timeout, 1.0))
    except (OSError, ValueError) as exc:
        return failed("icmp", started, exc, address=address)
    details: dict[str, Any] = {
        "address": address,
        "socket": result.mode,
        "sent": result.sent,
        "received": result.received,
    }
    duration = time.perf_counter() - started
    if result.rtts:
        details.update(stats_ms(result.rtts))
    if result.bad:
        details["discarded"] = result.bad
    if result.received:
        # Like PING's, the duration is the mean round trip (the wall time holds the pauses).
        mean = statistics.fmean(result.rtts)
        return StepResult(step="icmp", status="ok", duration=mean, details=details)
    if result.errors:
        details["icmp_errors"] = list(result.errors)
        return StepResult(
            step="icmp",
            status="failed",
            duration=duration,
            details=details,
            error=result.errors[0],
            likely_cause="a router reported the host unreachable: it is down, or the address "
            "or routing is wrong",
        )
    return StepResult(
        step="icmp",
        status="failed",
        duration=duration,
        details=details,
        error=f"no reply to {result.sent} echo requests",
        likely_cause=TIMEOUT_CAUSES["icmp"],
    )


# --- TCP ----------------------------------------------------------------------------------------


def connect_tcp(addrs: list[Addr], timeout: float) -> tuple[StepResult, socket.socket | None]:
    """Connect to each address in turn until one accepts.

    Returns:
        The result (its duration is the successful attempt's), and the connected socket.
    """
    attempts: list[dict[str, str]] = []
    last: tuple[float, OSError] | None = None
    for family, sockaddr in addrs:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        started = time.perf_counter()
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = (started, exc)
            attempts.append({"address": _endpoint(sockaddr), "error": error_text(exc)})
            continue
        with_nodelay(sock)
        details: dict[str, Any] = {
            "address": _endpoint(sockaddr),
            "local": _endpoint(sock.getsockname()),
        }
        if attempts:
            details["failed_attempts"] = attempts
        return StepResult(
            step="tcp", status="ok", duration=time.perf_counter() - started, details=details
        ), sock
    assert last is not None, "no address to connect to"
    return failed("tcp", last[0], last[1], attempts=attempts), None


def with_nodelay(sock: socket.socket) -> None:
    """Send small writes at once (IRC lines are small; Nagle would skew the timings)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # pragma: no cover - not TCP
        pass


def _endpoint(sockaddr: tuple[Any, ...]) -> str:
    host, port = str(sockaddr[0]), int(sockaddr[1])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
