"""A real ``nats-server -js`` for the cluster tests, and configs for relaychat nodes on it.

Tests start their own NATS server on a free loopback port with a scratch store directory and
stop it after; without ``nats-server`` on the machine they are skipped (``.ci/run`` installs
Debian's package when it can).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import replace
from typing import Any

import pytest

from relaychat.config import Cluster, Config
from tests.harness import TIMEOUT, free_config


def nats_binary() -> str | None:
    """The nats-server executable, or ``None``."""
    found = shutil.which("nats-server")
    if found is None and os.access("/usr/sbin/nats-server", os.X_OK):
        found = "/usr/sbin/nats-server"
    return found


needs_nats = pytest.mark.skipif(
    nats_binary() is None,
    reason="nats-server is not installed (apt-get install nats-server; .ci/run does it)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One ``nats-server -js`` process on 127.0.0.1 (optionally one of a NATS cluster)."""

    def __init__(self, *, port: int | None = None, store: str | None = None) -> None:
        self.port = port or free_port()
        self.store = store or tempfile.mkdtemp(prefix="relaychat-nats-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        binary = nats_binary()
        assert binary is not None
        args = ["-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store, *self.extra]
        self.proc = subprocess.Popen(
            [binary, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10 * TIMEOUT
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


def node_config(url: str, prefix: str, node: str, **kwargs: Any) -> Config:
    """A relaychat node for tests: loopback, free ports, fast heartbeats and timeouts."""
    cluster = kwargs.pop("cluster", {})
    base = free_config(**kwargs)
    settings = {
        "url": url,
        "node_name": node,
        "prefix": prefix,
        "heartbeat": 0.5,
        "node_timeout": 3.0,
        "ack_timeout": 3.0,
        **cluster,
    }
    return replace(base, server_name=f"{node}.test", cluster=Cluster(**settings))


def new_prefix() -> str:
    """A network of its own on a shared NATS server."""
    return "t" + secrets.token_hex(4)
