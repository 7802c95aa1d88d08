"""`relaychat doctor` as a user runs it, against a real `relaychat serve` and broken targets.

Every failure must name its step and a likely cause, in one report, with no traceback.
ICMP is tried for real: tests run as root here, so it passes; where raw sockets are not
permitted the step must say so, and the tests accept that.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import TIMEOUT, ServerProcess
from tests.netns import clean_env, netns_pair

STEPS = ["dns", "icmp", "tcp", "tls", "irc", "ping"]


def doctor(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "relaychat", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        env=clean_env(),
    )


async def adoctor(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(doctor, *args, prefix=prefix)


def steps_of(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    data = json.loads(result.stdout)
    assert [s["step"] for s in data["steps"]] == STEPS
    return {s["step"]: s for s in data["steps"]}


def icmp_ok_or_not_permitted(step: dict[str, Any]) -> None:
    if step["status"] != "ok":
        assert step["status"] == "failed"
        assert "not permitted" in step["error"], step


@pytest.fixture
async def server() -> AsyncIterator[ServerProcess]:
    srv = await ServerProcess.start("--plain-port", "0")
    yield srv
    await srv.stop()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


@pytest.fixture
def silent_port() -> Iterator[int]:
    # The kernel completes the TCP handshake from the backlog; nobody ever reads or writes.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


async def test_full_report_against_a_real_server(server: ServerProcess) -> None:
    result = await adoctor(f"127.0.0.1:{server.port}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"relaychat doctor: 127.0.0.1 port {server.port} (plain IRC)"
    for title in ("DNS resolution", "TCP connect", "IRC registration", "PING round trip"):
        assert any(line.startswith(f"  ok    {title}") for line in lines), (title, lines)
    assert any(line.startswith("  skip  TLS handshake") for line in lines)
    icmp = next(line for line in lines if "ICMP echo" in line)
    assert icmp.startswith("  ok    ICMP echo") or "not permitted" in icmp
    assert "network relaychat" in result.stdout
    assert lines[-1].startswith("result: every step passed")
    assert result.stderr == ""


async def test_json_report(server: ServerProcess) -> None:
    result = await adoctor(f"127.0.0.1:{server.port}", "--json", "--count", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["failed_step"] is None
    assert data["target"] == {"host": "127.0.0.1", "port": server.port, "tls": False}
    steps = steps_of(result)
    assert steps["dns"]["details"]["addresses"] == ["127.0.0.1"]
    icmp_ok_or_not_permitted(steps["icmp"])
    if steps["icmp"]["ok"]:
        assert steps["icmp"]["details"]["received"] == 2
    assert steps["tcp"]["ok"] and steps["tcp"]["duration_ms"] >= 0
    assert steps["tls"]["status"] == "skipped"
    irc = steps["irc"]
    assert irc["ok"] and irc["details"]["server"] == "relaychat.local"
    assert irc["details"]["network"] == "relaychat"
    assert steps["ping"]["ok"] and steps["ping"]["details"]["count"] == 2


async def test_closed_port_fails_at_tcp_connect(closed_port: int) -> None:
    text = await adoctor(f"127.0.0.1:{closed_port}", "--no-icmp")
    assert text.returncode == 1
    assert "FAIL  TCP connect" in text.stdout and "Connection refused" in text.stdout
    assert "likely cause: nothing is listening on that port" in text.stdout
    assert "result: failed at step 'TCP connect'" in text.stdout
    assert "Traceback" not in text.stdout + text.stderr
    result = await adoctor(f"127.0.0.1:{closed_port}", "--no-icmp", "--json")
    assert result.returncode == 1
    steps = steps_of(result)
    assert json.loads(result.stdout)["failed_step"] == "tcp"
    assert "nothing is listening" in steps["tcp"]["likely_cause"]
    assert [steps[s]["status"] for s in ("tls", "irc", "ping")] == ["skipped"] * 3
    assert steps["irc"]["error"] == "needs a TCP connection"


async def test_unresolvable_name_fails_at_dns() -> None:
    result = await adoctor("nonexistent.invalid", "--json", "--timeout", "3")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["failed_step"] == "dns"
    dns = data["steps"][0]
    # Offline resolvers say "try again" instead of "no such name": both name the DNS step.
    assert "does not exist" in dns["likely_cause"] or "did not answer" in dns["likely_cause"]
    assert all(s["status"] == "skipped" for s in data["steps"][1:])
    text = await adoctor("nonexistent.invalid", "--timeout", "3")
    assert "FAIL  DNS resolution" in text.stdout
    assert "result: failed at step 'DNS resolution'" in text.stdout


async def test_port_that_never_speaks_irc_fails_at_registration(silent_port: int) -> None:
    result = await adoctor(f"127.0.0.1:{silent_port}", "--no-icmp", "--json", "--timeout", "1")
    assert result.returncode == 1
    steps = steps_of(result)
    assert steps["tcp"]["ok"]
    assert json.loads(result.stdout)["failed_step"] == "irc"
    assert steps["irc"]["error"] == "no welcome (001) within 1 s"
    assert "never completed IRC registration" in steps["irc"]["likely_cause"]
    assert steps["ping"]["error"] == "needs a registered connection"


def test_bad_target_is_one_line_exit_2() -> None:
    result = doctor("host:99999")
    assert result.returncode == 2
    assert result.stderr.strip() == "relaychat: doctor: '99999' is not a port number (1-65535)"
    assert result.stdout == ""


async def test_tls_handshake_and_certificate(tmp_path: Path, closed_port: int) -> None:
    tls_port = closed_port
    srv = await ServerProcess.start(
        "--plain-port",
        "0",
        "--tls-port",
        str(tls_port),
        "--tls-self-signed",
        "--data-dir",
        str(tmp_path),
    )
    try:
        certs = sorted(tmp_path.rglob("*cert*.pem"))
        assert certs, list(tmp_path.rglob("*"))
        target = f"127.0.0.1:{tls_port}"

        untrusted = steps_of(await adoctor(target, "--tls", "--no-icmp", "--json"))
        assert untrusted["tls"]["status"] == "failed"
        assert "self-signed" in untrusted["tls"]["likely_cause"]
        assert untrusted["irc"]["error"] == "needs a TLS session"

        trusted = await adoctor(target, "--tls", "--no-icmp", "--json", "--cafile", str(certs[0]))
        assert trusted.returncode == 0, trusted.stdout
        tls = steps_of(trusted)["tls"]["details"]
        assert tls["verified"] is True and tls["version"].startswith("TLSv1.")
        assert "127.0.0.1" in tls["names"] and tls["days_left"] > 0

        insecure = steps_of(await adoctor(target, "--tls", "--insecure", "--no-icmp", "--json"))
        assert insecure["tls"]["ok"] and insecure["tls"]["details"]["verified"] is False
        assert insecure["ping"]["ok"]

        plain = steps_of(await adoctor(target, "--no-tls", "--no-icmp", "--json", "--timeout", "2"))
        assert plain["irc"]["status"] == "failed"
        assert "TLS" in plain["irc"]["likely_cause"]
    finally:
        await srv.stop()


def _drop_net_raw() -> tuple[str, ...]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run without CAP_NET_RAW")
    return ("setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw")


async def test_icmp_not_permitted_is_explained(server: ServerProcess) -> None:
    # Without CAP_NET_RAW, and with unprivileged ping sockets off for this group, neither
    # kind of ICMP socket opens; the step says so and the rest of the report still runs.
    with open("/proc/sys/net/ipv4/ping_group_range") as fh:
        low, high = (int(x) for x in fh.read().split())
    if low <= os.getgid() <= high:
        pytest.skip("unprivileged ICMP sockets are allowed for this group here")
    result = await adoctor(f"127.0.0.1:{server.port}", "--json", prefix=_drop_net_raw())
    assert result.returncode == 0, result.stdout
    icmp = steps_of(result)["icmp"]
    assert icmp["status"] == "failed"
    assert icmp["error"].startswith("ICMP is not permitted here")
    assert "CAP_NET_RAW" in icmp["likely_cause"]
    assert "ping_group_range" in icmp["likely_cause"]


async def test_icmp_falls_back_to_the_datagram_socket() -> None:
    # In a namespace of our own we may allow unprivileged ping for every group.
    prefix = _drop_net_raw()
    with netns_pair(third_octet=78) as net:
        allow = subprocess.run(
            net.argv(net.a, "sh", "-c", "echo 0 2147483647 > /proc/sys/net/ipv4/ping_group_range"),
            capture_output=True,
            timeout=10,
        )
        if allow.returncode != 0:
            pytest.skip(f"cannot set ping_group_range: {allow.stderr!r}")
        result = await adoctor(
            f"{net.addr_b}:1", "--json", "--count", "2", prefix=(*net.argv(net.a), *prefix)
        )
    icmp = steps_of(result)["icmp"]
    assert icmp["status"] == "ok", icmp
    assert icmp["details"]["socket"] == "datagram"
    assert icmp["details"]["received"] == 2
