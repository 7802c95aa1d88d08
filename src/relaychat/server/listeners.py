"""The asyncio server: listeners, the keepalive tick, write flushing and graceful shutdown.

uvloop is used when installed. Every listener speaks lines to the same :class:`ServerCore`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from relaychat.accounts.worker import ThreadWorker
from relaychat.config import Config
from relaychat.discovery import Announcer, start_announcing
from relaychat.errors import RelaychatError
from relaychat.server.accounts import AccountService, service_of
from relaychat.server.connection import Connection, listener_options
from relaychat.server.core import ServerCore
from relaychat.server.operations import Operations
from relaychat.server.plain import PlainConnection
from relaychat.server.reload import ConfigSource
from relaychat.server.stats import EdgeStats
from relaychat.server.tls import server_context
from relaychat.server.tlsaccept import Listening, TLSServer, open_tls_server

if TYPE_CHECKING:
    from relaychat.cluster.node import ClusterNode
    from relaychat.store.base import HistoryStore
    from relaychat.web.app import WebApp

__all__ = ["ListenError", "Server", "install_uvloop", "raise_fd_limit", "run"]

log = logging.getLogger("relaychat.server")

#: sys.setswitchinterval for the server process (see run()).
GIL_SWITCH_INTERVAL = 0.0005

#: TEST ONLY, never set in production: ``RELAYCHAT_UNSAFE_NO_COMMIT_HOLD=1`` breaks the
#: durability promise on purpose — bytes go out before the commit that covers them, which comes
#: a second later. It exists so that the kill -9 test can show that it catches exactly that
#: (``tests/integration/test_history.py::test_kill_9_detects_an_unheld_delivery``).
_UNSAFE_NO_HOLD = os.environ.get("RELAYCHAT_UNSAFE_NO_COMMIT_HOLD") == "1"


class ListenError(RelaychatError):
    """A listener could not be opened (address in use, not available, no permission)."""

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"cannot listen on {host}:{port}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


class Server:
    """A running relaychat server.

    Use ``await server.start()``, then ``await server.wait_closed()``; ``await server.stop()``
    (or SIGINT/SIGTERM under :func:`run`) shuts it down gracefully.
    """

    def __init__(self, config: Config, *, source: ConfigSource | None = None) -> None:
        self.config = config
        # Operations (server/operations.py): pid file, bans, audit log, admin socket, reload.
        self.ops = Operations(self, source or ConfigSource(fixed=config))
        self.tls_context: ssl.SSLContext | None = None
        #: The HTTPS port's context (``http.tls``), reloaded like the TLS port's.
        self.web_tls_context: ssl.SSLContext | None = None
        self.core = ServerCore(config, time.time())
        self.connections: set[Connection] = set()
        self.stats = EdgeStats()  # counters for /metrics (server/stats.py)
        #: Why the last history commit failed, or ``None`` (for /readyz).
        self.commit_error: str | None = None
        self.web: WebApp | None = None  # the HTTP port (relaychat.web), when http.port is set
        self.handshaking = 0  # TLS connections in their handshake (tlsaccept.py)
        self._due_handle: asyncio.TimerHandle | None = None  # the next deferred answer
        self._due_at = float("inf")
        self.core.wakeup = self._wakeup
        # Coalesced channel fan-out (fanout.py rule 4): flushed at the end of each loop turn.
        self.core.batch_fanout = True
        self.core.batch_hook = self._batch_opened
        self._listeners: list[Listening] = []
        self._servers: dict[str, list[Listening]] = {}  # by kind: irc, plain, tls, http
        self._dirty: list[Connection] = []
        self._flush_scheduled = False
        self._committing = False
        self._unsafe_commit_timer: asyncio.TimerHandle | None = None  # _UNSAFE_NO_HOLD only
        # One writer thread for history commits, so they happen in order and off the loop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relaychat-store")
        self._tick_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._announcer: Announcer | None = None  # mDNS announcement (relaychat.discovery)
        if config.history.enabled:
            if not config.cluster.url:  # a cluster keeps history in JetStream (its node's)
                from relaychat.store.sqlite import open_history

                # history.db under the data directory; StoreError (one line, exit 2) if unusable.
                history = open_history(config)
                self.core.history = history
                if config.idempotency.enabled:  # keys live with history (store/keys.py)
                    self.core.enable_idempotency(history)
            self.core.extra_caps["draft/chathistory"] = ""
            # Caps that need the store: redaction (commands/redaction.py) and read markers.
            self.core.extra_caps["draft/message-redaction"] = ""
            if config.history.max_read_markers > 0:
                self.core.extra_caps["draft/read-marker"] = ""
        #: This server's node in a cluster (``--cluster``, relaychat.cluster), or ``None``.
        self.cluster: ClusterNode | None = None
        if config.cluster.url:
            from relaychat.cluster.node import ClusterNode

            self.cluster = ClusterNode(self)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The bound (host, port) of every IRC listening socket (ports resolved from 0)."""
        return self.addresses_of("irc")

    @property
    def listening(self) -> bool:
        """Whether every listener is open and serving (for /readyz)."""
        return bool(self._listeners) and all(srv.is_serving() for srv in self._listeners)

    def history_path(self) -> Path | None:
        """The history database file, or ``None`` when history is off (for /readyz)."""
        path = getattr(self.core.history, "path", None)
        return path if isinstance(path, Path) else None

    def addresses_of(self, kind: str) -> list[tuple[str, int]]:
        """The bound (host, port) of every listening socket of ``kind`` (irc, plain, tls, http)."""
        out = []
        for srv in self._servers.get(kind, []):
            for sock in srv.sockets:
                name = sock.getsockname()
                out.append((str(name[0]), int(name[1])))
        return out

    async def _listen(
        self,
        kind: str,
        port: int,
        factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Open a listener of ``kind`` on ``port`` for every configured host.

        Raises:
            ListenError: it could not be opened; every listener opened so far is closed.
        """
        assert self._loop is not None
        for host in self.config.hosts():
            bind: str | None = None if host in ("*", "") else host
            try:
                srv = await self._loop.create_server(
                    factory, bind, port, reuse_address=True, backlog=4096, ssl=ssl_context
                )
            except OSError as exc:
                self._listen_failed(host, port, exc)
            listener_options(srv.sockets)
            self._listeners.append(srv)
            self._servers.setdefault(kind, []).append(srv)

    async def _listen_tls(self, port: int, context: ssl.SSLContext) -> None:
        """Open the TLS listeners (``tlsaccept.py``: counted before their handshake), one
        :class:`TLSServer` per host, listed with the others under ``tls``; not accepting yet.

        Raises:
            ListenError: one could not be opened; every listener opened so far is closed.
        """
        for host in self.config.hosts():
            bind: str | None = None if host in ("*", "") else host
            try:
                srv = await open_tls_server(self, bind, port, context)
            except OSError as exc:
                self._listen_failed(host, port, exc)
            self._listeners.append(srv)
            self._servers.setdefault("tls", []).append(srv)

    def _listen_failed(self, host: str, port: int, exc: OSError) -> NoReturn:
        for other in self._listeners:
            other.close()
        self._listeners.clear()
        self._servers.clear()
        reason = {
            errno.EADDRINUSE: "address already in use",
            errno.EADDRNOTAVAIL: "address not available on this machine",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        raise ListenError(host, port, reason) from None

    async def start(self) -> None:
        """Open every listener and start the keepalive tick.

        Raises:
            ListenError: a listener could not be opened (nothing is left open then).
            TLSSetupError: the TLS certificate or key cannot be loaded (or made).
            AccountStoreError: the account database exists but cannot be opened.
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        cfg = self.config
        # TLS (server/tls.py) and accounts (relaychat/accounts) are set up before any listener
        # opens, so a bad certificate or account store stops the start with nothing open.
        tls: ssl.SSLContext | None = None
        client_certs = False
        if cfg.tls_port:
            tls, client_certs = server_context(cfg)
        web_tls: ssl.SSLContext | None = None
        if cfg.http.port:
            from relaychat.web.app import WebApp  # the HTTP port and all on it (relaychat.web)

            self.web = WebApp(self)
            web_tls = self.web.tls_context()
        self.tls_context = tls
        self.web_tls_context = web_tls
        if self.cluster is not None:  # join the network before anyone can connect
            await self.cluster.start()
        if service_of(self.core) is None:
            thr = cfg.throttle
            worker = ThreadWorker(
                loop,
                concurrency=thr.hash_threads,
                max_pending=thr.hash_queue,
                per_key=thr.hash_queue_per_key,
                log_interval=thr.log_interval,
            )
            AccountService.open(self.core, worker, external=client_certs)
        if self.cluster is not None:  # the network's accounts, shared by every node
            self.cluster.use_accounts(service_of(self.core))
        self.ops.prepare()  # bans loaded before anyone connects; a second server refused
        if self.cluster is not None:  # the network's bans, shared by every node
            self.cluster.bans.attach()
        try:
            await self._listen("irc", cfg.port, lambda: Connection(self))
        except ListenError:
            if self.cluster is not None:
                self.cluster.leave()
                await self.cluster.close()
            raise
        if cfg.plain_port:
            await self._listen("plain", cfg.plain_port, lambda: PlainConnection(self))
        if tls is not None:
            # Accepted by hand (tlsaccept.py): counted and limited before the handshake.
            await self._listen_tls(cfg.tls_port, tls)
            for srv in self._servers.get("tls", []):
                assert isinstance(srv, TLSServer)
                srv.start()
        if self.web is not None:
            await self._listen("http", cfg.http.port, self.web.connection, ssl_context=web_tls)
            self.web.start()
        await self.ops.open()  # admin socket and pid file, before "listening" is logged
        for kind in ("irc", "plain", "tls", "http"):
            for host, port in self.addresses_of(kind):
                log.info("listening on %s port %d (%s)", host, port, kind)
        self._announcer = start_announcing(cfg, self.addresses)  # mDNS, per `announce`
        self._tick_task = loop.create_task(self._tick_loop())

    def _wakeup(self, when: float) -> None:
        """The core has a deferred answer due at ``when`` (server/pending.py): be there."""
        if when >= self._due_at or self._loop is None:
            return
        if self._due_handle is not None:
            self._due_handle.cancel()
        self._due_at = when
        self._due_handle = self._loop.call_later(max(0.0, when - time.time()), self._run_due)

    def _run_due(self) -> None:
        self._due_handle = None
        self._due_at = float("inf")
        try:
            self.core.run_due(time.time())
        except Exception:  # pragma: no cover - a bug; keep serving
            log.exception("deferred answers failed")
        nxt = self.core.next_due()
        if nxt is not None:
            self._wakeup(nxt)

    def request_flush(self) -> None:
        """Make sure a flush (and so a history commit) follows this loop turn.

        Messages nobody receives still reach history promptly: a commit happens even when no
        connection has output.
        """
        if not self._flush_scheduled and not self._committing:
            history = self.core.history
            if history is not None and history.has_pending():
                self._flush_scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._flush)

    def holding(self) -> bool:
        """Whether bytes queued now could carry messages no commit covers yet: a commit is in
        flight, or history holds records for the next one (see ``Connection.close``)."""
        if self._committing:
            return True
        history = self.core.history
        return history is not None and history.has_pending()

    def _batch_opened(self) -> None:
        """The core opened a fan-out batch: a flush must end this loop turn."""
        if not self._flush_scheduled and not self._committing:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def mark_dirty(self, conn: Connection) -> None:
        """Schedule ``conn`` for the flush at the end of this loop turn."""
        self._dirty.append(conn)
        if not self._flush_scheduled and not self._committing:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write out every connection's queued bytes, after a group commit of history.

        When the core handed history records over since the last flush, the bytes queued so far
        (which may carry those messages) are held until the records are committed: nobody
        receives a message that a crash could still lose (docs/history.md).

        Hot path (docs/benchmarks.md, round 2): the SQLite store commits right here, on the
        loop thread, at the end of the loop turn (``try_commit``: WAL, ``synchronous=NORMAL``,
        so ``write()`` calls and no ``fsync``), then every connection is written; a thread
        hand-off per turn cost more than the commit. Only when the store cannot commit without
        blocking (its maintenance thread holds the writer for a retention chunk), or commits
        asynchronously by nature (the cluster's JetStream store: ``commit_soon``), does the
        commit run elsewhere, the bytes held meanwhile (:meth:`_committed` releases them);
        bytes queued during such a commit wait for the next one.
        """
        self._flush_scheduled = False
        # The turn's coalesced channel messages join their members' queues first (fanout.py
        # rule 4), so the commit below covers them like any other queued bytes.
        self.core.flush_batch()
        if self._committing:
            return  # _committed flushes when the commit in flight is done
        history = self.core.history
        if history is not None and history.has_pending():
            if _UNSAFE_NO_HOLD:  # test-only: deliver first, commit later (see the constant)
                self._unsafe_commit_later(history)
            elif not self._commit_here(history):
                self._commit_elsewhere(history)
                return
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()

    def _commit_here(self, history: HistoryStore) -> bool:
        """Commit on this thread if the store can without blocking; ``False``: it cannot."""
        try_commit = getattr(history, "try_commit", None)
        if try_commit is None:
            return False
        started = time.perf_counter()
        try:
            if not try_commit():
                return False
        except Exception as exc:  # any store failure: relay anyway, say so
            self._commit_failed(exc)
        else:
            self.commit_error = None
        self.stats.commit_latency.observe(time.perf_counter() - started)
        return True

    def _commit_elsewhere(self, history: HistoryStore) -> None:
        """Start a commit off the loop and hold every dirty connection's bytes until it is done."""
        held = [(conn, len(conn.out)) for conn in self._dirty]
        self._dirty = []
        self._committing = True
        assert self._loop is not None
        started = time.perf_counter()
        # A store that commits without blocking (the cluster's: JetStream acknowledgements
        # arrive on this loop) hands back the future itself; others commit in the thread.
        commit_soon = getattr(history, "commit_soon", None)
        future = (
            commit_soon()
            if commit_soon is not None
            else self._loop.run_in_executor(self._executor, history.commit_pending)
        )
        future.add_done_callback(lambda f: self._committed(f, held, started))

    def _unsafe_commit_later(self, history: HistoryStore) -> None:
        """Test-only (``_UNSAFE_NO_HOLD``): commit a second from now, not before delivery."""
        if self._unsafe_commit_timer is None:
            assert self._loop is not None

            def commit() -> None:
                self._unsafe_commit_timer = None
                self._unsafe_commit_now(history)

            self._unsafe_commit_timer = self._loop.call_later(1.0, commit)

    def _unsafe_commit_now(self, history: HistoryStore) -> None:
        try:
            history.commit_pending()
        except Exception as exc:
            self._commit_failed(exc)

    def _commit_failed(self, exc: BaseException) -> None:
        # Availability wins over durability: relay anyway, and say so loudly.
        self.commit_error = str(exc) or type(exc).__name__
        log.error("history commit failed; messages were relayed without being stored: %s", exc)

    def _committed(
        self, future: asyncio.Future[None], held: list[tuple[Connection, int]], started: float
    ) -> None:
        self._committing = False
        self.stats.commit_latency.observe(time.perf_counter() - started)
        self.core.flush_batch()  # queued after the counts held: they wait for the next commit
        exc = future.exception()
        if exc is None:
            self.commit_error = None
        else:
            self._commit_failed(exc)
        for conn, count in held:
            conn.flush(count)
            if conn.out:
                self._dirty.append(conn)  # bytes queued during the commit: the next round
        if self._dirty:
            self._flush()

    async def _tick_loop(self) -> None:
        cfg = self.config
        step = min(
            5.0, max(0.05, min(cfg.ping_interval, cfg.ping_timeout, cfg.registration_timeout) / 4)
        )
        while True:
            await asyncio.sleep(step)
            try:
                self.core.tick(time.time())
            except Exception:  # pragma: no cover - a bug; keep serving
                log.exception("keepalive tick failed")

    async def stop(self) -> None:
        """Graceful shutdown: stop accepting, tell every client, flush, close within a deadline."""
        if self._stopped.is_set():
            return
        log.info("shutting down: %d connections", len(self.connections))
        for srv in self._listeners:
            srv.close()
        if self._tick_task is not None:
            self._tick_task.cancel()
        if self.web is not None:
            self.web.stop()
        if self.cluster is not None:  # the other nodes show this node's users leaving now
            self.cluster.leave()
        if self._due_handle is not None:
            self._due_handle.cancel()
        self.core.shutdown()
        await self.ops.close()
        self._flush()
        if self._announcer is not None:  # withdraw the mDNS announcement (goodbye packets)
            await self._announcer.stop()
        deadline = time.monotonic() + self.config.shutdown_timeout
        while self._committing and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        for srv in self._listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(srv.wait_closed(), 1.0)
        history = self.core.history
        if history is not None and history.has_pending():
            await asyncio.get_running_loop().run_in_executor(self._executor, history.commit_pending)
        if history is not None:  # stops its retention thread and closes the file
            await asyncio.get_running_loop().run_in_executor(self._executor, history.close)
        accounts = service_of(self.core)
        if accounts is not None:
            accounts.store.close()
        if self.cluster is not None:
            await self.cluster.close()
        if isinstance(self.core.worker, ThreadWorker):
            self.core.worker.close()
        self._executor.shutdown(wait=True)
        self._stopped.set()
        log.info("stopped")

    async def wait_closed(self) -> None:
        """Return once :meth:`stop` has finished."""
        await self._stopped.wait()


def install_uvloop() -> bool:
    """Use uvloop's event loop policy when uvloop is installed; return whether it is."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


@contextlib.contextmanager
def _quiet_keyboard_interrupt() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch SIGINT
        pass


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft limit on open files towards ``wanted`` (capped by the hard limit).

    Returns:
        The soft limit now in force.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # pragma: no cover
            pass
    return int(soft)


def run(config: Config, *, source: ConfigSource | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully. Blocks.

    Raises:
        ListenError: a listener could not be opened.
    """
    uv = install_uvloop()
    # The history writer thread needs the GIL briefly for every group commit; with the default
    # 5 ms switch interval a busy loop thread makes it wait up to 5 ms, and every reply with it.
    # Measured (docs/benchmarks.md): 0.5 ms halves W3r latency and lifts W4 by ~1.5x.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    limit = raise_fd_limit(config.limits.max_clients + 64)
    if limit < config.limits.max_clients + 16:
        log.warning(
            "open-file limit %d is below max_clients %d; connections past it will fail",
            limit,
            config.limits.max_clients,
        )

    async def main() -> None:
        server = Server(config, source=source)
        await server.start()
        log.info(
            "relaychat %s ready (%s event loop)",
            server.core.version_string(),
            "uvloop" if uv else "asyncio",
        )
        loop = asyncio.get_running_loop()
        # SIGHUP: read the configuration again (server/reload.py); nobody is disconnected.
        loop.add_signal_handler(signal.SIGHUP, server.ops.sighup)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: loop.create_task(server.stop()))
        await server.wait_closed()

    with _quiet_keyboard_interrupt():
        asyncio.run(main())
