"""WHO with a mask at scale: what one request costs the core with N users connected.

Usage (from the repository root):

    .venv/bin/python benchmarks/who_bench.py                  # 10,000 users
    .venv/bin/python benchmarks/who_bench.py --users 2000 --rounds 20

It drives the sans-I/O core in memory (no sockets), so the figure is the core's own cost per
request: the scan, the matching and the replies. Every user is registered with its own nick,
host and realname; a tenth of them are invisible (+i). Each mask is asked ``--rounds`` times by
a user sharing no channel with the others. Printed, as medians: the whole request (every part
of a scan answered in parts, as a client reading at once gets them: the server's cost), and its
longest part (how long the event loop is held at once: what a bystander may wait).
"""

from __future__ import annotations

import argparse
import statistics
import time

from relaychat.config import load_config
from relaychat.protocol.message import parse
from relaychat.server import commands as _commands  # noqa: F401  (fills the command table)
from relaychat.server.core import ServerCore

MASKS = (
    ("exact nick", "user5000"),
    ("nick prefix, few matches", "user99*"),
    ("nick prefix, many matches", "user*"),
    ("no match", "nobody*here"),
    ("host mask", "*.0.0.1"),
    ("realname mask", ":*Real 42*"),
    ("common literal, no match", "*Real"),
    ("everyone", "*"),
    ("whox, no match", "nobody* %nuhaf"),
    ("?-mask, no match", "n?body*"),
)


class NullPeer:
    """A peer that only counts what it is sent."""

    def __init__(self) -> None:
        self.lines = 0

    def send(self, data: bytes) -> None:
        self.lines += data.count(b"\n")

    def close(self, error: str) -> None:
        pass


def build(users: int) -> tuple[ServerCore, object]:
    config = load_config(environ={}, overrides={"limits.max_clients": users + 1})
    core = ServerCore(config, 1_000_000.0)
    for i in range(users):
        user = core.accept(NullPeer(), f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", core.now)
        assert user is not None
        core.handle(user, parse(f"NICK user{i}"), core.now)
        core.handle(user, parse(f"USER u{i} 0 * :Real {i} Name"), core.now)
        if i % 10 == 0:
            core.handle(user, parse(f"MODE user{i} +i"), core.now)
    asker = core.accept(NullPeer(), "127.0.0.1", core.now)
    assert asker is not None
    core.handle(asker, parse("NICK asker"), core.now)
    core.handle(asker, parse("USER asker 0 * :Asker"), core.now)
    return core, asker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    core, asker = build(args.users)
    print(f"{args.users} users; median of {args.rounds} requests each")
    print(f"{'mask':<28} {'ms/request':>10} {'longest part':>12} {'parts':>5} {'replies':>8}")
    for label, mask in MASKS:
        times, longest = [], []
        peer = asker.peer  # type: ignore[attr-defined]
        for _ in range(args.rounds):
            before = peer.lines
            t0 = time.perf_counter()
            core.handle(asker, parse(f"WHO {mask}"), core.now)  # type: ignore[arg-type]
            worst = time.perf_counter() - t0
            parts = 1
            while getattr(asker, "stream", None) is not None:  # answered in parts (who.py)
                t1 = time.perf_counter()
                core.writable(asker, core.now)  # type: ignore[arg-type]
                worst = max(worst, time.perf_counter() - t1)
                parts += 1
            times.append(time.perf_counter() - t0)
            longest.append(worst)
            lines = peer.lines - before
        print(
            f"{label:<28} {statistics.median(times) * 1000:>10.2f}"
            f" {statistics.median(longest) * 1000:>12.2f} {parts:>5} {lines:>8}"
        )


if __name__ == "__main__":
    main()
