"""Issue 16: would an unindexed staging table make W4's group commit cheaper? (a measurement)

Usage (from the repository root; about a minute):

    .venv/bin/python benchmarks/staging_bench.py
    .venv/bin/python benchmarks/staging_bench.py --batches 1000 --per 350 --move-every 100

W4-shaped: batches of ``--per`` private messages spread over ``--conversations`` conversations,
one transaction each, on a fresh history file opened as the server opens it
(``open_connections(maintenance=True)``: WAL, ``synchronous=NORMAL``, no automatic checkpoint).

- ``indexed``: each batch goes into ``messages`` (what ``SqliteHistory._write`` does): every
  message's ``messages_by_key`` entry lands on its own conversation's leaf page.
- ``staging``: each batch goes into an unindexed ``staging`` table (the commit the event loop
  would make); every ``--move-every`` batches (100 ≈ one second of W4) a second connection moves
  the staged rows into ``messages`` (``INSERT ... SELECT`` ordered by the index, then ``DELETE``)
  in one transaction (what the maintenance thread would do).

Both checkpoint the WAL (PASSIVE) every 100 batches on the second connection. Printed: the
thread CPU (user + kernel, ``time.thread_time``) per stored message of the commits (the event
loop's share) and of the moves and checkpoints (the maintenance thread's), and their sum: in W4
the server is pinned to one core, so the sum is what the server pays.

Everything runs in this process, in a temporary directory, bounded in count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from relaychat.store.sqlite_schema import open_connections

COLUMNS = (
    "seq, key, time_ms, msgid, command, source, account, to_account, target, text, tags, lines,"
    " redacts"
)
STAGING = """CREATE TABLE staging (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL, time_ms INTEGER NOT NULL, msgid TEXT NOT NULL,
    command TEXT NOT NULL, source TEXT NOT NULL, account TEXT, to_account TEXT,
    target TEXT NOT NULL, text TEXT NOT NULL, tags TEXT, lines TEXT, redacts TEXT)"""
MOVE = (
    f"INSERT INTO messages ({COLUMNS}) SELECT {COLUMNS} FROM staging WHERE seq <= ?"
    " ORDER BY key, time_ms, seq"
)


def run(mode: str, batches: int, per: int, conversations: int, move_every: int) -> str:
    """One pass on a fresh file; returns the printed line."""
    with tempfile.TemporaryDirectory() as tmp:
        conns = open_connections(Path(tmp) / "history.db", maintenance=True)
        writer, maint = conns.writer, conns.maint
        assert maint is not None
        writer.execute(STAGING)
        table = "staging" if mode == "staging" else "messages"
        insert = f"INSERT INTO {table} ({COLUMNS}) VALUES ({', '.join('?' * 13)})"
        keys = [f"a{i} b{i}" for i in range(conversations)]
        base, n, ms = conns.epoch << 40, 0, 1_700_000_000_000
        text = "s1 q1 t1 ".ljust(64, "x")
        loop = maint_cpu = 0.0
        for b in range(batches):
            rows = []
            for _ in range(per):
                n += 1
                key = keys[n % conversations]
                row = (base + n, key, ms + n // 35, f"M{n:x}", "PRIVMSG", "a!u@h", None, None)
                rows.append((*row, "b", text, None, None, None))
            t0 = time.thread_time()
            writer.execute("BEGIN IMMEDIATE")
            writer.executemany(insert, rows)
            writer.execute("COMMIT")
            t1 = time.thread_time()
            loop += t1 - t0
            if mode == "staging" and (b + 1) % move_every == 0:
                maint.execute("BEGIN IMMEDIATE")
                maint.execute(MOVE, (base + n,))
                maint.execute("DELETE FROM staging WHERE seq <= ?", (base + n,))
                maint.execute("COMMIT")
            if (b + 1) % 100 == 0:
                maint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            maint_cpu += time.thread_time() - t1
        for db in (writer, conns.reader, maint):
            db.close()
    total = batches * per
    return (
        f"{mode:8s} move every {move_every:4d} batches: commits {loop / total * 1e6:6.2f} µs/msg,"
        f" moves+checkpoints {maint_cpu / total * 1e6:6.2f} µs/msg,"
        f" sum {(loop + maint_cpu) / total * 1e6:6.2f} µs/msg"
    )


def main() -> None:
    """Run ``indexed`` and ``staging`` twice each, alternating."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--per", type=int, default=350)
    parser.add_argument("--conversations", type=int, default=500)
    parser.add_argument("--move-every", type=int, default=100)
    args = parser.parse_args()
    for _ in range(2):
        for mode in ("indexed", "staging"):
            print(run(mode, args.batches, args.per, args.conversations, args.move_every))


if __name__ == "__main__":
    main()
