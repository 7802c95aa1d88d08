"""irssi, a real IRC client, logs in over TLS with SASL: third-party proof of both.

The server is the real ``relaychat serve`` with a TLS listener whose certificate trustme made;
irssi verifies it against that CA (``tls_verify``; irssi checks DNS names only, so it connects to
``localhost`` over IPv4). The account is registered first with
REGISTER from a LineClient; irssi then logs in with SASL PLAIN, and with SASL EXTERNAL using a
client certificate the server has never seen before it was added to the account. A LineClient
checks, with WHOIS, what the server thinks of irssi.

Skipped when irssi or tmux is not installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme

from tests.e2e.test_irssi import IRSSI, TMUX, Tmux, trimmed
from tests.harness import TIMEOUT, LineClient, ServerProcess
from tests.integration.tls_support import der_fingerprint, free_port, write_server_cert

pytestmark = pytest.mark.skipif(
    IRSSI is None or TMUX is None,
    reason="irssi and tmux are needed (apt-get install irssi tmux)",
)

NICK = "irssiuser"
PASSWORD = "irssi-sasl-secret"

CONFIG = """\
servers = (
  {{
    address = "localhost";
    family = "inet";
    chatnet = "relaytls";
    port = "{port}";
    use_tls = "yes";
    tls_verify = "yes";
    tls_cafile = "{cafile}";
{client_cert}    autoconnect = "yes";
  }}
);
chatnets = {{
  relaytls = {{
    type = "IRC";
    sasl_mechanism = "{mechanism}";
    sasl_username = "{nick}";
    sasl_password = "{password}";
  }};
}};
settings = {{
  core = {{ real_name = "irssi tls e2e"; user_name = "irssi"; nick = "{nick}"; }};
  "irc/core" = {{ cmds_max_at_once = "20"; }};
  "fe-common/core" = {{ timestamps = "no"; }};
}};
"""


async def start_server(tmp_path: Path, ca: trustme.CA) -> tuple[ServerProcess, int]:
    cert, key = write_server_cert(ca, tmp_path)
    port = free_port()
    server = await ServerProcess.start(
        "--data-dir",
        str(tmp_path / "data"),
        "--tls-port",
        str(port),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
    )
    return server, port


async def register_account(server: ServerProcess, *, certfp: str | None = None) -> None:
    """Register NICK's account over the plain port (and add a certificate to it)."""
    c = await LineClient.open(server.host, server.port)
    try:
        await c.register(NICK)
        await c.send(f"REGISTER * * {PASSWORD}")
        await c.expect(rf" 900 {NICK} ")
        if certfp is not None:
            await c.send(f"CERT ADD {certfp}")
            await c.expect(rf"NOTICE {NICK} :Added client certificate {certfp}")
        await c.send("QUIT")
        await c.closed()
    finally:
        await c.close()


async def run_irssi(tmp_path: Path, server: ServerProcess, config: str) -> list[str]:
    """Start irssi with ``config``; wait for the login; check it with WHOIS; quit irssi."""
    home = tmp_path / "irssi-home"
    home.mkdir()
    (home / "config").write_text(config)
    tmux = Tmux(tmp_path / "tmux.sock")
    bob: LineClient | None = None
    transcript: list[str] = []
    try:
        assert IRSSI is not None
        await tmux.start(IRSSI, f"--home={home}")
        screen = await tmux.wait_screen(r"MOTD File is missing|End of /MOTD", TIMEOUT * 3)
        assert "You are now logged in as irssiuser" in screen, screen
        assert "SASL authentication succeeded" in screen, screen  # irssi's words for 903
        transcript += ["== irssi status window: TLS, SASL, registration ==", trimmed(screen)]
        bob = await LineClient.open(server.host, server.port)
        await bob.register("bob")
        await bob.send(f"WHOIS {NICK}")
        await bob.expect(rf" 330 bob {NICK} {NICK} :is logged in as$")
        await bob.expect(rf" 318 bob {NICK} ")
        # Recent channel lines are replayed when irssi joins (history, on by default).
        await bob.send("JOIN #recent")
        await bob.expect(r" 366 bob #recent ")
        await bob.send("PRIVMSG #recent :earlier line one")
        await bob.send("PRIVMSG #recent :earlier line two")
        await bob.send("PING :sync")
        await bob.expect(r"PONG \S+ :?sync$")
        await tmux.type("/join #recent")
        screen = await tmux.wait_screen(r"earlier line two", TIMEOUT * 3)
        assert "earlier line one" in screen, screen
        transcript += ["== irssi #recent window: recent lines replayed on join ==", trimmed(screen)]
        await tmux.type("/quit logged in over TLS")
    finally:
        await tmux.kill()
        if bob is not None:
            await bob.close()
    return transcript


async def test_irssi_sasl_plain_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    server, port = await start_server(tmp_path, ca)
    try:
        await register_account(server)
        config = CONFIG.format(
            port=port,
            cafile=cafile,
            client_cert="",
            mechanism="PLAIN",
            nick=NICK,
            password=PASSWORD,
        )
        transcript = await run_irssi(tmp_path, server, config)
    finally:
        code = await server.stop()
    out = os.environ.get("RELAYCHAT_IRSSI_TRANSCRIPT")
    if out:
        Path(out).with_suffix(".tls.txt").write_text("\n".join(transcript) + "\n")
    assert code == 0, server.log[-5:]


async def test_irssi_sasl_external_with_a_client_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    # irssi's own certificate, from a CA the server knows nothing of.
    leaf = trustme.CA().issue_cert("irssiuser@example.org")
    cert, key = tmp_path / "irssi-cert.pem", tmp_path / "irssi-key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    server, port = await start_server(tmp_path, ca)
    try:
        await register_account(server, certfp=der_fingerprint(leaf))
        config = CONFIG.format(
            port=port,
            cafile=cafile,
            client_cert=f'    tls_cert = "{cert}";\n    tls_pkey = "{key}";\n',
            mechanism="EXTERNAL",
            nick=NICK,
            password="",
        )
        await run_irssi(tmp_path, server, config)
    finally:
        code = await server.stop()
    assert code == 0, server.log[-5:]
