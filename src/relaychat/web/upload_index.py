"""What is stored under ``uploads/``: the files and their index (its own SQLite file).

Layout of the uploads directory (``uploads.dir``, default ``<data_dir>/uploads``, mode 0700):
``files/<id>`` holds each file's bytes (never served by path: only by a lookup of its id),
``tmp/`` the uploads in progress, ``index.db`` the metadata.

Rules:
1. Every row is held in memory (:class:`UploadIndex`): a download, a quota check and the
   retention scan are dict lookups on the event loop's thread, never a query. The methods
   named ``load``/``write_*``/``delete_files``/``close`` block (SQLite, the file system):
   ``load`` runs once at start, before anything else, the rest on the uploads' single database
   thread; nothing else touches the connection.
2. Memory first, disk after: a file is visible once its bytes are renamed into ``files/`` and
   its row written; it disappears from memory before its bytes and row are deleted. At start,
   :meth:`UploadIndex.load` repairs what a crash may leave: rows whose file is gone are
   dropped, files without a row and anything in ``tmp/`` are deleted.
3. Retention and quota choices are pure functions of the rows and ``now``
   (:meth:`UploadIndex.expired`, :meth:`UploadIndex.oldest_to_free`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from relaychat.protocol.casemap import irc_lower

__all__ = ["ID_PATTERN", "StoredFile", "UploadIndex"]

log = logging.getLogger("relaychat.web")

#: What a file id looks like (``secrets.token_urlsafe(16)``: 22 characters, 128 random bits).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}\Z")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_created ON files (created);
"""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One uploaded file.

    Attributes:
        id: its random id (:data:`ID_PATTERN`), the file name under ``files/``.
        account: the account that uploaded it, as spelled then.
        name: its sanitised file name (``upload_policy.safe_name``).
        content_type: the type stored (``upload_policy``, rule 2).
        size: bytes.
        created: when the upload completed (Unix time).
    """

    id: str
    account: str
    name: str
    content_type: str
    size: int
    created: float


class UploadIndex:
    """The rows of ``index.db``, in memory (rule 1), and the files they describe.

    Args:
        root: the uploads directory.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files_dir = root / "files"
        self.tmp_dir = root / "tmp"
        self.files: dict[str, StoredFile] = {}  # by id, oldest first
        self.by_account: dict[str, dict[str, None]] = {}  # folded account -> ids, oldest first
        self.used: dict[str, int] = {}  # folded account -> bytes
        self.total = 0
        self._db: sqlite3.Connection | None = None

    # --- in memory (the loop's thread) ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self.files)

    def get(self, file_id: str) -> StoredFile | None:
        """The file with ``file_id``, or ``None``."""
        return self.files.get(file_id)

    def usage(self, account: str) -> tuple[int, int]:
        """``(bytes, files)`` kept for ``account``."""
        key = irc_lower(account)
        return self.used.get(key, 0), len(self.by_account.get(key, ()))

    def path_of(self, file_id: str) -> Path:
        """Where the bytes of ``file_id`` are."""
        return self.files_dir / file_id

    def add(self, entry: StoredFile) -> None:
        """Show ``entry`` (its bytes are in place; write its row with :meth:`write_add`)."""
        key = irc_lower(entry.account)
        self.files[entry.id] = entry
        self.by_account.setdefault(key, {})[entry.id] = None
        self.used[key] = self.used.get(key, 0) + entry.size
        self.total += entry.size

    def remove(self, file_id: str) -> StoredFile | None:
        """Stop showing ``file_id`` (then :meth:`delete_files` its bytes and row)."""
        entry = self.files.pop(file_id, None)
        if entry is None:
            return None
        key = irc_lower(entry.account)
        ids = self.by_account.get(key)
        if ids is not None:
            ids.pop(file_id, None)
            if not ids:
                del self.by_account[key]
        left = self.used.get(key, 0) - entry.size
        if left > 0:
            self.used[key] = left
        else:
            self.used.pop(key, None)
        self.total -= entry.size
        return entry

    def expired(self, now: float, max_age: float) -> list[StoredFile]:
        """Files older than ``max_age`` seconds at ``now`` (rule 3), oldest first."""
        if max_age <= 0:
            return []
        cutoff = now - max_age
        out: list[StoredFile] = []
        for entry in self.files.values():
            if entry.created > cutoff:
                break  # the rest are newer (kept in the order they were made)
            out.append(entry)
        return out

    def oldest_to_free(
        self, account: str | None, *, need_bytes: int, need_files: int
    ) -> list[StoredFile] | None:
        """The oldest files of ``account`` (of everyone for ``None``) whose deletion frees at
        least ``need_bytes`` bytes and ``need_files`` files (rule 3).

        Returns:
            The files, oldest first, or ``None`` when deleting all of them is not enough.
        """
        if need_bytes <= 0 and need_files <= 0:
            return []
        if account is None:
            ids: Iterable[str] = self.files
        else:
            ids = self.by_account.get(irc_lower(account), {})
        chosen: list[StoredFile] = []
        freed = 0
        for file_id in ids:
            entry = self.files[file_id]
            chosen.append(entry)
            freed += entry.size
            if freed >= need_bytes and len(chosen) >= need_files:
                return chosen
        return None

    # --- on disk (the database thread) ---------------------------------------------------------

    def load(self) -> None:
        """Create the directories and the database, read every row, repair (rule 2).

        Raises:
            OSError, sqlite3.Error: the directory or the database cannot be used.
        """
        for folder in (self.root, self.files_dir, self.tmp_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.tmp_dir.iterdir():  # uploads cut short by a stop or a crash
            with contextlib.suppress(OSError):
                leftover.unlink()
        # Loaded on the starting thread, then used by the database thread only (rule 1).
        db = sqlite3.connect(self.root / "index.db", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        on_disk = {p.name for p in self.files_dir.iterdir()}
        gone: list[str] = []
        rows = db.execute(
            "SELECT id, account, name, type, size, created FROM files ORDER BY created, id"
        )
        for file_id, account, name, kind, size, created in rows:
            if file_id not in on_disk:
                gone.append(file_id)
                continue
            on_disk.discard(file_id)
            self.add(StoredFile(file_id, account, name, kind, int(size), float(created)))
        if gone:
            log.warning("uploads: %d files listed in the index were missing", len(gone))
            self._delete_rows(gone)
        for orphan in on_disk:  # bytes renamed in place, row never written
            with contextlib.suppress(OSError):
                (self.files_dir / orphan).unlink()
        if on_disk:
            log.warning("uploads: deleted %d files missing from the index", len(on_disk))

    def write_add(self, entry: StoredFile) -> None:
        """Write ``entry``'s row (blocking)."""
        assert self._db is not None
        self._db.execute(
            "INSERT OR REPLACE INTO files (id, account, name, type, size, created)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.id,
                entry.account,
                entry.name,
                entry.content_type,
                entry.size,
                entry.created,
            ),
        )

    def delete_files(self, ids: list[str]) -> None:
        """Delete the bytes and rows of ``ids`` (already removed from memory; blocking)."""
        for file_id in ids:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.files_dir / file_id)
        if self._db is not None and ids:
            self._delete_rows(ids)

    def _delete_rows(self, ids: list[str]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            db.executemany("DELETE FROM files WHERE id = ?", [(i,) for i in ids])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close the database (blocking)."""
        if self._db is not None:
            self._db.close()
            self._db = None
