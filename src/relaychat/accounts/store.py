"""The account store: SQLite, in ``accounts.db`` under the data directory.

Rules:
1. Each account keeps its name, an argon2 hash of its password, its SCRAM-SHA-256 keys
   (``StoredKey``, ``ServerKey``, salt, iterations: never the password), the nick it protects,
   an optional email, its TLS client certificate fingerprints, when it was created, and its
   draft/metadata-2 keys.
2. The store is read and written on registration and login only, rare events; each call is a
   short synchronous SQLite statement on the event loop thread. Password hashing (slow) never
   happens here: the caller hashes in a worker thread first (see ``server/accounts.py``).
3. Who owns which nick is asked on every NICK, so that index is kept in memory.
4. The file is created on the first registration: a server whose users never register leaves
   no file behind. An existing file that cannot be opened is an error at start.
5. Names and nicks are keyed by their rfc1459 casefold, as the server's nicks are.
6. Schema versions are steps (:data:`_STEPS`), each applied once, in order, when the file's
   ``user_version`` is below it; a new file gets the first schema and then every step.
7. An account registered with e-mail verification keeps the SHA-256 of the code sent
   (``verify_hash``) until VERIFY; an account is ``confirmed`` once verified or logged in to
   again after the connection that registered it. Unconfirmed ones expire
   (:meth:`AccountStore.expire`), so names squatted by a flood of registrations come free.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from relaychat.accounts.scram import ScramCredentials
from relaychat.errors import RelaychatError
from relaychat.protocol.casemap import irc_lower

__all__ = ["Account", "AccountStore", "AccountStoreError", "normalize_certfp"]

log = logging.getLogger("relaychat.accounts")

_SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    key TEXT PRIMARY KEY,            -- casefolded name
    name TEXT NOT NULL,              -- as registered
    nick TEXT NOT NULL,              -- the nick this account protects
    nick_key TEXT NOT NULL UNIQUE,
    email TEXT,
    password_hash TEXT NOT NULL,     -- argon2id
    scram_salt BLOB NOT NULL,
    scram_iterations INTEGER NOT NULL,
    scram_stored_key BLOB NOT NULL,
    scram_server_key BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS certfps (
    fp TEXT PRIMARY KEY,             -- SHA-256 of the DER certificate, lower-case hex
    account_key TEXT NOT NULL REFERENCES accounts(key) ON DELETE CASCADE,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS certfps_by_account ON certfps(account_key);
"""
#: Schema steps after the first, by the version they bring the file to; each runs once, in
#: order, on a file below its version (and after ``_SCHEMA`` on a new file). Statements are
#: separated by ``;``.
_STEPS: dict[int, str] = {
    # 2: e-mail verification and expiry of unconfirmed accounts (rule 7): the SHA-256 of the
    # code still expected (NULL once verified, or never asked), and whether the account was
    # verified or logged in to again after registering (0 expires: AccountStore.expire).
    2: """
ALTER TABLE accounts ADD COLUMN verify_hash TEXT;
ALTER TABLE accounts ADD COLUMN confirmed INTEGER NOT NULL DEFAULT 1;
""",
    # 3: draft/metadata-2 keys of an account (server/commands/metadata.py), one row a key.
    3: """
CREATE TABLE IF NOT EXISTS account_metadata (
    account_key TEXT NOT NULL REFERENCES accounts(key) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (account_key, key)
);
""",
}
_FP_RE = re.compile(r"[0-9a-f]{64}\Z")


