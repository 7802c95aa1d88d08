"""Test helpers shared by every tier.

- :class:`CoreHarness` drives a :class:`ServerCore` in memory: ``connect("alice")`` registers a
  client, ``send("alice", "JOIN #a")`` feeds a line, ``lines("alice")`` takes what it was sent.
- :class:`LineClient` is a minimal asyncio IRC client over a real socket, with ``expect``.
- :func:`free_config` builds a Config for a server on 127.0.0.1 with an ephemeral port.
- ``TIMEOUT`` scales every wait with ``RELAYCHAT_TESTS_TIMEOUT_FACTOR`` (slow CI machines).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import replace
from typing import Any

from relaychat.config import SECTIONS, Config, load_config
from relaychat.errors import ProtocolError
from relaychat.protocol.message import Message, parse, parse_from_client
from relaychat.server.core import ServerCore
from relaychat.server.state import User

TIMEOUT = 5.0 * float(os.environ.get("RELAYCHAT_TESTS_TIMEOUT_FACTOR", "1"))


def scratch_dir() -> str:
    """A new empty directory for a server's data (history, accounts), never the user's own."""
    return tempfile.mkdtemp(prefix="relaychat-test-")


def free_config(**kwargs: Any) -> Config:
    """A config for tests: loopback, port 0, a scratch data dir, no flood throttle and no
    connection-rate limit unless asked, no plain-text or HTTP port.

    A section given as a dict (``limits={"monitor": 3}``, ``metadata={...}``) changes only
    those keys of the section.
    """
    limits = kwargs.pop("limits", {})
    base = load_config(
        environ={},
        overrides={
            "host": "127.0.0.1",
            "port": 0,
            "plain_port": 0,
            "http.port": 0,
            "data_dir": scratch_dir(),
        },
    )
    lim = replace(base.limits, **{"flood_rate": 0.0, **limits})
    if isinstance(kwargs.get("throttle"), dict):
        kwargs["throttle"] = {"connect_per_minute": 0.0, **kwargs["throttle"]}
    elif "throttle" not in kwargs:
        kwargs["throttle"] = {"connect_per_minute": 0.0}
    for name in SECTIONS:
        if isinstance(kwargs.get(name), dict):
            kwargs[name] = replace(getattr(base, name), **kwargs[name])
    return replace(base, limits=lim, **kwargs)


def memory_config() -> Config:
    """The defaults, but no limit on the rate of new connections (tests connect many users
    from one address at one instant; ``throttle.connect_*`` has its own tests)."""
    base = load_config(environ={})
    return replace(base, throttle=replace(base.throttle, connect_per_minute=0.0))


class MemoryPeer:
    """A Peer that records what the core sends."""

    def __init__(self) -> None:
        self.buffer = b""
        self.closed: str | None = None

    def send(self, data: bytes) -> None:
        assert self.closed is None, "send after close"
        self.buffer += data

    def close(self, error: str) -> None:
        assert self.closed is None, "closed twice"
        self.closed = error

    def take(self) -> list[str]:
        data, self.buffer = self.buffer, b""
        return [line.decode() for line in data.split(b"\r\n") if line]


class CoreHarness:
    """An in-memory server with named clients; time moves only when the test says so."""

    def __init__(self, config: Config | None = None, now: float = 1_000_000.0) -> None:
        self.config = config or memory_config()
        self.now = now
        self.core = ServerCore(self.config, now)
        self.peers: dict[str, MemoryPeer] = {}
        self.users: dict[str, User] = {}
        #: Play a client that reads everything at once: a streamed answer (a long LIST) is
        #: carried on to its end after each line sent (``False``: the test calls ``drain``).
        self.pump = True

    def open(self, name: str, ip: str = "127.0.0.1") -> User | None:
        """A new unregistered connection called ``name`` (only a test label)."""
        peer = MemoryPeer()
        self.peers[name] = peer
        user = self.core.accept(peer, ip, self.now)
        if user is not None:
            self.users[name] = user
        return user

    def connect(self, nick: str, ip: str = "127.0.0.1", realname: str = "Test User") -> User:
        """Open and register a client whose nick is ``nick``; its welcome burst is discarded."""
        user = self.open(nick, ip)
        assert user is not None
        self.send(nick, f"NICK {nick}")
        self.send(nick, f"USER {nick.lower()} 0 * :{realname}")
        assert user.registered, self.lines(nick)
        self.lines(nick)
        return user

    def send(self, name: str, line: str | bytes) -> None:
        """Feed one line from ``name`` to the core, as the transport would."""
        raw = line.encode() if isinstance(line, str) else line
        user = self.users[name]
        try:
            msg = parse_from_client(raw)
        except ProtocolError as exc:
            self.core.protocol_error(user, exc, self.now)
            return
        self.core.handle(user, msg, self.now)
        if self.pump:
            while self.drain(name):
                pass

    def drain(self, name: str) -> bool:
        """``name``'s output was read: send the next part of its streamed answer, if any.

        Returns:
            Whether a part was pending.
        """
        user = self.users[name]
        if user.stream is None or user.quitting:
            return False
        self.core.writable(user, self.now)
        return True

    def lines(self, name: str) -> list[str]:
        """Everything sent to ``name`` since the last call."""
        return self.peers[name].take()

    def messages(self, name: str) -> list[Message]:
        return [parse(line) for line in self.lines(name)]

    def numerics(self, name: str) -> list[str]:
        """The commands (numerics and verbs) of what ``name`` was sent since the last call."""
        return [m.command for m in self.messages(name)]

    def clear(self) -> None:
        for peer in self.peers.values():
            peer.take()

    def advance(self, seconds: float) -> None:
        """Move the clock and run the keepalive tick."""
        self.now += seconds
        self.core.tick(self.now)


class LineClient:
    """A small IRC client over a real socket, for integration tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: list[str] = []

    @classmethod
    async def open(cls, host: str, port: int, **kwargs: Any) -> LineClient:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20, **kwargs)
        return cls(reader, writer)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def readline(self, timeout: float = TIMEOUT) -> str:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise ConnectionError("connection closed")
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        self.seen.append(line)
        return line

    async def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """Read lines until one matches ``pattern`` (a regex searched in the line)."""
        rx = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; last: {self.seen[-5:]}")
            try:
                line = await self.readline(remaining)
            except TimeoutError:
                raise AssertionError(
                    f"timed out waiting for {pattern!r}; last: {self.seen[-5:]}"
                ) from None
            m = rx.search(line)
            if m:
                return m

    async def cap_ls(self) -> dict[str, str]:
        """Send ``CAP LS 302`` and read every line of the answer (a 302 LS spans several lines,
        all but the last marked ``*``); return the capabilities offered, name -> value."""
        await self.send("CAP LS 302")
        offered: dict[str, str] = {}
        while True:
            m = await self.expect(r" CAP \S+ LS (\* )?:?(.*)$")
            for word in m.group(2).split():
                name, _, value = word.partition("=")
                offered[name] = value
            if m.group(1) is None:
                return offered

    async def register(self, nick: str) -> None:
        await self.send(f"NICK {nick}")
        await self.send(f"USER {nick} 0 * :{nick}")
        await self.expect(r" 001 ")
        await self.expect(r" (376|422) ")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def closed(self, timeout: float = TIMEOUT) -> list[str]:
        """Read until EOF; return the lines read on the way."""
        out: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                out.append(await self.readline(max(0.01, deadline - loop.time())))
            except ConnectionError:
                return out
            except TimeoutError:
                raise AssertionError(f"connection still open; read {out[-5:]}") from None


