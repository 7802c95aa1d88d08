"""The admin socket's request handling (server/admin.py), without a socket: bad requests get one
clear error, never an exception."""

from __future__ import annotations

from typing import Any

import pytest

from relaychat.server.admin import AdminServer
from tests.unit.core_support import harness


class FakeServer:
    def __init__(self) -> None:
        self.h = harness()
        self.core = self.h.core
        self.ops = None

    def addresses_of(self, kind: str) -> list[tuple[str, int]]:
        return [("127.0.0.1", 6667)] if kind == "irc" else []


@pytest.fixture
def admin() -> AdminServer:
    return AdminServer(FakeServer(), None)  # type: ignore[arg-type]


def ask(admin: AdminServer, line: bytes) -> dict[str, Any]:
    return admin.handle(line)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"", "expected one JSON request line"),
        (b"x" * 5000, "expected one JSON request line"),
        (b"{nope", "the request is not JSON"),
        (b"[]", 'the request needs a "command"'),
        (b'{"command": "fly"}', "unknown command 'fly'"),
        (b'{"command": "kill"}', '"nick" is required'),
        (b'{"command": "kline", "mask": "*@*"}', "would match every host"),
        (b'{"command": "kline", "mask": "*@x.y", "duration": "soon"}', "is not a duration"),
        (b'{"command": "undline", "mask": "10.0.0.1"}', "no D-line on 10.0.0.1"),
        (b'{"command": "reload"}', "this server cannot reload"),
    ],
)
def test_bad_requests(admin: AdminServer, line: bytes, error: str) -> None:
    reply = ask(admin, line)
    assert reply["ok"] is False and error in reply["error"]


def test_status_users_kill_kline(admin: AdminServer) -> None:
    h = admin.server.h  # type: ignore[attr-defined]
    h.connect("alice", ip="192.0.2.1")
    h.send("alice", "JOIN #a")
    status = ask(admin, b'{"command": "status"}')["result"]
    assert (status["users"], status["channels"], status["listening"]) == (
        1,
        1,
        ["irc 127.0.0.1:6667"],
    )
    users = ask(admin, b'{"command": "users"}')["result"]
    assert [(u["nick"], u["ip"], u["channels"]) for u in users] == [("alice", "192.0.2.1", ["#a"])]
    reply = ask(admin, b'{"command": "kline", "mask": "*@192.0.2.0/24", "duration": "1h"}')
    assert reply["ok"] and "1 connection(s) closed" in reply["result"]
    assert h.peers["alice"].closed == "Banned: No reason given"
    assert h.core.bans.klines["*@192.0.2.0/24"].set_by == "admin"
