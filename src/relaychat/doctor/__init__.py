"""``relaychat doctor HOST[:PORT]``: diagnose a connection to an IRC server, step by step.

The steps, in order (:mod:`~relaychat.doctor.steps`, :mod:`~relaychat.doctor.session`,
:mod:`~relaychat.doctor.icmp`)::

    dns    DNS resolution    getaddrinfo, bounded by the timeout
    icmp   ICMP echo         echo requests built by hand, over a raw or an ICMP datagram socket
    tcp    TCP connect       each resolved address in turn
    tls    TLS handshake     with --tls, or on a TLS port (6697, 994): version, cipher, certificate
    irc    IRC registration  NICK/USER, time to the 001 welcome; server, network and version
    ping   PING round trip   PING/PONG with the registered server

A step that fails names its error and the likely cause; the steps that needed it are skipped.
ICMP is advisory: many networks drop it, so its failure alone does not fail the diagnosis.
Exit status: 0 when every other step passed, 1 when one failed, 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaychat.doctor.session import LineReader, handshake_tls, ping_irc, register_irc
from relaychat.doctor.steps import StepResult, check_icmp, connect_tcp, resolve, skipped

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "TLS_PORTS",
    "Diagnosis",
    "StepResult",
    "add_parser",
    "diagnose",
    "format_report",
    "parse_target",
]

DEFAULT_PORT = 6667
DEFAULT_TLS_PORT = 6697
#: Ports that speak TLS by convention: 6697 (RFC 7194) and 994 (ircs).
TLS_PORTS = frozenset({6697, 994})
#: Steps whose failure does not fail the diagnosis.
ADVISORY = frozenset({"icmp"})


def parse_target(text: str) -> tuple[str, int | None]:
    """Split ``HOST[:PORT]`` (``[v6]:PORT`` for an IPv6 address with a port).

    Returns:
        The host and the port (``None`` when not given).

    Raises:
        ValueError: the text is empty or the port is not 1-65535.
    """
    text = text.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not HOST[:PORT] ([v6]:PORT for IPv6)")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, an IPv4 address, or a bare IPv6 address
    if not host:
        raise ValueError("no host given")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Every step's result for one target."""

    host: str
    port: int
    tls: bool
    steps: tuple[StepResult, ...]

    @property
    def failed_step(self) -> StepResult | None:
        """The first step that failed, ICMP excepted (it is advisory)."""
        return next(
            (s for s in self.steps if s.status == "failed" and s.step not in ADVISORY), None
        )

    @property
    def ok(self) -> bool:
        """Whether every step that matters passed."""
        return self.failed_step is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: target, ok, failed_step and every step."""
        failed = self.failed_step
        return {
            "target": {"host": self.host, "port": self.port, "tls": self.tls},
            "ok": self.ok,
            "failed_step": failed.step if failed else None,
            "steps": [s.to_dict() for s in self.steps],
        }


def diagnose(
    host: str,
    port: int | None = None,
    *,
    tls: bool | None = None,
    verify: bool = True,
    cafile: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
    count: int = 3,
    icmp: bool = True,
    on_step: Callable[[StepResult], None] | None = None,
) -> Diagnosis:
    """Run every step against ``host``; blocks for at most a few timeouts.

    Args:
        host: a name or an address.
        port: the port (default 6667, or 6697 with TLS).
        tls: use TLS; ``None`` decides by the port (:data:`TLS_PORTS`).
        verify: verify the certificate chain and name.
        cafile: extra trusted certificates (PEM).
        password: the server password (PASS), when it needs one.
        timeout: seconds allowed for each step.
        count: ICMP echoes and IRC PINGs to send.
        icmp: run the ICMP step.
        on_step: called with each result as soon as it is known (to print progress).

    Returns:
        The diagnosis.
    """
    if tls is None:
        tls = port in TLS_PORTS
    port = port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    steps: list[StepResult] = []

    def add(result: StepResult) -> None:
        steps.append(result)
        if on_step is not None:
            on_step(result)

    def skip_rest(why: str) -> Diagnosis:
        for key in ("icmp", "tcp", "tls", "irc", "ping"):
            if not any(s.step == key for s in steps):
                add(skipped(key, why))
        return Diagnosis(host, port, tls, tuple(steps))

    dns, addrs = resolve(host, port, timeout)
    add(dns)
    if not dns.ok:
        return skip_rest("needs DNS resolution")
    if icmp:
        add(check_icmp(str(addrs[0][1][0]), count, timeout))
    else:
        add(skipped("icmp", "turned off (--no-icmp)"))
    tcp, sock = connect_tcp(addrs, timeout)
    add(tcp)
    if sock is None:
        return skip_rest("needs a TCP connection")
    conn = sock
    if tls:
        result, tls_sock = handshake_tls(sock, host, timeout, verify=verify, cafile=cafile)
        add(result)
        if tls_sock is None:
            return skip_rest("needs a TLS session")
        conn = tls_sock
    else:
        add(skipped("tls", f"not used: port {port} is taken as plain IRC (--tls to use TLS)"))
    reader = LineReader(conn)
    try:
        registration = register_irc(reader, timeout, password=password, tls=tls)
        add(registration)
        if not registration.ok:
            return skip_rest("needs a registered connection")
        add(ping_irc(reader, count, timeout))
        with contextlib.suppress(OSError):
            reader.send("QUIT :relaychat doctor")
    finally:
        conn.close()
    return Diagnosis(host, port, tls, tuple(steps))


# --- the report ---------------------------------------------------------------------------------


def _rtt(d: dict[str, Any]) -> str:
    if "avg_ms" not in d:
        return ""
    return f", rtt min/avg/max {d['min_ms']:.3f}/{d['avg_ms']:.3f}/{d['max_ms']:.3f} ms"


def _tls_summary(d: dict[str, Any]) -> str:
    parts = [f"{d.get('version')} {d.get('cipher')}"]
    if d.get("subject"):
        parts.append(f"subject {d['subject']}")
    if d.get("issuer"):
        parts.append("self-signed" if d.get("self_signed") else f"issuer {d['issuer']}")
    if d.get("names"):
        parts.append("names " + " ".join(d["names"]))
    if "days_left" in d:
        parts.append(f"expires {d['not_after']} ({d['days_left']} days)")
    parts.append("verified" if d.get("verified") else "NOT verified (--insecure)")
    return "; ".join(parts)


def _irc_summary(d: dict[str, Any]) -> str:
    text = f"as {d.get('nick')} on {d.get('server') or '?'}"
    if d.get("network"):
        text += f", network {d['network']}"
    if d.get("version"):
        text += f", {d['version']}"
    return text


#: Step -> one line summing up its details when it passed.
SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "dns": lambda d: ", ".join(d.get("addresses", [])),
    "icmp": lambda d: (
        f"{d['received']}/{d['sent']} replies from {d['address']}{_rtt(d)} ({d['socket']} socket)"
    ),
    "tcp": lambda d: f"{d['address']} (from {d['local']})",
    "tls": _tls_summary,
    "irc": _irc_summary,
    "ping": lambda d: f"{d['count']} PING{'s' * (d['count'] != 1)} answered{_rtt(d)}",
}


def format_step(result: StepResult) -> str:
    """One step as report lines: status, title, duration, summary; then the cause if it failed."""
    mark = {"ok": "ok", "failed": "FAIL", "skipped": "skip"}[result.status]
    if result.status == "failed" and result.step in ADVISORY:
        mark = "warn"
    took = "" if result.duration is None else f"{result.duration * 1000:.1f} ms"
    text = SUMMARIES[result.step](result.details) if result.ok else (result.error or "")
    line = f"  {mark:<5} {result.title:<17} {took:>9}  {text}".rstrip()
    if result.status == "failed" and result.likely_cause:
        line += f"\n  {'':<5} {'':<17} {'':>9}  likely cause: {result.likely_cause}"
    return line


def format_header(host: str, port: int | None, tls: bool | None) -> str:
    """The report's first line."""
    if tls is None:
        tls = port in TLS_PORTS
    port = port or (DEFAULT_TLS_PORT if tls else DEFAULT_PORT)
    return f"relaychat doctor: {host} port {port} ({'TLS' if tls else 'plain'} IRC)"