class ServerProcess:
    """The real ``relaychat serve`` command in a subprocess, on an ephemeral port."""

    def __init__(self, proc: asyncio.subprocess.Process, host: str, port: int) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        """Start ``relaychat serve --port 0 ARGS`` and wait until it listens."""
        import sys

        full_env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}
        full_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "relaychat",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *(() if "--plain-port" in args else ("--plain-port", "0")),
            *(() if "--http-port" in args else ("--http-port", "0")),
            *(() if "--data-dir" in args else ("--data-dir", scratch_dir())),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=full_env,
        )
        assert proc.stderr is not None
        log: list[str] = []
        rx = re.compile(r"listening on (\S+) port (\d+)")
        while True:
            raw = await asyncio.wait_for(proc.stderr.readline(), TIMEOUT * 2)
            if not raw:
                raise AssertionError(f"server exited early: {log}")
            line = raw.decode(errors="replace").rstrip()
            log.append(line)
            m = rx.search(line)
            if m:
                server = cls(proc, m.group(1), int(m.group(2)))
                server.log = log
                # Keep reading its log, so a chatty server never blocks on a full pipe.
                server._drain = asyncio.create_task(server._read_log())
                return server

    async def _read_log(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.log.append(raw.decode(errors="replace").rstrip())

    async def kill(self) -> None:
        """SIGKILL (``kill -9``): no shutdown, no flush; wait until it is gone."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        if self._drain is not None:
            await asyncio.wait({self._drain}, timeout=TIMEOUT)

    async def stop(self) -> int:
        """SIGTERM, wait for the exit; return the exit code (killing it if it hangs)."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT * 2)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode
