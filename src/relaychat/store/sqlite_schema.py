"""The SQLite history file: its schema, its opening and its migrations (for ``store/sqlite.py``).

Rules:
1. Everything that knows the file's layout on disk lives here: the DDL, :data:`SCHEMA_VERSION`,
   the pragmas each connection gets, and the step from every older version to the current one.
   ``sqlite.py`` and ``sqlite_retention.py`` only read and write rows.
2. Opening is one ``BEGIN IMMEDIATE`` transaction on the writer: create or check the schema,
   migrate it if it is older, take a new epoch. Migrations are steps (:data:`STEPS`), one per
   version, each applied when the stored version is below it, in order: a new file is made at
   version 2 (:data:`SCHEMA`) and then takes every later step, like an old file. A file with a
   newer schema, an empty or damaged ``schema_version`` table, or no database at all is refused
   with :class:`StoreError`.
3. Positions: ``seq`` is ``epoch << 40 | n``, where every opening of the file takes a new epoch
   from the ``instances`` table, so two servers wrongly sharing a file never collide, and a
   restarted server's messages sort after the previous run's.
4. Connections: the writer is in WAL mode with ``synchronous=NORMAL`` (see ``sqlite.py`` rule 3);
   the reader is ``query_only``; with a maintenance thread, a third connection checkpoints and
   the writer's automatic checkpoint is off.

Schema (version :data:`SCHEMA_VERSION`, in the ``schema_version`` table)::

    messages(seq PK, key, time_ms, msgid, command, source, account, to_account, target, text,
             tags)                        index (key, time_ms [, seq]), index (msgid)
    conversations(key PK, a, b, count, trimmed_ms, trimmed_seq, latest_ms, latest_seq)
                                          a, b: the two folded nicks of a private conversation
                                          latest_*: its newest message (v3), kept by commits;
                                          index (a, latest_ms), index (b, latest_ms)
    counted(seq)                          ``count`` covers the messages up to this seq
    instances(epoch PK autoincrement, opened_ms)

Steps, each applied in the opening transaction when the file's version is below its number
(a new file is created at version 2 and takes every later step the same way, so steps from
different branches compose in numeric order); none rewrites a row:

- 1 -> 2: ``conversations.latest_seq`` and counts kept by every commit become ``counted``.
- 3 (:func:`_step_3`): each conversation's newest message, for CHATHISTORY TARGETS in one
  indexed query; rows of conversations whose messages retention deleted are dropped::

    conversations + latest_ms INTEGER, latest_seq INTEGER   (kept by every commit)
                  index (a, latest_ms) WHERE a IS NOT NULL, index (b, latest_ms) WHERE b ...

  (also applied to a file whose version is 3 or more but lacks the columns: one made by a
  build without this step)
- 4 (:func:`_step_4`): ``draft/multiline``, ``draft/message-redaction`` and
  ``draft/read-marker``::

    messages + lines TEXT         a multiline message's concat flags, one '0'/'1' per line
             + redacts TEXT       a REDACT record: the msgid it redacts
             + redacted INTEGER   1 once redacted (text and tags are cleared)
                                  index (key, time_ms) WHERE redacts IS NOT NULL
    read_markers(owner, target, time_ms)   PK (owner, target); owner: the folded account

- 5 (:func:`_step_5`): idempotency keys (``store/keys.py``, ``sqlite_keys.py``)::

    idem_keys(sender, key, time_ms, source, command, text, tags, sent)   PK (sender, key)
                                          index (time_ms)
    idem_secret(secret)                   one row: the server's token secret
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from relaychat.store.base import StoreError, is_private

__all__ = [
    "EPOCH_SHIFT",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STEPS",
    "Connections",
    "connect",
    "conversation_row",
    "describe",
    "migrate",
    "open_connections",
]

log = logging.getLogger("relaychat.store")

SCHEMA_VERSION = 5
#: The version :data:`SCHEMA` makes; the steps above it follow.
BASE_VERSION = 2
#: ``seq`` is ``epoch << EPOCH_SHIFT | n`` (rule 3).
EPOCH_SHIFT = 40

SCHEMA = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE instances (epoch INTEGER PRIMARY KEY AUTOINCREMENT, opened_ms INTEGER NOT NULL)",
    """CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        msgid TEXT NOT NULL,
        command TEXT NOT NULL,
        source TEXT NOT NULL,
        account TEXT,
        to_account TEXT,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        tags TEXT
    )""",
    # The rowid (seq) is the implicit last column: the index orders by (key, time_ms, seq).
    "CREATE INDEX messages_by_key ON messages (key, time_ms)",
    "CREATE INDEX messages_by_msgid ON messages (msgid)",
    """CREATE TABLE conversations (
        key TEXT PRIMARY KEY,
        a TEXT,
        b TEXT,
        count INTEGER NOT NULL DEFAULT 0,
        trimmed_ms INTEGER,
        trimmed_seq INTEGER
    ) WITHOUT ROWID""",
    "CREATE INDEX conversations_by_a ON conversations (a) WHERE a IS NOT NULL",
    "CREATE INDEX conversations_by_b ON conversations (b) WHERE b IS NOT NULL",
    "CREATE TABLE counted (seq INTEGER NOT NULL)",
)

#: Step 4 (see the module docstring): multiline, redaction and read markers.
STEP_4 = (
    "ALTER TABLE messages ADD COLUMN lines TEXT",
    "ALTER TABLE messages ADD COLUMN redacts TEXT",
    "ALTER TABLE messages ADD COLUMN redacted INTEGER",
    "CREATE INDEX messages_redactions ON messages (key, time_ms) WHERE redacts IS NOT NULL",
    """CREATE TABLE read_markers (
        owner TEXT NOT NULL,
        target TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (owner, target)
    ) WITHOUT ROWID""",
)


class Connections(NamedTuple):
    """An opened history file (see :func:`open_connections`)."""

    writer: sqlite3.Connection
    reader: sqlite3.Connection
    #: The maintenance thread's connection, or ``None`` without a thread.
    maint: sqlite3.Connection | None
    #: This opening's epoch (rule 3).
    epoch: int
    #: The newest stored ``time_ms`` (0 for an empty file).
    last_ms: int


def open_connections(path: Path, *, maintenance: bool) -> Connections:
    """Open ``path`` (creating it if needed): writer, reader and, with ``maintenance``, the
    maintenance connection; create, check or migrate the schema and take a new epoch.

    Raises:
        StoreError: the file cannot be opened, is not a database, or has a newer schema.
    """
    writer: sqlite3.Connection | None = None
    try:
        writer = connect(path)
        mode = writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning("%s: WAL mode unavailable (journal mode %s)", path, mode)
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute("PRAGMA cache_size=-16384")  # 16 MiB: index pages stay cached
        epoch, last_ms = migrate(writer, path)
        reader = connect(path)
        reader.execute("PRAGMA query_only=ON")
        maint: sqlite3.Connection | None = None
        if maintenance:
            maint = connect(path)  # checkpoints, off the writer's path
            writer.execute("PRAGMA wal_autocheckpoint=0")
            writer.execute("PRAGMA journal_size_limit=67108864")
    except (sqlite3.Error, StoreError) as exc:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()
        if isinstance(exc, StoreError):
            raise
        raise StoreError(str(path), describe(exc)) from None
    return Connections(writer, reader, maint, epoch, last_ms)


def connect(path: Path) -> sqlite3.Connection:
    """One autocommit connection to ``path``, usable from any thread, waiting 30 s on locks."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def migrate(db: sqlite3.Connection, path: Path) -> tuple[int, int]:
    """Create or check the schema; take a new epoch. Returns (epoch, newest time_ms)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        found = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if found is None:
            for statement in SCHEMA:
                db.execute(statement)
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (BASE_VERSION,))
            db.execute("INSERT INTO counted (seq) VALUES (0)")
            version = BASE_VERSION
        else:
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    str(path),
                    f"schema version {version} is newer than this relaychat understands "
                    f"({SCHEMA_VERSION}); upgrade relaychat or use another --data-dir",
                )
            if version < 1:
                raise StoreError(str(path), "schema_version table is empty or damaged")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            STEPS[step](db)
            db.execute("UPDATE schema_version SET version = ?", (step,))
            if found is not None:
                log.info("history store migrated to schema version %d", step)
        if version >= 3 and not _has_column(db, "conversations", "latest_ms"):
            _step_3(db)  # a file from a build without step 3
        cur = db.execute("INSERT INTO instances (opened_ms) VALUES (?)", (int(time.time() * 1000),))
        epoch = int(cur.lastrowid or 0)
        row = db.execute("SELECT time_ms FROM messages ORDER BY seq DESC LIMIT 1").fetchone()
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise
    return epoch, int(row[0]) if row else 0


def _migrate_v1(db: sqlite3.Connection) -> None:
    """Version 1 -> 2, inside the opening transaction: counts were exact for every message
    (every commit kept them), so ``counted`` starts at the newest message; ``latest_seq`` stays
    in the table (version 3 fills it again)."""
    db.execute(SCHEMA[-1])
    db.execute("INSERT INTO counted (seq) SELECT ifnull(max(seq), 0) FROM messages")


def _step_4(db: sqlite3.Connection) -> None:
    """Step 4, inside the opening transaction: new columns (``ALTER TABLE ... ADD COLUMN``
    rewrites no row), the partial index of REDACT records, and the read markers table."""
    for statement in STEP_4:
        db.execute(statement)


def _step_5(db: sqlite3.Connection) -> None:
    """Step 5, inside the opening transaction: the idempotency keys table (``sqlite_keys.py``)
    and the token secret, made once here."""
    db.execute(
        """CREATE TABLE idem_keys (
            sender TEXT NOT NULL,
            key TEXT NOT NULL,
            time_ms INTEGER NOT NULL,
            source TEXT NOT NULL,
            command TEXT NOT NULL,
            text TEXT NOT NULL,
            tags TEXT,
            sent TEXT NOT NULL,
            PRIMARY KEY (sender, key)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX idem_keys_by_time ON idem_keys (time_ms)")
    db.execute("CREATE TABLE idem_secret (secret BLOB NOT NULL)")
    db.execute("INSERT INTO idem_secret (secret) VALUES (?)", (secrets.token_bytes(32),))


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _step_3(db: sqlite3.Connection) -> None:
    """Step 3: each conversation's newest readable message, indexed by nick (CHATHISTORY
    TARGETS in one query), and no rows for conversations whose messages are all gone."""
    for column in ("latest_ms", "latest_seq"):
        if not _has_column(db, "conversations", column):  # version 1 had latest_seq
            db.execute(f"ALTER TABLE conversations ADD COLUMN {column} INTEGER")
    newest = (
        "SELECT {} FROM messages m WHERE m.key = conversations.key"
        " AND m.command IN ('PRIVMSG', 'NOTICE')"
        " ORDER BY m.time_ms DESC, m.seq DESC LIMIT 1"
    )
    db.execute(
        "UPDATE conversations SET latest_ms = (%s), latest_seq = (%s)"
        % (newest.format("m.time_ms"), newest.format("m.seq"))
    )
    db.execute("DELETE FROM conversations WHERE latest_seq IS NULL")
    for side in ("a", "b"):
        db.execute(
            f"CREATE INDEX IF NOT EXISTS conversations_{side}_latest"
            f" ON conversations ({side}, latest_ms) WHERE {side} IS NOT NULL"
        )


#: Version -> the step that brings the file from the version before to it (rule 2). Each step
#: touches only its own tables, columns and indexes, so steps from different work compose.
STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _migrate_v1,
    3: _step_3,
    4: _step_4,
    5: _step_5,
}


def conversation_row(key: str) -> tuple[str, str | None, str | None]:
    """``(key, a, b)`` for the ``conversations`` table: a private conversation's two nicks."""
    if is_private(key):
        a, b = key.split(" ", 1)
        return key, a, b
    return key, None, None


def describe(exc: sqlite3.Error) -> str:
    """A reason for :class:`StoreError` from a failure to open the file."""
    text = str(exc)
    if "unable to open" in text:
        return "cannot open the file (check the data directory's permissions)"
    if "not a database" in text:
        return "the file is not a SQLite database"
    return text
