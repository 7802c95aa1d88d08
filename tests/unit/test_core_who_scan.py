"""WHO with a mask is a bounded scan (issue 17 item 10): it examines ``WHO_PART`` users per part,
each part sent once the asker's output has drained, so one WHO never holds the loop for a pass
over every user; the asker's later commands wait for its end, other clients do not."""

from __future__ import annotations

import pytest

from relaychat.protocol.message import parse
from relaychat.server.commands import who as who_module
from tests.unit.core_support import harness

PART = 10
USERS = 35


@pytest.fixture(autouse=True)
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(who_module, "WHO_PART", PART, raising=False)


def test_a_scan_comes_in_parts_and_holds_only_the_asker() -> None:
    h = harness()
    for i in range(USERS):
        h.connect(f"user{i}")
    h.pump = False  # the test says when the asker's output has drained
    h.send("user0", "WHO *test*")  # every realname is "Test User"
    first = [parse(line) for line in h.lines("user0")]
    assert [m.command for m in first] == ["352"] * PART  # one part: no 315 yet
    assert h.users["user0"].stream is not None
    h.send("user0", "PING :after")  # held until the WHO is done
    h.send("user1", "WHO user2")  # another client is answered at once
    assert h.numerics("user1") == ["352", "315"]
    h.send("user34", "QUIT :bye")  # gone before its part: not listed
    h.lines("user0")
    parts = 1
    while h.drain("user0"):
        parts += 1
    rest = [parse(line) for line in h.lines("user0")]
    assert parts == 4  # 35 users (and the asker among them), 10 a part
    listed = [m.params[5] for m in first + rest if m.command == "352"]
    assert sorted(listed) == sorted(f"user{i}" for i in range(USERS - 1))
    assert [m.command for m in rest][-2:] == ["315", "PONG"]  # the held PING, in its turn


def test_the_cap_ends_the_scan_early() -> None:
    h = harness(limits={"who_results": 15})
    for i in range(USERS):
        h.connect(f"user{i}")
    h.pump = False
    h.send("user0", "WHO user*")
    parts = 1
    while h.drain("user0"):
        parts += 1
    lines = h.lines("user0")
    assert parts == 2  # stopped at the 16th match: no pass over the rest
    assert [parse(line).command for line in lines] == ["352"] * 15 + ["315"]
    assert lines[-1].endswith(":End of WHO list (only the first 15 matches: narrow the mask)")


def test_a_small_server_answers_in_one_part() -> None:
    h = harness()
    for i in range(PART - 1):
        h.connect(f"user{i}")
    h.pump = False
    h.send("user0", "WHO user*")
    assert h.numerics("user0") == ["352"] * (PART - 1) + ["315"]
    assert h.users["user0"].stream is None and not h.users["user0"].busy
