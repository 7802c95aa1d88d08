"""DCC file transfer between relaychat's own commands and irssi, over the real server.

irssi runs in tmux (as in ``test_irssi.py``) with a scratch home whose config turns
``dcc_autoget`` on and points its download and upload paths at scratch directories. One test
has irssi receive a file from ``relaychat send-file``; the other has ``relaychat receive-files``
receive one from irssi's ``/dcc send``. Both compare SHA-256 of the two copies.

Skipped when irssi or tmux is not installed (``.ci/run`` installs both when it can).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from tests.e2e.test_irssi import IRSSI, TMUX, Tmux
from tests.harness import TIMEOUT, ServerProcess

pytestmark = pytest.mark.skipif(
    IRSSI is None or TMUX is None,
    reason="irssi and tmux are needed (apt-get install irssi tmux)",
)

NICK = "irssidcc"
SIZE = 3 * 1024 * 1024 + 12345  # a few MiB, not a round number

CONFIG = """\
servers = (
  {{ address = "{host}"; chatnet = "relaytest"; port = "{port}"; use_tls = "no";
     tls_verify = "no"; autoconnect = "yes"; }}
);
chatnets = {{ relaytest = {{ type = "IRC"; }}; }};
settings = {{
  core = {{ real_name = "irssi dcc"; user_name = "irssi"; nick = "{nick}"; }};
  "irc/core" = {{ cmds_max_at_once = "20"; }};
  "irc/dcc" = {{
    dcc_autoget = "yes";
    dcc_download_path = "{down}";
    dcc_upload_path = "{up}";
  }};
  "fe-common/core" = {{ timestamps = "no"; }};
}};
"""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def client_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "client.toml"
    config.write_text("connect_timeout = 5.0\n[dcc]\nstall_timeout = 20\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    return env


async def start_irssi(tmp_path: Path, server: ServerProcess) -> tuple[Tmux, Path, Path]:
    home, down, up = tmp_path / "irssi-home", tmp_path / "irssi-down", tmp_path / "irssi-up"
    for d in (home, down, up):
        d.mkdir()
    (home / "config").write_text(
        CONFIG.format(host=server.host, port=server.port, nick=NICK, down=down, up=up)
    )
    tmux = Tmux(tmp_path / "tmux.sock", session="irssidcc")
    assert IRSSI is not None
    await tmux.start(IRSSI, f"--home={home}")
    await tmux.wait_screen(r"MOTD File is missing|End of /MOTD", TIMEOUT * 2)
    return tmux, down, up


async def relaychat(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaychat",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def test_irssi_receives_from_send_file(tmp_path: Path) -> None:
    server = await ServerProcess.start()
    tmux: Tmux | None = None
    try:
        tmux, down, _ = await start_irssi(tmp_path, server)
        source = tmp_path / "from relaychat.bin"
        source.write_bytes(os.urandom(SIZE))
        proc = await relaychat(
            client_env(tmp_path),
            "send-file",
            f"{server.host}:{server.port}",
            NICK,
            str(source),
            "--nick",
            "alice",
            "--timeout",
            str(TIMEOUT * 4),
        )
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT * 6)
        assert proc.returncode == 0, (out, err, await tmux.screen())
        record = json.loads(out)
        assert record["size"] == SIZE and record["to"] == NICK
        received = down / source.name
        await tmux.wait_screen(r"DCC received file", TIMEOUT * 2)
        assert received.stat().st_size == SIZE
        assert sha256(received) == sha256(source)
    finally:
        if tmux is not None:
            await tmux.kill()
        await server.stop()


async def test_receive_files_gets_irssis_dcc_send(tmp_path: Path) -> None:
    server = await ServerProcess.start()
    tmux: Tmux | None = None
    receiver: asyncio.subprocess.Process | None = None
    try:
        tmux, _, up = await start_irssi(tmp_path, server)
        source = up / "from irssi.bin"
        source.write_bytes(os.urandom(SIZE))
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        receiver = await relaychat(
            client_env(tmp_path),
            "receive-files",
            f"{server.host}:{server.port}",
            "--nick",
            "bob",
            "--dir",
            str(inbox),
            "--from",
            NICK,
            "--count",
            "1",
            "--timeout",
            str(TIMEOUT * 6),
        )
        assert receiver.stderr is not None
        line = await asyncio.wait_for(receiver.stderr.readline(), TIMEOUT * 2)
        assert b"waiting for files" in line, line
        await tmux.type(f'/dcc send bob "{source}"')
        out, err = await asyncio.wait_for(receiver.communicate(), TIMEOUT * 6)
        assert receiver.returncode == 0, (out, err, await tmux.screen())
        record = json.loads(out)
        assert record["from"] == NICK and record["size"] == SIZE
        assert record["sha256"] == sha256(source)
        assert sha256(inbox / source.name) == record["sha256"]
    finally:
        if receiver is not None and receiver.returncode is None:
            receiver.kill()
            await receiver.wait()
        if tmux is not None:
            await tmux.kill()
        await server.stop()


async def test_chat_sends_20_mib_to_irssi(tmp_path: Path) -> None:
    """The issue's "done when": alice in `relaychat chat` sends bob on irssi a 20 MiB file."""
    from relaychat.client import Client
    from relaychat.tui.app import ChatApp
    from relaychat.tui.model import LinkState
    from tests.e2e.test_tui import FAST, submit, texts, until

    server = await ServerProcess.start()
    tmux: Tmux | None = None
    try:
        tmux, down, _ = await start_irssi(tmp_path, server)
        source = tmp_path / "twenty.bin"
        source.write_bytes(os.urandom(20 * 1024 * 1024))
        client = Client(server.host, server.port, nick="alice", **FAST)
        app = ChatApp(client, lag_interval=0.5)
        async with app.run_test(size=(110, 30)) as pilot:
            try:
                await until(pilot, lambda: app.status.state is LinkState.CONNECTED, "connected")
                await submit(pilot, f"/dcc send {NICK} {source}")
                buf = app.state.get(NICK)
                loop = asyncio.get_running_loop()
                deadline = loop.time() + TIMEOUT * 6
                while not any(t.startswith("sent twenty.bin") for t in texts(buf)):
                    assert loop.time() < deadline, texts(buf)
                    await pilot.pause(0.05)
            finally:
                await client.close(timeout=1.0)
        received = down / "twenty.bin"
        await tmux.wait_screen(r"DCC received file", TIMEOUT * 2)
        assert sha256(received) == sha256(source)
    finally:
        if tmux is not None:
            await tmux.kill()
        await server.stop()
