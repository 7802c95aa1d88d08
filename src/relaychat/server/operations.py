"""What an operator's server keeps in its data directory, wired to a running server (edge).

- ``relaychat.pid``: the server's process id, for ``relaychat reload`` (SIGHUP). A second server
  on the same data directory is refused while the first runs.
- ``bans.json``: K-lines and D-lines, loaded before the listeners open and saved atomically on
  every change (``server/bans.py``).
- ``audit.log``: operator actions, one JSON object per line, append-only (``server/audit.py``).
- ``admin.sock``: the local admin socket (``server/admin.py``).
- the :class:`~relaychat.server.reload.Reloader` behind SIGHUP, REHASH and ``admin reload``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from relaychat.errors import RelaychatError
from relaychat.server.audit import AuditLog
from relaychat.server.bans import BanList, load_bans, save_bans
from relaychat.server.reload import ConfigSource, Reloader
from relaychat.server.running import RunningServer

if TYPE_CHECKING:
    from relaychat.server.admin import AdminServer

__all__ = ["PID_FILE", "AlreadyRunning", "Operations", "read_pid"]

log = logging.getLogger("relaychat.server")

PID_FILE = "relaychat.pid"
BANS_FILE = "bans.json"
AUDIT_FILE = "audit.log"


class AlreadyRunning(RelaychatError):
    """Another relaychat server runs on the same data directory."""

    def __init__(self, pid: int, data_dir: Path) -> None:
        super().__init__(f"another relaychat server (pid {pid}) uses the data directory {data_dir}")
        self.pid = pid


def read_pid(data_dir: Path) -> int | None:
    """The pid of the relaychat server running on ``data_dir``, or ``None`` (no pid file, or
    the process it names is gone or is not relaychat)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid  # no /proc here: trust the file
    return pid if b"relaychat" in cmdline else None


class Operations:
    """The data-directory side of a running server (see the module docstring)."""

    def __init__(self, server: RunningServer, source: ConfigSource) -> None:
        self.server = server
        self.data = server.config.data_path()
        self.reloader: Reloader | None = None
        self.source = source
        self.admin: AdminServer | None = None
        self.audit: AuditLog | None = None
        self._pid_written = False

    def prepare(self) -> None:
        """Before the listeners open: refuse a second server, load the bans, open the audit log.

        Raises:
            AlreadyRunning: a live server owns the data directory.
            BanStoreError: ``bans.json`` exists but cannot be read.
        """
        other = read_pid(self.data)
        if other is not None and other != os.getpid():
            raise AlreadyRunning(other, self.data)
        core = self.server.core
        core.bans = load_bans(self.data / BANS_FILE)
        core.bans.on_change = self._save_bans
        if len(core.bans):
            log.info("bans: %d K-lines, %d D-lines", len(core.bans.klines), len(core.bans.dlines))
        try:
            self.audit = AuditLog(self.data / AUDIT_FILE)
        except OSError as exc:
            raise RelaychatError(f"cannot open the audit log: {exc}") from None
        core.audit_sink = self.audit

    async def open(self) -> None:
        """After the listeners opened: the reloader, the pid file and the admin socket."""
        from relaychat.server.admin import AdminServer

        self.reloader = Reloader(self.server, self.source)
        reloader = self.reloader
        self.server.core.rehash_hook = lambda: reloader.reload("REHASH")
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.data / PID_FILE).write_text(f"{os.getpid()}\n")
        self._pid_written = True
        self.admin = AdminServer(self.server, self.data / "admin.sock")
        try:
            await self.admin.start()
        except OSError as exc:  # the server still serves IRC; say why there is no admin socket
            log.error("admin socket %s unavailable: %s", self.data / "admin.sock", exc)
            self.admin = None

    async def close(self) -> None:
        """At shutdown: close the admin socket, remove the pid file, close the audit log."""
        if self.admin is not None:
            await self.admin.close()
        if self.reloader is not None and self.reloader.pending is not None:
            await self.reloader.pending
        if self._pid_written and read_pid(self.data) in (os.getpid(), None):
            (self.data / PID_FILE).unlink(missing_ok=True)
        if self.audit is not None:
            self.audit.close()
        self.server.core.audit_sink = None

    def sighup(self) -> None:
        """SIGHUP: reload (the outcome is logged)."""
        if self.reloader is not None:
            self.reloader.reload("SIGHUP")

    def _save_bans(self, bans: BanList) -> None:
        try:
            save_bans(self.data / BANS_FILE, bans)
        except OSError as exc:  # the ban holds in memory; the operator must know it won't last
            log.error("could not save %s: %s (bans apply until restart)", BANS_FILE, exc)