def format_verdict(diagnosis: Diagnosis) -> str:
    """The report's last line."""
    failed = diagnosis.failed_step
    if failed is None:
        warned = any(s.status == "failed" for s in diagnosis.steps if s.step in ADVISORY)
        return "result: every step passed" + (" (but see ICMP)" if warned else "")
    return f"result: failed at step {failed.title!r}: {failed.likely_cause or failed.error}"


def format_report(diagnosis: Diagnosis) -> str:
    """The whole readable report."""
    lines = [format_header(diagnosis.host, diagnosis.port, diagnosis.tls)]
    lines.extend(format_step(s) for s in diagnosis.steps)
    lines.append(format_verdict(diagnosis))
    return "\n".join(lines)


# --- the command --------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 120:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 120 seconds")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError("must be a whole number from 1 to 100")
    return int(text)


def add_parser(sub: Any) -> None:
    """Add the ``doctor`` subcommand to ``sub`` (the CLI's subparsers); it sets ``handler``."""
    p = sub.add_parser(
        "doctor",
        help="diagnose a connection to an IRC server step by step",
        description="Check each step of reaching an IRC server: DNS resolution, ICMP echo, "
        "TCP connect, TLS handshake and certificate, IRC registration, PING round trip. "
        "Every failure names the step and its likely cause. Exit code 0 when every step but "
        "ICMP (advisory) passed, 1 when one failed.",
    )
    p.add_argument("target", metavar="HOST[:PORT]", help="the server (default port 6667/6697)")
    p.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="use TLS (default: only on ports 6697 and 994)",
    )
    p.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    p.add_argument("--cafile", metavar="FILE", help="also trust the certificates in FILE (PEM)")
    p.add_argument("--password", metavar="TEXT", help="the server password (PASS)")
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=5.0,
        metavar="S",
        help="seconds allowed for each step (default: 5)",
    )
    p.add_argument(
        "--count", type=_count, default=3, metavar="N", help="ICMP echoes and PINGs (default: 3)"
    )
    p.add_argument("--no-icmp", action="store_true", help="skip the ICMP echo step")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_doctor_main)


def _doctor_main(args: argparse.Namespace) -> int:
    try:
        host, port = parse_target(args.target)
    except ValueError as exc:
        print(f"relaychat: doctor: {exc}", file=sys.stderr)
        return 2

    def progress(result: StepResult) -> None:
        print(format_step(result), flush=True)

    try:
        if not args.json:
            print(format_header(host, port, args.tls), flush=True)
        diagnosis = diagnose(
            host,
            port,
            tls=args.tls,
            verify=not args.insecure,
            cafile=args.cafile,
            password=args.password,
            timeout=args.timeout,
            count=args.count,
            icmp=not args.no_icmp,
            on_step=None if args.json else progress,
        )
        if args.json:
            print(json.dumps(diagnosis.to_dict(), indent=2))
        else:
            print(format_verdict(diagnosis))
    except KeyboardInterrupt:
        print("relaychat: doctor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0 if diagnosis.ok else 1
