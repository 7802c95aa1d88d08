"""Network namespaces for tests: two of them joined by a veth pair, with link-local addresses.

``netns_pair()`` creates them (skipping the test when this process may not), and always deletes
them again, even when the test fails. Nothing in them reaches the host's own networks: the only
interfaces are ``lo`` and the two ends of the veth pair, addressed in 169.254.0.0/16.

:class:`NsProcess` runs a command inside a namespace and keeps reading its stderr, so a test
can wait for a log line (bounded by a timeout) without the pipe ever filling up.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from tests.harness import TIMEOUT

_counter = itertools.count()


@dataclass(frozen=True)
class NetnsPair:
    """Two namespaces ``a`` and ``b``; ``addr_a`` and ``addr_b`` are their veth addresses."""

    a: str
    b: str
    addr_a: str
    addr_b: str

    def argv(self, ns: str, *command: str) -> list[str]:
        """``command`` run inside namespace ``ns``."""
        return ["ip", "netns", "exec", ns, *command]

    def relaychat(self, ns: str, *args: str) -> list[str]:
        """``python -m relaychat ARGS`` inside ``ns``."""
        return self.argv(ns, sys.executable, "-m", "relaychat", *args)

    def run(
        self, ns: str, *args: str, timeout: float = TIMEOUT * 4
    ) -> subprocess.CompletedProcess[str]:
        """Run ``relaychat ARGS`` inside ``ns`` to completion."""
        return subprocess.run(
            self.relaychat(ns, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
        )


def clean_env() -> dict[str, str]:
    """The environment without RELAYCHAT_* settings (tests pass what they mean)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAYCHAT_")}


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


@contextmanager
def netns_pair(third_octet: int = 77) -> Iterator[NetnsPair]:
    """Create two namespaces joined by a veth pair; delete them on exit.

    Skips the test when ``ip`` is missing or namespaces may not be created here.
    """
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    tag = f"{os.getpid() % 100_000}x{next(_counter)}"
    pair = NetnsPair(
        a=f"rctest-{tag}-a",
        b=f"rctest-{tag}-b",
        addr_a=f"169.254.{third_octet}.1",
        addr_b=f"169.254.{third_octet}.2",
    )
    veth_a, veth_b = f"rv{tag}a"[:15], f"rv{tag}b"[:15]
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            result = _ip("netns", "add", ns)
            if result.returncode != 0:
                pytest.skip(f"cannot create network namespaces here: {result.stderr.strip()}")
            created.append(ns)
        steps = [
            ("link", "add", veth_a, "type", "veth", "peer", "name", veth_b),
            ("link", "set", veth_a, "netns", pair.a),
            ("link", "set", veth_b, "netns", pair.b),
            ("-n", pair.a, "addr", "add", f"{pair.addr_a}/16", "dev", veth_a),
            ("-n", pair.b, "addr", "add", f"{pair.addr_b}/16", "dev", veth_b),
            ("-n", pair.a, "link", "set", "lo", "up"),
            ("-n", pair.b, "link", "set", "lo", "up"),
            ("-n", pair.a, "link", "set", veth_a, "up", "multicast", "on"),
            ("-n", pair.b, "link", "set", veth_b, "up", "multicast", "on"),
        ]
        for step in steps:
            result = _ip(*step)
            if result.returncode != 0:
                pytest.skip(f"cannot set up the veth pair (ip {' '.join(step)}): {result.stderr}")
        yield pair
    finally:
        for ns in created:
            _ip("netns", "del", ns)  # deleting a namespace deletes its end of the veth pair


class NsProcess:
    """A long-running command (a server) whose stderr is read continuously."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, argv: Sequence[str]) -> NsProcess:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=clean_env(),
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        while raw := await self.proc.stderr.readline():
            self.log.append(raw.decode(errors="replace").rstrip())
            self._changed.set()
        self._changed.set()

    async def expect(self, pattern: str, timeout: float = TIMEOUT * 2) -> re.Match[str]:
        """Wait for a log line matching ``pattern``; fail with the log when it does not come."""
        rx = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen = 0
        while True:
            for line in self.log[seen:]:
                if m := rx.search(line):
                    return m
            seen = len(self.log)
            if self._reader.done():
                raise AssertionError(f"exited before {pattern!r}: {self.log[-10:]}")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}: {self.log[-10:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL if it hangs; return the exit code."""
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), TIMEOUT * 2)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.wait_for(self._reader, TIMEOUT)
        assert self.proc.returncode is not None
        return self.proc.returncode
