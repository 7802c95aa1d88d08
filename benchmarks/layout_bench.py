"""Issue 16: what each index of ``messages`` costs W4's group commit (a measurement).

Usage (from the repository root; about a minute):

    .venv/bin/python benchmarks/layout_bench.py

W4-shaped batches (``--per`` private messages over ``--conversations`` conversations, one
transaction each; WAL, ``synchronous=NORMAL``, no automatic checkpoint, a PASSIVE checkpoint every
100 batches from a second connection, as the server does) into variants of the ``messages`` table:

- ``today``: the server's layout: ``messages_by_key (key, time_ms)`` and ``messages_by_msgid``;
- ``no-msgid``: without ``messages_by_msgid``;
- ``int-key``: ``messages_by_key`` on an integer conversation id instead of the key text;
- ``clustered``: ``WITHOUT ROWID``, the rows themselves ordered by ``(key, time_ms, seq)``;
- ``no-key-index``: without ``messages_by_key`` (what an unindexed append costs; readers could
  not find a conversation's messages).

Printed: thread CPU per stored message of the inserts, the commit and the checkpoints. Everything
runs in this process, in a temporary directory, bounded in count.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

COLUMNS = (
    "seq INTEGER {pk}, key TEXT NOT NULL, time_ms INTEGER NOT NULL, msgid TEXT NOT NULL,"
    " command TEXT NOT NULL, source TEXT NOT NULL, account TEXT, to_account TEXT,"
    " target TEXT NOT NULL, text TEXT NOT NULL, tags TEXT, lines TEXT, redacts TEXT,"
    " redacted INTEGER, conv INTEGER"
)
VARIANTS = ("today", "no-msgid", "int-key", "clustered", "no-key-index")


def _create(db: sqlite3.Connection, variant: str) -> None:
    if variant == "clustered":
        cols = COLUMNS.format(pk="NOT NULL")
        db.execute(f"CREATE TABLE messages ({cols}, PRIMARY KEY (key, time_ms, seq)) WITHOUT ROWID")
    else:
        db.execute(f"CREATE TABLE messages ({COLUMNS.format(pk='PRIMARY KEY')})")
    if variant in ("today", "no-msgid"):
        db.execute("CREATE INDEX messages_by_key ON messages (key, time_ms)")
    if variant == "int-key":
        db.execute("CREATE INDEX messages_by_key ON messages (conv, time_ms)")
    if variant != "no-msgid":
        db.execute("CREATE INDEX messages_by_msgid ON messages (msgid)")
    db.execute(
        "CREATE INDEX messages_redactions ON messages (key, time_ms) WHERE redacts IS NOT NULL"
    )


def run(variant: str, batches: int, per: int, conversations: int) -> str:
    """One pass on a fresh file; returns the printed line."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.db"
        db = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-16384"):
            db.execute(f"PRAGMA {pragma}")
        db.execute("PRAGMA wal_autocheckpoint=0")
        _create(db, variant)
        maint = sqlite3.connect(path, isolation_level=None)
        keys = [f"alice{i}\x00bob{i}" for i in range(conversations)]
        text = "s1 q1 t1 ".ljust(64, "x")
        insert = (
            "INSERT INTO messages (seq, key, time_ms, msgid, command, source, account,"
            " to_account, target, text, tags, lines, redacts, conv)"
            f" VALUES ({', '.join('?' * 14)})"
        )
        n, ms = 0, 1_700_000_000_000
        cost = {"insert": 0.0, "commit": 0.0, "checkpoint": 0.0}
        for b in range(batches):
            rows = []
            for _ in range(per):
                n += 1
                k = n % conversations
                rows.append(
                    (n, keys[k], ms + n // 35, f"3f9a0c{n:x}", "PRIVMSG", "alice!u@h", None,
                     None, "bob", text, None, None, None, k)
                )  # fmt: skip
            t0 = time.thread_time()
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, rows)
            t1 = time.thread_time()
            db.execute("COMMIT")
            t2 = time.thread_time()
            cost["insert"] += t1 - t0
            cost["commit"] += t2 - t1
            if (b + 1) % 100 == 0:
                maint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                cost["checkpoint"] += time.thread_time() - t2
        db.close()
        maint.close()
    total = batches * per
    parts = ", ".join(f"{k} {v / total * 1e6:5.2f}" for k, v in cost.items())
    return f"{variant:13s} {parts}, sum {sum(cost.values()) / total * 1e6:5.2f} µs/msg"


def main() -> None:
    """Every variant, twice, alternating."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--per", type=int, default=350)
    parser.add_argument("--conversations", type=int, default=500)
    args = parser.parse_args()
    for _ in range(2):
        for variant in VARIANTS:
            print(run(variant, args.batches, args.per, args.conversations), flush=True)


if __name__ == "__main__":
    main()
