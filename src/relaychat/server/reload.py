"""Reload without dropping anyone: SIGHUP, the oper command REHASH and ``relaychat admin reload``.

The file and the environment are read again; the command-line flags given at start stay (they
are the top layer of :class:`ConfigSource`). A configuration that does not load (bad TOML, a bad
value, a MOTD file or TLS certificate that cannot be read) is refused as a whole, with one line
to the log and to whoever asked; the running configuration stays. Otherwise:

- the core swaps the whole frozen Config (``server/rehash.py``): MOTD, opers, limits, WHOWAS,
  history retention, account registration, the throttles (what they remember stays);
  ``CAP NEW``/``CAP DEL`` to cap-notify clients;
- the password worker takes the new ``throttle.hash_*`` bounds;
- every connection takes the new flood and queue limits;
- the TLS certificate and key are loaded into the listening contexts (the TLS port's, and the
  HTTP port's with ``http.tls``): new handshakes use them, sessions already up go on with theirs;
- listeners are opened and closed to match ``host``, ``port``, ``plain_port`` and ``tls_port``;
  connections accepted by a listener that closes stay connected;
- the log level and format follow.

``data_dir``, ``server_name``, ``history.enabled`` and the HTTP port change at a restart only (the
running values are kept, and the log says so).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaychat.accounts.worker import ThreadWorker
from relaychat.config import Config, load_config
from relaychat.errors import ConfigError
from relaychat.server.audit import snotice
from relaychat.server.connection import Connection, listener_options
from relaychat.server.rehash import apply_config, keep_restart_only
from relaychat.server.running import RunningServer
from relaychat.server.tls import TLSSetupError, self_signed_certificate, server_context
from relaychat.server.tlsaccept import Listening, open_tls_server

__all__ = ["ConfigSource", "Reloader"]

log = logging.getLogger("relaychat.server")


@dataclass(frozen=True)
class ConfigSource:
    """Where the configuration comes from: the TOML file, the environment at reload time, and the
    flags given at start (``overrides``), or a fixed Config for an embedded server."""

    file: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    fixed: Config | None = None

    def load(self) -> Config:
        """The configuration as it is now.

        Raises:
            ConfigError: it does not load.
        """
        if self.fixed is not None:
            return self.fixed
        return load_config(file=self.file, overrides=self.overrides)

    def describe(self) -> str:
        return self.file or "the environment and flags"


def tls_files(config: Config) -> tuple[Path, Path]:
    """The certificate and key files ``config`` names (or its development certificate)."""
    if config.tls_cert and config.tls_key:
        return Path(config.tls_cert).expanduser(), Path(config.tls_key).expanduser()
    return self_signed_certificate(config)


class Reloader:
    """Reloads a running :class:`~relaychat.server.listeners.Server` (see the module rules)."""

    def __init__(self, server: RunningServer, source: ConfigSource) -> None:
        self.server = server
        self.source = source
        self.count = 0
        #: The listener changes of the last reload (awaited by tests and at shutdown).
        self.pending: asyncio.Task[None] | None = None
        cfg = server.config
        self.listeners: dict[tuple[str, str, int], Listening] = {}
        for kind, port in _ports(cfg):
            for host, srv in zip(cfg.hosts(), server._servers.get(kind, []), strict=False):
                self.listeners[(kind, host, port)] = srv

    def reload(self, actor: str) -> tuple[str, str | None]:
        """Read the configuration again and apply it.

        Args:
            actor: who asked (``SIGHUP``, ``admin``, an oper's nick), for the log.

        Returns:
            What was read, and ``None`` or the one-line reason the reload was refused.
        """
        server = self.server
        name = self.source.describe()
        try:
            new = self.source.load()
            new, kept = keep_restart_only(server.config, new)
            fresh_tls: ssl.SSLContext | None = None
            if new.tls_port or server.web_tls_context is not None:
                fresh_tls, _ = server_context(new)  # proves the certificate and key load
        except (ConfigError, TLSSetupError) as exc:
            log.error("reload by %s refused, the running configuration stays: %s", actor, exc)
            snotice(server.core, "r", f"reload by {actor} refused: {exc}")
            return name, str(exc)
        old = server.config
        server.config = new
        added, deleted = apply_config(server.core, new)
        worker = server.core.worker
        if isinstance(worker, ThreadWorker):  # the password worker's bounds (config [throttle])
            thr = new.throttle
            worker.reconfigure(
                concurrency=thr.hash_threads,
                max_pending=thr.hash_queue,
                per_key=thr.hash_queue_per_key,
                log_interval=thr.log_interval,
            )
        if new.tls_port:
            live = server.tls_context
            if live is None:
                server.tls_context = fresh_tls
            else:  # new handshakes use the new pair; sessions already up keep theirs
                cert, key = tls_files(new)
                live.load_cert_chain(cert, key)
        if server.web_tls_context is not None:  # HTTPS (http.tls): the same certificate
            cert, key = tls_files(new)
            server.web_tls_context.load_cert_chain(cert, key)
        lim = new.limits
        for conn in list(server.connections):
            if not isinstance(conn, Connection):
                continue
            conn.sendq, conn.recvq = lim.sendq, lim.recvq
            conn.rate, conn.burst = lim.flood_rate, float(lim.flood_burst)
            conn.flood_action = lim.flood_action
        logging.getLogger().setLevel(new.log_level.upper())
        if new.log_format != old.log_format:
            from relaychat.logs import configure

            configure(new.log_level, new.log_format)
        if kept:
            log.warning("reload: %s change at a restart only; kept as they are", ", ".join(kept))
        self.count += 1
        loop = asyncio.get_running_loop()
        self.pending = loop.create_task(self._listeners(new))
        log.info(
            "configuration reloaded by %s from %s (caps added %s, deleted %s)",
            actor,
            name,
            added or "none",
            deleted or "none",
        )
        snotice(server.core, "r", f"configuration reloaded by {actor} from {name}")
        return name, None

    async def _listeners(self, cfg: Config) -> None:
        """Open the listeners ``cfg`` asks for that are not open; close those it dropped."""
        from relaychat.server.plain import PlainConnection

        server = self.server
        want = {(kind, host, port) for kind, port in _ports(cfg) for host in cfg.hosts()}
        for key in [k for k in self.listeners if k not in want]:
            srv = self.listeners.pop(key)
            srv.close()  # stops accepting; connections it accepted stay
            if srv in server._listeners:
                server._listeners.remove(srv)
            servers = server._servers.get(key[0], [])
            if srv in servers:
                servers.remove(srv)
            log.info("stopped listening on %s port %d (%s)", key[1], key[2], key[0])
        loop = asyncio.get_running_loop()
        factories: dict[str, Callable[[], asyncio.Protocol]] = {
            "irc": lambda: Connection(server),
            "plain": lambda: PlainConnection(server),
        }
        for key in sorted(want - set(self.listeners)):
            kind, host, port = key
            tls = server.tls_context if kind == "tls" else None
            if kind == "tls" and tls is None:
                continue
            bind = None if host in ("*", "") else host
            opened: Listening
            try:
                if tls is not None:  # counted before the handshake (server/tlsaccept.py)
                    tls_server = await open_tls_server(server, bind, port, tls)
                    tls_server.start()
                    opened = tls_server
                else:
                    opened = await loop.create_server(
                        factories[kind], bind, port, reuse_address=True, backlog=4096
                    )
            except OSError as exc:
                reason = {errno.EADDRINUSE: "address already in use"}.get(
                    exc.errno or 0, exc.strerror or str(exc)
                )
                log.error("reload: cannot listen on %s:%d (%s): %s", host, port, kind, reason)
                continue
            listener_options(opened.sockets)
            self.listeners[key] = opened
            server._listeners.append(opened)
            server._servers.setdefault(kind, []).append(opened)
            for sock in opened.sockets:
                name = sock.getsockname()
                log.info("listening on %s port %d (%s)", name[0], name[1], kind)


def _ports(cfg: Config) -> list[tuple[str, int]]:
    out = [("irc", cfg.port)]
    if cfg.plain_port:
        out.append(("plain", cfg.plain_port))
    if cfg.tls_port:
        out.append(("tls", cfg.tls_port))
    return out
