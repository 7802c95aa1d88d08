"""The `relaychat` command as a user runs it: help, clear errors with exit 2, SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
import sys
from pathlib import Path

from relaychat.config import SECTIONS, scalar_fields
from tests.harness import TIMEOUT, LineClient, ServerProcess


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaychat", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=TIMEOUT * 4,
    )


def test_serve_help_documents_every_option() -> None:
    out = run_cli("serve", "--help").stdout
    from relaychat.config import Config

    for f in scalar_fields(Config):
        assert "--" + f.name.replace("_", "-") in out, f.name
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            name = f.name if section == "limits" else f"{section}_{f.name}"
            assert "--" + name.replace("_", "-") in out, name
    assert "RELAYCHAT_LIMITS__SENDQ" in out
    assert "RELAYCHAT_HISTORY__REPLAY_LINES" in out


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("port = 99999\n")
    result = run_cli("serve", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "relaychat: configuration error: port: 99999 is not a port number (0-65535)"
    ]
    result = run_cli("serve", "--port", "nope")
    assert result.returncode == 2
    assert "invalid int value" in result.stderr and "Traceback" not in result.stderr


def test_address_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        # Its own data directory: the user's may hold another version's history.
        result = run_cli("serve", "--port", str(port), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"relaychat: cannot listen on 127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in result.stderr


def test_mkpasswd_makes_an_argon2_hash() -> None:
    from relaychat.passwords import verify_password

    result = run_cli("mkpasswd", "--stdin", stdin="hunter2\n")
    assert result.returncode == 0
    digest = result.stdout.strip()
    assert digest.startswith("$argon2id$")
    assert verify_password(digest, "hunter2") and not verify_password(digest, "hunter3")


async def test_sigterm_shuts_down_gracefully_exit_0(tmp_path: Path) -> None:
    motd = tmp_path / "motd.txt"
    motd.write_text("Welcome to the test server\n")
    srv = await ServerProcess.start(
        "--motd-file",
        str(motd),
        "--server-name",
        "test.example",
        env={"RELAYCHAT_NETWORK": "TestNet"},
    )
    client = await LineClient.open(srv.host, srv.port)
    await client.send("NICK cli")
    await client.send("USER cli 0 * :cli")
    await client.expect(r"^:test\.example 001 cli :Welcome to the TestNet IRC Network")
    await client.expect(r" 005 cli .*NETWORK=TestNet")
    await client.expect(r" 372 cli :- Welcome to the test server")
    code_task = asyncio.create_task(srv.stop())
    lines = await client.closed()
    assert lines[-1] == "ERROR :Server shutting down"
    assert await code_task == 0


def test_python_dash_m_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("relaychat ")
