"""``/healthz`` and ``/readyz``: is the process alive; can it take clients and keep messages.

``/healthz`` answers 200 whenever the event loop runs. ``/readyz`` answers 200 only when every
listener is serving and the history store can take a write (a write lock is taken and released
on the database from a thread, so a locked or read-only file shows), else 503; both as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

from relaychat.web.http import Response

__all__ = ["health", "probe_store", "readiness"]

#: Seconds the store probe waits for the database's write lock.
PROBE_TIMEOUT = 2.0


def _json(status: int, data: dict[str, Any]) -> Response:
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return Response(status, body, "application/json", (("Cache-Control", "no-store"),))


def health(version: str, uptime: float) -> Response:
    """The ``/healthz`` answer: the process is alive."""
    return _json(200, {"status": "ok", "version": version, "uptime_seconds": round(uptime, 3)})


def probe_store(path: Path) -> str | None:
    """Take and release the write lock of the SQLite database at ``path``. Blocking.

    Returns:
        ``None`` when it can be written, else the reason.
    """
    if not path.exists():
        return f"{path} does not exist"
    try:
        db = sqlite3.connect(path, timeout=PROBE_TIMEOUT, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
    except sqlite3.Error as exc:
        return f"{path}: {exc}"
    return None


async def readiness(listening: bool, store: Path | None, commit_error: str | None) -> Response:
    """The ``/readyz`` answer.

    Args:
        listening: every listener is open and serving.
        store: the history database, or ``None`` when history is off.
        commit_error: why the last history commit failed, or ``None``.
    """
    checks: dict[str, str] = {"listening": "ok" if listening else "not listening"}
    if store is None:
        checks["store"] = "disabled"
    else:
        problem = await asyncio.to_thread(probe_store, store)
        checks["store"] = problem or commit_error or "ok"
    ready = all(v in ("ok", "disabled") for v in checks.values())
    return _json(200 if ready else 503, {"status": "ready" if ready else "not ready", **checks})
