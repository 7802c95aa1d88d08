"""A real terminal IRC client, irssi, driven in tmux against the real ``relaychat serve``.

irssi runs in a detached tmux session on a private tmux socket, with a throwaway ``--home`` whose
config points it at the server. The test types into it with ``send-keys`` and reads its screen
with ``capture-pane``; a LineClient in the same channel is the other side of the chat.

Skipped when irssi or tmux is not installed (``.ci/run`` installs both when it can).
Set ``RELAYCHAT_IRSSI_TRANSCRIPT=/path/file.txt`` to keep what irssi's screen showed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.harness import TIMEOUT, LineClient, ServerProcess

IRSSI = shutil.which("irssi")
TMUX = shutil.which("tmux")

pytestmark = pytest.mark.skipif(
    IRSSI is None or TMUX is None,
    reason="irssi and tmux are needed (apt-get install irssi tmux)",
)

NICK = "irssinick"

CONFIG = """\
servers = (
  {{
    address = "{host}";
    chatnet = "relaytest";
    port = "{port}";
    use_tls = "no";
    tls_verify = "no";
    autoconnect = "yes";
  }}
);
chatnets = {{ relaytest = {{ type = "IRC"; }}; }};
settings = {{
  core = {{
    real_name = "irssi e2e";
    user_name = "irssi";
    nick = "{nick}";
  }};
  # irssi's flood control sends 5 commands at once, then one per 2.2 s; registration alone
  # takes 6, which would hold /join back for seconds. Let a burst through.
  "irc/core" = {{ cmds_max_at_once = "20"; }};
  "fe-common/core" = {{ timestamps = "no"; }};
}};
"""


class Tmux:
    """One tmux server on a private socket, holding one session; only this test uses it."""

    def __init__(self, socket: Path, session: str = "irssi") -> None:
        self.socket = socket
        self.session = session

    async def run(self, *args: str, output: bool = True) -> str:
        """Run one tmux command against this socket; return its output.

        With ``output=False`` the output is discarded: a command that starts the tmux server
        must not be given pipes, which the daemonised server would keep open.
        """
        assert TMUX is not None
        env = {**os.environ, "TERM": os.environ.get("TERM") or "xterm-256color"}
        pipe = asyncio.subprocess.PIPE if output else asyncio.subprocess.DEVNULL
        proc = await asyncio.create_subprocess_exec(
            TMUX,
            "-S",
            str(self.socket),
            "-f",
            "/dev/null",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=pipe,
            stderr=pipe,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
        except TimeoutError:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            raise AssertionError(f"tmux {args[0]} hung") from None
        if proc.returncode != 0:
            detail = err.decode(errors="replace") if err else ""
            raise AssertionError(f"tmux {' '.join(args)} failed ({proc.returncode}): {detail}")
        return out.decode(errors="replace") if out else ""

    async def start(self, *command: str, width: int = 100, height: int = 30) -> None:
        await self.run(
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            str(width),
            "-y",
            str(height),
            *command,
            output=False,
        )

    async def type(self, text: str) -> None:
        """Type ``text`` literally, then Enter."""
        await self.run("send-keys", "-t", self.session, "-l", text)
        await self.run("send-keys", "-t", self.session, "Enter")

    async def screen(self) -> str:
        """What the session's current window shows now."""
        return await self.run("capture-pane", "-p", "-J", "-t", self.session)

    async def wait_screen(self, pattern: str, timeout: float = TIMEOUT) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; return the screen.

        A terminal gives no event to await, so this polls, bounded by ``timeout``.
        """
        rx = re.compile(pattern, re.MULTILINE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            text = await self.screen()
            if rx.search(text):
                return text
            if loop.time() > deadline:
                raise AssertionError(f"irssi never showed {pattern!r}; screen:\n{text}")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        """Stop this tmux server (and irssi in it), if it is still running."""
        try:
            await self.run("kill-server")
        except AssertionError:
            pass  # already gone: irssi quit and the session ended


def trimmed(screen: str) -> str:
    """The screen with runs of blank lines squeezed to one, for a readable transcript."""
    lines = [line.rstrip() for line in screen.strip("\n").splitlines()]
    return "\n".join(line for i, line in enumerate(lines) if line or (i > 0 and lines[i - 1]))


async def test_irssi_joins_and_chats(tmp_path: Path) -> None:
    server = await ServerProcess.start()
    home = tmp_path / "irssi-home"
    home.mkdir()
    (home / "config").write_text(CONFIG.format(host=server.host, port=server.port, nick=NICK))
    tmux = Tmux(tmp_path / "tmux.sock")
    bob: LineClient | None = None
    transcript: list[str] = []
    try:
        bob = await LineClient.open(server.host, server.port)
        await bob.register("bob")
        await bob.send("JOIN #test")
        await bob.expect(r" 366 bob #test ")

        assert IRSSI is not None
        await tmux.start(IRSSI, f"--home={home}")
        # The status window: irssi connected, negotiated CAP and registered.
        connected = await tmux.wait_screen(r"MOTD File is missing|End of /MOTD", TIMEOUT * 2)
        assert re.search(
            rf"Welcome to the relaychat IRC Network {NICK}!~?irssi@127\.0\.0\.1", connected
        )
        transcript += ["== irssi status window: connect and register ==", trimmed(connected)]

        await tmux.type("/join #test")
        await bob.expect(rf"^:{NICK}!~?irssi@127\.0\.0\.1 JOIN #test$")
        await tmux.wait_screen(rf"{NICK} \[~?irssi@127\.0\.0\.1\] has joined #test")
        await tmux.wait_screen(r"Total of 2 nicks")

        await tmux.type("hello from irssi: is anyone here?")
        await bob.expect(rf"^:{NICK}!\S+ PRIVMSG #test :hello from irssi: is anyone here\?$")

        await bob.send("PRIVMSG #test :hi irssi, bob here: loud and clear")
        await tmux.wait_screen(r"<.?bob> hi irssi, bob here: loud and clear")

        await bob.send("NICK robert")
        await tmux.wait_screen(r"bob is now known as robert")
        await bob.send("PRIVMSG #test :same person, new name")
        chat = await tmux.wait_screen(r"<.?robert> same person, new name")
        transcript += [
            "",
            "== irssi #test window: join and chat with a second client ==",
            trimmed(chat),
        ]

        await tmux.type("/quit see you")
        await bob.expect(rf"^:{NICK}!\S+ QUIT :Quit: see you$")
    finally:
        await tmux.kill()
        if bob is not None:
            await bob.close()
        code = await server.stop()
        out = os.environ.get("RELAYCHAT_IRSSI_TRANSCRIPT")
        if out and transcript:
            Path(out).write_text("\n".join(transcript) + "\n")
    assert code == 0, server.log[-5:]
