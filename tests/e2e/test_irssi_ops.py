"""The operator's day with a real client (issue 14, "done when"): irssi stays connected while the
config file changes (new MOTD, a new oper) and ``relaychat reload`` runs; ``/motd`` shows the new
text, ``/oper`` works; a K-line from irssi holds after a restart.

Skipped when irssi or tmux is not installed. ``RELAYCHAT_IRSSI_TRANSCRIPT=/path/file.txt`` keeps
what irssi's screen showed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from relaychat.passwords import hash_password
from tests.e2e.test_irssi import CONFIG, IRSSI, TMUX, Tmux, trimmed
from tests.harness import TIMEOUT, LineClient, ServerProcess

pytestmark = pytest.mark.skipif(
    IRSSI is None or TMUX is None,
    reason="irssi and tmux are needed (apt-get install irssi tmux)",
)

NICK = "opsnick"
PASSWORD = "correct-horse-42"


def write_conf(path: Path, motd: str, oper_hash: str | None = None) -> None:
    text = f'motd = "{motd}"\n'
    if oper_hash:
        text += f'[[opers]]\nname = "admin"\npassword_hash = "{oper_hash}"\n'
    path.write_text(text)


async def reload_cli(conf: Path, data: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "relaychat", "reload", "--config", str(conf), "--data-dir",
        str(data), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")},
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT * 4)
    assert proc.returncode == 0, out
    return out.decode().strip()


@pytest.mark.timeout(180)
async def test_irssi_stays_through_reload_and_klines_hold_after_restart(tmp_path: Path) -> None:
    conf, data = tmp_path / "relaychat.toml", tmp_path / "data"
    write_conf(conf, "first motd")
    args = ("--config", str(conf), "--data-dir", str(data))
    server = await ServerProcess.start(*args)
    home = tmp_path / "irssi-home"
    home.mkdir()
    (home / "config").write_text(CONFIG.format(host=server.host, port=server.port, nick=NICK))
    tmux = Tmux(tmp_path / "tmux.sock")
    transcript: list[str] = []
    try:
        victim = await LineClient.open(server.host, server.port)
        await victim.register("victim")
        assert IRSSI is not None
        await tmux.start(IRSSI, f"--home={home}")
        await tmux.wait_screen(r"- first motd", TIMEOUT * 2)

        write_conf(conf, "second motd after reload", hash_password(PASSWORD))
        said = await reload_cli(conf, data)
        transcript += [f"$ relaychat reload --config {conf.name} --data-dir data", said]
        await asyncio.sleep(0)
        for _ in range(int(TIMEOUT * 40)):
            if any("configuration reloaded by SIGHUP" in line for line in server.log):
                break
            await asyncio.sleep(0.05)
        await tmux.type("/motd")
        await tmux.wait_screen(r"- second motd after reload")
        await tmux.type(f"/oper admin {PASSWORD}")
        await tmux.wait_screen(r"You are now an IRC operator")
        await tmux.type("/quote KLINE ~victim@127.0.0.1 :e2e ban")
        await tmux.wait_screen(r"K-line on ~victim@127.0.0.1 set permanently")
        assert "ERROR :Banned: e2e ban" in await victim.closed()
        screen = await tmux.screen()
        transcript += ["== irssi: reload, /motd, /oper, KLINE, still connected ==", trimmed(screen)]
    finally:
        await tmux.kill()
        assert await server.stop() == 0
        keep = os.environ.get("RELAYCHAT_IRSSI_TRANSCRIPT")
        if keep:
            Path(keep).write_text("\n".join(transcript) + "\n")

    server = await ServerProcess.start(*args)
    try:
        again = await LineClient.open(server.host, server.port)
        await again.send("NICK victim")
        await again.send("USER victim 0 * :v")
        await again.expect(r" 465 victim :You are banned from this server: e2e ban")
        assert "ERROR :Banned: e2e ban" in await again.closed()
    finally:
        assert await server.stop() == 0
