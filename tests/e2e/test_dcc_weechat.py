"""DCC file transfer between relaychat's commands and WeeChat (``weechat-headless``).

WeeChat runs headless with a scratch ``--dir``, ``xfer.file.auto_accept_files`` on, and its FIFO
plugin on: the test types commands by writing to the FIFO. WeeChat receives a file from
``relaychat send-file``, then sends one to ``relaychat receive-files``; hashes are compared.

Skipped when ``weechat-headless`` is not installed (``.ci/run`` installs it when it can).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.harness import TIMEOUT, LineClient, ServerProcess

WEECHAT = shutil.which("weechat-headless")

pytestmark = pytest.mark.skipif(
    WEECHAT is None, reason="weechat-headless is needed (apt-get install weechat-headless)"
)

NICK = "weedcc"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def relaychat(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaychat", *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip


async def until_online(server: ServerProcess, nick: str) -> None:
    watcher = await LineClient.open(server.host, server.port)
    await watcher.register("watcher")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT * 3
    try:
        while True:
            await watcher.send(f"ISON {nick}")
            match = await watcher.expect(r" 303 watcher :?(.*)$")
            if nick in match.group(1).split():
                return
            if loop.time() > deadline:
                raise AssertionError(f"{nick} never came online")
            await asyncio.sleep(0.1)
    finally:
        await watcher.close()


async def test_weechat_both_ways(tmp_path: Path) -> None:
    assert WEECHAT is not None
    server = await ServerProcess.start()
    home, down, inbox = tmp_path / "weechat", tmp_path / "wee-down", tmp_path / "inbox"
    for d in (home, down, inbox):
        d.mkdir()
    setup = ";".join(
        [
            "/set fifo.file.enabled on",
            "/set xfer.file.auto_accept_files on",
            f"/set xfer.file.download_path {down}",
            f"/server add relay {server.host}/{server.port} -notls -nicks={NICK}",
            "/connect relay",
        ]
    )
    wee = await asyncio.create_subprocess_exec(
        WEECHAT, "--dir", str(home), "--run-command", setup,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    config = tmp_path / "client.toml"
    config.write_text("connect_timeout = 5.0\n[dcc]\nstall_timeout = 20\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
    env["RELAYCHAT_CLIENT_CONFIG"] = str(config)
    where = f"{server.host}:{server.port}"
    try:
        await until_online(server, NICK)
        fifo = home / f"weechat_fifo_{wee.pid}"
        assert fifo.exists(), sorted(p.name for p in home.iterdir())
        # WeeChat receives from send-file.
        source = tmp_path / "to weechat.bin"
        source.write_bytes(os.urandom(2 * 1024 * 1024 + 7))
        send = await relaychat(env, "send-file", where, NICK, str(source), "--nick", "alice")
        out, err = await asyncio.wait_for(send.communicate(), TIMEOUT * 6)
        assert send.returncode == 0, err
        assert json.loads(out)["size"] == source.stat().st_size
        (got,) = down.iterdir()  # WeeChat names it alice.to_weechat.bin
        assert sha256(got) == sha256(source)
        # WeeChat sends to receive-files.
        other = tmp_path / "from weechat.bin"
        other.write_bytes(os.urandom(1024 * 1024 + 3))
        recv = await relaychat(
            env, "receive-files", where, "--nick", "bob", "--dir", str(inbox),
            "--from", NICK, "--count", "1", "--timeout", str(TIMEOUT * 6),
        )  # fmt: skip
        assert recv.stderr is not None
        line = await asyncio.wait_for(recv.stderr.readline(), TIMEOUT * 2)
        assert b"waiting for files" in line
        fifo.write_text(f"irc.server.relay */dcc send bob {other}\n")
        out, err = await asyncio.wait_for(recv.communicate(), TIMEOUT * 6)
        assert recv.returncode == 0, err
        record = json.loads(out)
        assert record["from"] == NICK and record["sha256"] == sha256(other)
        assert sha256(Path(record["path"])) == sha256(other)
    finally:
        if wee.returncode is None:
            with contextlib.suppress(OSError):
                (home / f"weechat_fifo_{wee.pid}").write_text("core.weechat */quit\n")
            try:
                await asyncio.wait_for(wee.wait(), TIMEOUT)
            except TimeoutError:
                wee.kill()
                await wee.wait()
        await server.stop()
