"""The cost of idempotency keys (docs/delivery.md): in the group commit, and in the core.

Usage (from the repository root; a few seconds):

    .venv/bin/python benchmarks/keys_bench.py
    .venv/bin/python benchmarks/keys_bench.py --messages 50000 --batch 200 --json out.json

- ``commit``: ``SqliteHistory.commit_pending`` of batches of messages (one group commit each)
  without keys, with the keys the client library makes (time first) and with random keys (what
  another client might send): the writer thread's time per commit and per message.
- ``core``: ``ServerCore.handle`` of a channel PRIVMSG from a client with the capability, with
  and without a key, to a channel of 10 (in memory, no sockets): the event loop's time per
  message.

Everything runs in this process, on a fresh file in a temporary directory, bounded in count.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import relaychat.server  # noqa: F401  (fills the command table)
from relaychat.client.guarantee import new_key
from relaychat.config import load_config
from relaychat.protocol.message import parse_bytes
from relaychat.server.core import ServerCore
from relaychat.server.idempotency import CAP, TAG
from relaychat.store.base import StoredMessage
from relaychat.store.keys import KeyRecord
from relaychat.store.memory import MemoryHistory
from relaychat.store.sqlite import SqliteHistory


def bench_commit(messages: int, batch: int, keys: Callable[[], str] | None) -> dict[str, float]:
    """Median ms per group commit of ``batch`` messages, and µs per message overall."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteHistory(Path(tmp) / "history.db", maintenance_interval=None)
        times: list[float] = []
        t0 = 1_700_000_000.0
        n = 0
        try:
            for _ in range(messages // batch):
                for _ in range(batch):
                    n += 1
                    key = keys() if keys is not None else ""
                    msg = StoredMessage(
                        msgid=f"m{n:x}",
                        time=t0 + n / 1000,
                        key="#bench",
                        source="bot!~bot@127.0.0.1",
                        account=None,
                        command="PRIVMSG",
                        target="#bench",
                        text=f"tick {n} " + "x" * 40,
                        tags={TAG: key} if key else {},
                    )
                    if key:
                        record = KeyRecord(
                            "t:" + "A" * 22,
                            key,
                            msg.time,
                            msg.source,
                            "PRIVMSG",
                            msg.text,
                            msg.tags,
                            (("#bench", msg.msgid),),
                        )
                        store.append_keyed(record, [msg])
                    else:
                        store.append(msg)
                started = time.perf_counter()
                store.commit_pending()
                times.append(time.perf_counter() - started)
        finally:
            store.close()
    return {
        "ms_per_commit_median": round(statistics.median(times) * 1000, 3),
        "us_per_message": round(sum(times) / n * 1e6, 2),
    }


def bench_core(messages: int, keyed: bool) -> dict[str, float]:
    """µs per PRIVMSG handled by the core (a 10-member channel, history in memory)."""
    config = load_config(environ={})
    core = ServerCore(config, 1_000_000.0)
    store = MemoryHistory()
    core.history = store
    core.enable_idempotency(store)

    class Peer:
        def send(self, data: bytes) -> None:
            pass

        def close(self, error: str) -> None:
            pass

    users = []
    for i in range(10):
        user = core.accept(Peer(), "127.0.0.1", core.now)
        assert user is not None
        for line in (
            "CAP LS 302",
            f"CAP REQ :message-tags echo-message {CAP}",
            f"NICK u{i}",
            f"USER u{i} 0 * :u",
            "CAP END",
            "JOIN #bench",
        ):
            core.handle(user, parse_bytes(line.encode()), core.now)
        users.append(user)
    sender = users[0]
    lines = [
        (f"@{TAG}={new_key()} " if keyed else "").encode() + b"PRIVMSG #bench :tick %d" % i
        for i in range(messages)
    ]
    parsed = [parse_bytes(line) for line in lines]
    started = time.perf_counter()
    for i, msg in enumerate(parsed):
        core.handle(sender, msg, core.now + i / 1000)
    elapsed = time.perf_counter() - started
    return {"us_per_message": round(elapsed / messages * 1e6, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per case")
    parser.add_argument("--batch", type=int, default=100, help="messages per group commit")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "commit": {
            "no keys": bench_commit(args.messages, args.batch, None),
            "library keys (time first)": bench_commit(args.messages, args.batch, new_key),
            "random keys": bench_commit(
                args.messages, args.batch, lambda: secrets.token_urlsafe(16)
            ),
        },
        "core": {
            "no key": bench_core(args.messages, False),
            "key": bench_core(args.messages, True),
        },
    }
    for part, cases in results.items():
        for name, numbers in cases.items():
            print(f"{part:7} {name:28} {json.dumps(numbers)}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
