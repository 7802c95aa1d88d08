"""1,000 concurrent clients against the real `relaychat serve` process: every message reaches
every member of the channel."""

from __future__ import annotations

import asyncio
import time

from relaychat.server.listeners import raise_fd_limit
from tests.harness import TIMEOUT, ServerProcess

CLIENTS = 1000
SENDERS = 20
PER_SENDER = 5


class Member:
    def __init__(self, index: int) -> None:
        self.nick = f"u{index:04d}"
        self.joined = asyncio.Event()
        self.got: set[str] = set()
        self.buffer = b""
        self.done = asyncio.Event()
        self.expected = 0

    async def run(self, host: str, port: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        self.writer = writer
        writer.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :load\r\nJOIN #big\r\n".encode())
        end_of_names = f" 366 {self.nick} #big ".encode()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            data = self.buffer + chunk
            lines = data.split(b"\r\n")
            self.buffer = lines.pop()
            for line in lines:
                if line.startswith(b"PING "):
                    writer.write(b"PONG " + line[5:] + b"\r\n")
                elif b" PRIVMSG #big :" in line:
                    self.got.add(line.split(b" :", 1)[1].decode())
                    if self.expected and len(self.got) >= self.expected:
                        self.done.set()
                elif end_of_names in line:
                    self.joined.set()


async def test_thousand_clients_every_message_delivered() -> None:
    raise_fd_limit(4 * CLIENTS)
    server = await ServerProcess.start(
        "--max-per-ip",
        "0",
        "--throttle-connect-per-minute",
        "0",
        "--flood-rate",
        "0",
        "--sendq",
        str(4 << 20),
    )
    members = [Member(i) for i in range(CLIENTS)]
    tasks = []
    try:
        started = time.monotonic()
        for i in range(0, CLIENTS, 100):
            batch = members[i : i + 100]
            tasks += [asyncio.create_task(m.run(server.host, server.port)) for m in batch]
            await asyncio.wait_for(asyncio.gather(*(m.joined.wait() for m in batch)), TIMEOUT * 6)
        joined_after = time.monotonic() - started
        senders = members[:SENDERS]
        texts = {s.nick: [f"hello from {s.nick} #{k}" for k in range(PER_SENDER)] for s in senders}
        every = {t for ts in texts.values() for t in ts}
        for m in members:
            m.expected = len(every) - len(texts.get(m.nick, []))
            if len(m.got) >= m.expected:
                m.done.set()
        for s in senders:
            s.writer.write("".join(f"PRIVMSG #big :{t}\r\n" for t in texts[s.nick]).encode())
        await asyncio.wait_for(asyncio.gather(*(m.done.wait() for m in members)), TIMEOUT * 12)
        for m in members:
            assert m.got == every - set(texts.get(m.nick, [])), m.nick
        assert joined_after < TIMEOUT * 12
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for m in members:
            if hasattr(m, "writer"):
                m.writer.close()
        assert await server.stop() == 0
