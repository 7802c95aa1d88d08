"""The local admin socket: scripts run the server without an IRC oper session (edge).

``admin.sock`` in the data directory is a Unix socket with mode 0600, so only the server's user
(and root) can open it; the server also checks the peer's credentials (``SO_PEERCRED``) and
refuses any other user, in case the file's mode was changed.

Protocol: the client sends one JSON object on a line, ``{"command": NAME, ...arguments}``, and
gets one JSON object back: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": TEXT}``.

Commands: ``status``, ``users``, ``kill`` (``nick``, ``reason``), ``kline`` / ``dline``
(``mask``, ``duration`` in seconds or a duration text, ``reason``), ``unkline`` / ``undline``
(``mask``), ``reload``. Every action is audited with the actor ``admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relaychat import __version__
from relaychat.server.audit import audit
from relaychat.server.bans import BanError, parse_duration
from relaychat.server.commands.bans import add_ban, remove_ban
from relaychat.server.running import RunningServer

__all__ = ["MAX_REQUEST", "AdminError", "AdminServer", "peer_uid"]

log = logging.getLogger("relaychat.admin")

#: The longest request line accepted.
MAX_REQUEST = 4096


class AdminError(Exception):
    """A request the server refuses; its text goes back as ``error``."""


def peer_uid(sock: socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (Linux ``SO_PEERCRED``)."""
    opt = getattr(socket, "SO_PEERCRED", None)
    if opt is None:  # pragma: no cover - not Linux: the file mode is the only guard
        return None
    data = sock.getsockopt(socket.SOL_SOCKET, opt, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


class AdminServer:
    """Serves the admin socket at ``path`` for ``server``."""

    def __init__(self, server: RunningServer, path: Path) -> None:
        self.server = server
        self.path = path
        self._srv: asyncio.AbstractServer | None = None
        self.commands: dict[str, Callable[[dict[str, Any]], Any]] = {
            "status": self.status,
            "users": self.users,
            "kill": self.kill,
            "kline": lambda req: self.ban("K", req),
            "dline": lambda req: self.ban("D", req),
            "unkline": lambda req: self.unban("K", req),
            "undline": lambda req: self.unban("D", req),
            "reload": self.reload,
        }

    async def start(self) -> None:
        """Bind the socket (replacing a stale one) with mode 0600.

        Raises:
            OSError: it cannot be bound (the path too long, no permission...).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        old = os.umask(0o177)  # the file is created 0600: no window with wider permissions
        try:
            self._srv = await asyncio.start_unix_server(self._serve, path=str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        log.info("admin socket %s", self.path)

    async def close(self) -> None:
        if self._srv is not None:
            self._srv.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._srv.wait_closed(), 1.0)
            self._srv = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            me = os.geteuid()
            if uid is not None and uid not in (me, 0):
                log.warning("admin socket: refused uid %d (the server runs as %d)", uid, me)
                reply: dict[str, Any] = {
                    "ok": False,
                    "error": f"permission denied: uid {uid} is not the server's user",
                }
            else:
                try:
                    line = await asyncio.wait_for(reader.readline(), 10)
                except (TimeoutError, ValueError):
                    line = b""
                reply = self.handle(line)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def handle(self, line: bytes) -> dict[str, Any]:
        """One request line -> the reply object (never raises)."""
        try:
            if not line or len(line) > MAX_REQUEST:
                raise AdminError("expected one JSON request line")
            try:
                request = json.loads(line)
            except ValueError:
                raise AdminError("the request is not JSON") from None
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise AdminError('the request needs a "command"')
            handler = self.commands.get(request["command"])
            if handler is None:
                raise AdminError(
                    f"unknown command {request['command']!r} (known: {', '.join(self.commands)})"
                )
            self.server.core.now = time.time()
            return {"ok": True, "result": handler(request)}
        except AdminError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:  # a bug: logged, contained to this request
            log.exception("admin request failed: %r", line[:200])
            return {"ok": False, "error": "internal error (see the server log)"}

    # --- commands ------------------------------------------------------------------------------

    def status(self, request: dict[str, Any]) -> dict[str, Any]:
        core = self.server.core
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": int(core.now - core.started),
            "server_name": core.name,
            "users": core.registered_count,
            "connections": len(core.connections),
            "channels": len(core.channels),
            "opers": core.oper_count,
            "klines": len(core.bans.klines),
            "dlines": len(core.bans.dlines),
            "listening": [
                f"{kind} {host}:{port}"
                for kind in ("irc", "tls", "plain")
                for host, port in self.server.addresses_of(kind)
            ],
        }

    def users(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        core = self.server.core
        return [
            {
                "nick": u.nick,
                "user": u.username,
                "host": u.host,
                "ip": u.ip,
                "account": u.account,
                "oper": u.is_oper,
                "channels": sorted(c.name for c in u.channels.values()),
                "idle": int(core.now - u.last_active),
                "connected": int(u.connected_at),
            }
            for u in core.connections.values()
            if u.registered
        ]

    def kill(self, request: dict[str, Any]) -> str:
        core = self.server.core
        nick = _text(request, "nick")
        reason = str(request.get("reason") or "killed by the administrator")[:200]
        target = core.find_user(nick)
        if target is None:
            raise AdminError(f"no such nick: {nick}")
        audit(core, "admin", "KILL", "k", target=target.prefix, reason=reason)
        core.disconnect(target, f"Killed (admin ({reason}))")
        return f"killed {target.nick}"

    def ban(self, kind: str, request: dict[str, Any]) -> str:
        core = self.server.core
        mask = _text(request, "mask")
        raw = request.get("duration")
        duration: int | None = None
        if raw not in (None, "", 0):
            duration = raw if isinstance(raw, int) and raw > 0 else parse_duration(str(raw))
            if duration is None:
                raise AdminError(f"{raw!r} is not a duration (e.g. 30m, 2h, 1d; minutes alone)")
        try:
            ban, closed = add_ban(
                core, "admin", kind, mask, duration=duration, reason=str(request.get("reason", ""))
            )
        except BanError as exc:
            raise AdminError(exc.reason) from None
        lasting = "permanent" if ban.expires is None else f"expires {int(ban.expires)}"
        return f"{kind}-line on {ban.mask} ({ban.reason}; {lasting}); {closed} connection(s) closed"

    def unban(self, kind: str, request: dict[str, Any]) -> str:
        ban = remove_ban(self.server.core, "admin", kind, _text(request, "mask"))
        if ban is None:
            raise AdminError(f"no {kind}-line on {request['mask']}")
        return f"{kind}-line on {ban.mask} removed"

    def reload(self, request: dict[str, Any]) -> str:
        ops = getattr(self.server, "ops", None)
        if ops is None or ops.reloader is None:
            raise AdminError("this server cannot reload")
        name, error = ops.reloader.reload("admin")
        if error is not None:
            raise AdminError(f"reload refused, the running configuration stays: {error}")
        return f"configuration reloaded from {name}"


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise AdminError(f'"{key}" is required')
    return value