_ADD_COLUMN = re.compile(r"\s*ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


def _run(db: sqlite3.Connection, script: str) -> None:
    """Each ``;``-separated statement of ``script``, in the transaction in progress
    (``executescript`` would commit it); an ``ADD COLUMN`` of a column already there is
    skipped, so a step is safe on a file that has it already."""
    for statement in script.split(";"):
        if not statement.strip():
            continue
        add = _ADD_COLUMN.match(statement)
        if add is not None:
            table, column = add.groups()
            if column in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
                continue
        db.execute(statement)


def normalize_certfp(text: str) -> str | None:
    """A SHA-256 fingerprint as stored (64 lower-case hex digits), or ``None`` if malformed.

    Colons and case are accepted (``AB:CD:...``), as tools print them either way.
    """
    fp = text.replace(":", "").strip().lower()
    return fp if _FP_RE.match(fp) else None


class AccountStoreError(RelaychatError):
    """The account database cannot be opened or written.

    Attributes:
        path: the database file.
        reason: what went wrong.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"account store {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Account:
    """One registered account.

    Attributes:
        name: the account name, as registered.
        nick: the nick it protects (its name, by default).
        password_hash: argon2id hash of the password.
        scram: the SCRAM-SHA-256 keys.
        email: the address given at registration, if any.
        created: when it was registered (epoch seconds).
        certfps: the TLS client certificate fingerprints that log in to it with SASL EXTERNAL.
        verify_hash: SHA-256 (hex) of the e-mail verification code still expected, or ``None``.
        confirmed: verified, or logged in to since registering (rule 7).
    """

    name: str
    nick: str
    password_hash: str
    scram: ScramCredentials
    email: str | None = None
    created: float = 0.0
    certfps: tuple[str, ...] = field(default=())
    verify_hash: str | None = None
    confirmed: bool = True


class AccountStore:
    """Accounts in a SQLite file (``":memory:"`` for tests).

    Use :meth:`open`; every method raises :class:`AccountStoreError` when SQLite fails.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db: sqlite3.Connection | None = None
        self._nicks: dict[str, str] = {}  # folded nick -> account name

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> AccountStore:
        """Open the store at ``path``; an existing file is read now, a missing one made later.

        Raises:
            AccountStoreError: the file exists but is not a readable account database.
        """
        store = cls(path)
        if store.path == ":memory:" or Path(store.path).exists():
            store._connect()
        return store

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            created = self.path == ":memory:" or not Path(self.path).exists()
            db = sqlite3.connect(self.path, isolation_level=None)
            if created and self.path != ":memory:":
                os.chmod(self.path, 0o600)  # password hashes: for the server's user only
            db.execute("PRAGMA foreign_keys = ON")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                db.close()
                raise AccountStoreError(
                    self.path, f"made by a newer relaychat (schema {version}); upgrade to open it"
                )
            db.execute("BEGIN IMMEDIATE")  # one transaction: a crash leaves no half a step
            try:
                _run(db, _SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
                for step, script in sorted(_STEPS.items()):
                    # Step 2 also when its columns are missing: a file from a build without it.
                    if version < step or (step == 2 and "confirmed" not in columns):
                        _run(db, script)
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            self._nicks = {
                key: name for key, name in db.execute("SELECT nick_key, name FROM accounts")
            }
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        except OSError as exc:
            raise AccountStoreError(self.path, exc.strerror or str(exc)) from None
        self._db = db
        log.info("account store %s: %d accounts", self.path, len(self._nicks))
        return db

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __len__(self) -> int:
        return len(self._nicks)

    # --- reads ---------------------------------------------------------------------------------

    def owner_of_nick(self, nick: str) -> str | None:
        """The name of the account that protects ``nick`` (any case), from memory."""
        return self._nicks.get(irc_lower(nick))

    def get(self, name: str) -> Account | None:
        """The account called ``name`` (any case), or ``None``."""
        if self._db is None:
            return None
        return self._load("SELECT * FROM accounts WHERE key = ?", irc_lower(name))

    def by_certfp(self, fp: str) -> Account | None:
        """The account that certificate fingerprint ``fp`` logs in to, or ``None``."""
        if self._db is None:
            return None
        return self._load(
            "SELECT a.* FROM accounts a JOIN certfps c ON c.account_key = a.key WHERE c.fp = ?",
            fp,
        )

    def _load(self, sql: str, arg: str) -> Account | None:
        db = self._db
        assert db is not None
        try:
            db.row_factory = sqlite3.Row
            row = db.execute(sql, (arg,)).fetchone()
            if row is None:
                return None
            fps = tuple(
                r["fp"]
                for r in db.execute(
                    "SELECT fp FROM certfps WHERE account_key = ? ORDER BY added, fp", (row["key"],)
                )
            )
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        finally:
            db.row_factory = None
        return Account(
            name=row["name"],
            nick=row["nick"],
            password_hash=row["password_hash"],
            scram=ScramCredentials(
                salt=row["scram_salt"],
                iterations=row["scram_iterations"],
                stored_key=row["scram_stored_key"],
                server_key=row["scram_server_key"],
            ),
            email=row["email"],
            created=row["created"],
            certfps=fps,
            verify_hash=row["verify_hash"],
            confirmed=bool(row["confirmed"]),
        )

    # --- writes --------------------------------------------------------------------------------

    def create(self, account: Account) -> bool:
        """Add ``account`` (with its certificate fingerprints).

        Returns:
            ``False`` when its name or nick is taken already (nothing was written).
        """
        key, nick_key = irc_lower(account.name), irc_lower(account.nick)
        if nick_key in self._nicks or key in self._nicks:
            return False
        db = self._connect()
        scram = account.scram
        try:
            with db:
                cur = db.execute(
                    "INSERT OR IGNORE INTO accounts (key, name, nick, nick_key, email,"
                    " password_hash, scram_salt, scram_iterations, scram_stored_key,"
                    " scram_server_key, created, verify_hash, confirmed)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        key,
                        account.name,
                        account.nick,
                        nick_key,
                        account.email,
                        account.password_hash,
                        scram.salt,
                        scram.iterations,
                        scram.stored_key,
                        scram.server_key,
                        account.created,
                        account.verify_hash,
                        int(account.confirmed),
                    ),
                )
                if cur.rowcount == 0:
                    return False
                db.executemany(
                    "INSERT OR IGNORE INTO certfps VALUES (?,?,?)",
                    [(fp, key, account.created) for fp in account.certfps],
                )
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        self._nicks[nick_key] = account.name
        return True

    def _update(self, sql: str, *args: object) -> int:
        db = self._connect()
        try:
            with db:
                return db.execute(sql, args).rowcount
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None

    def mark_verified(self, name: str) -> bool:
        """Account ``name``'s e-mail is verified: no code is expected any more; it is confirmed.

        Returns:
            ``False`` when there is no such account.
        """
        return (
            self._update(
                "UPDATE accounts SET verify_hash = NULL, confirmed = 1 WHERE key = ?",
                irc_lower(name),
            )
            > 0
        )

    def confirm(self, name: str) -> None:
        """Account ``name`` was logged in to again: it no longer expires (rule 7)."""
        self._update(
            "UPDATE accounts SET confirmed = 1 WHERE key = ? AND confirmed = 0", irc_lower(name)
        )

    def delete(self, name: str) -> bool:
        """Delete account ``name`` (its certificates go with it); ``False`` if there was none."""
        return bool(self._delete([irc_lower(name)]))

    def _delete(self, keys: list[str]) -> list[str]:
        """Delete the accounts with these folded names, in one transaction; return their names."""
        if self._db is None or not keys:
            return []
        db = self._db
        marks = ",".join("?" * len(keys))
        try:
            with db:
                rows = db.execute(
                    f"SELECT name, nick_key FROM accounts WHERE key IN ({marks})", keys
                ).fetchall()
                db.execute(f"DELETE FROM accounts WHERE key IN ({marks})", keys)
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        for _, nick_key in rows:
            self._nicks.pop(nick_key, None)
        return [str(name) for name, _ in rows]

    def expire(self, created_before: float, keep: set[str], limit: int = 100) -> list[str]:
        """Delete up to ``limit`` unconfirmed accounts made before ``created_before`` (rule 7),
        in one transaction.

        Args:
            keep: folded names not to delete (someone is logged in to them now).

        Returns:
            The names deleted.
        """
        if self._db is None:
            return []
        try:
            rows = self._db.execute(
                "SELECT key FROM accounts WHERE confirmed = 0 AND created < ? LIMIT ?",
                (created_before, limit + len(keep)),
            ).fetchall()
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        return self._delete([key for (key,) in rows if key not in keep][:limit])

    def add_certfp(self, name: str, fp: str, now: float) -> str | None:
        """Let certificate ``fp`` log in to account ``name``.

        Returns:
            ``None`` when added, else the name of the account that already has it (perhaps
            ``name`` itself).
        """
        db = self._connect()
        try:
            with db:
                row = db.execute(
                    "SELECT a.name FROM certfps c JOIN accounts a ON a.key = c.account_key "
                    "WHERE c.fp = ?",
                    (fp,),
                ).fetchone()
                if row is not None:
                    return str(row[0])
                db.execute("INSERT INTO certfps VALUES (?,?,?)", (fp, irc_lower(name), now))
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        return None

    # --- metadata (draft/metadata-2) ------------------------------------------------------

    def metadata(self, name: str) -> dict[str, str]:
        """The metadata keys saved for account ``name`` (``{}`` when none, or no file yet)."""
        if self._db is None:
            return {}
        try:
            rows = self._db.execute(
                "SELECT key, value FROM account_metadata WHERE account_key = ? ORDER BY key",
                (irc_lower(name),),
            ).fetchall()
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        return {str(k): str(v) for k, v in rows}

    def set_metadata(self, name: str, key: str, value: str | None) -> None:
        """Save ``key`` = ``value`` for account ``name``; ``None`` deletes the key."""
        db = self._connect()
        try:
            with db:
                if value is None:
                    db.execute(
                        "DELETE FROM account_metadata WHERE account_key = ? AND key = ?",
                        (irc_lower(name), key),
                    )
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO account_metadata VALUES (?,?,?)",
                        (irc_lower(name), key, value),
                    )
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None

    def clear_metadata(self, name: str) -> None:
        """Delete every metadata key of account ``name``."""
        db = self._connect()
        try:
            with db:
                db.execute("DELETE FROM account_metadata WHERE account_key = ?", (irc_lower(name),))
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None

    def remove_certfp(self, name: str, fp: str) -> bool:
        """Take certificate ``fp`` off account ``name``; ``False`` when it was not there."""
        db = self._connect()
        try:
            with db:
                cur = db.execute(
                    "DELETE FROM certfps WHERE fp = ? AND account_key = ?", (fp, irc_lower(name))
                )
        except sqlite3.Error as exc:
            raise AccountStoreError(self.path, str(exc)) from None
        return cur.rowcount > 0
