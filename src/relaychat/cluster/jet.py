"""A node's NATS connection: JetStream set-up, ordered publishing with acknowledgements, and the
durability barrier the server's flush waits on.

Rules:
1. One outbox per node, drained in order by one task: everything the node publishes (stream
   messages, KV writes, bytes for other nodes) leaves in the order the core produced it.
2. A JetStream publish carries a reply subject under the node's ack prefix; its acknowledgement
   (or error) completes it. :meth:`Jet.stored_upto` is the highest publish number below which
   everything is complete; the server's flush waits for it (:meth:`Jet.wait_stored`), so no byte
   carrying a message leaves the node before JetStream has it.
3. Nothing is buffered while disconnected (``pending_size=0``): a publish then fails at once
   and is reported, so a message delivered locally meanwhile never arrives twice later.
4. A publish not acknowledged within ``cluster.ack_timeout`` is failed; the barrier never waits
   longer than that.
5. Channel events queued one after the other for one subject in one loop turn (before the drain
   task runs) are merged into one stream message (:meth:`Jet.publish_merged`): one publish, one
   acknowledgement, one message for every receiving node to parse, however many events. Only
   the publish queued last is ever extended, so the order of rule 1 holds, and the barrier
   covers every event merged (the publish is not sent before the drain task takes it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DiscardPolicy,
    KeyValueConfig,
    RePublish,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext

from relaychat.cluster.names import Names
from relaychat.config import Config
from relaychat.errors import RelaychatError

__all__ = ["Ack", "ClusterError", "Jet", "Stored", "scan_config"]

log = logging.getLogger("relaychat.cluster")


def scan_config(subject: str, **start: Any) -> ConsumerConfig:
    """A throwaway pull consumer that reads ``subject`` once from ``start`` (``deliver_policy``
    and its ``opt_start_*``): in memory, no acknowledgements, gone after 30 s unused."""
    return ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        filter_subject=subject,
        inactive_threshold=30.0,
        mem_storage=True,
        **start,
    )


#: Most events merged into one stream message, and most bytes (NATS's default limit is 1 MiB).
MERGE_MAX = 256
MERGE_BYTES = 256 * 1024
#: JetStream's error code for a failed compare-and-set (``Nats-Expected-Last-Subject-Sequence``).
WRONG_LAST_SEQUENCE = 10071


class ClusterError(RelaychatError):
    """The cluster cannot be joined: NATS unreachable, refused, or JetStream unusable.

    Attributes:
        reason: what went wrong, for the operator.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"cluster: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ack:
    """How a JetStream publish ended.

    Attributes:
        seq: the stream sequence it was stored at (0 when it failed).
        error: why it failed, or ``None``.
        code: JetStream's error code (``WRONG_LAST_SEQUENCE`` for a failed compare-and-set).
    """

    seq: int
    error: str | None = None
    code: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Stored:
    """The latest value of a KV key, read back.

    Attributes:
        revision: its revision (stream sequence).
        value: its bytes; ``None`` when the key was deleted.
    """

    revision: int
    value: bytes | None


Done = Callable[[Ack], None]


class _Item:
    __slots__ = ("done", "headers", "ident", "issued", "parts", "payload", "size", "subject")

    def __init__(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None,
        ident: int,
        done: Done | None,
    ) -> None:
        self.subject = subject
        self.payload = payload
        self.headers = headers
        self.ident = ident  # 0: core NATS, no acknowledgement
        self.done = done
        self.issued = 0.0
        #: Payloads merged into this publish (:meth:`Jet.publish_merged`), else ``None``.
        self.parts: list[bytes] | None = None
        self.size = len(payload)


def _tls_context(config: Config) -> ssl.SSLContext | None:
    cl = config.cluster
    wants = (
        cl.tls_ca or cl.tls_cert or any(u.strip().startswith("tls://") for u in cl.url.split(","))
    )
    if not wants:
        return None
    try:
        ctx = ssl.create_default_context(cafile=cl.tls_ca or None)
        if cl.tls_cert:
            ctx.load_cert_chain(cl.tls_cert, cl.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ClusterError(f"cannot load the NATS TLS files: {exc}") from None
    return ctx


class Jet:
    """The node's NATS connection and JetStream context (see the module rules).

    Args:
        config: the server's configuration (``[cluster]``, and ``[history]`` for retention).
        names: this network's and node's names.
    """

    def __init__(self, config: Config, names: Names) -> None:
        self.config = config
        self.names = names
        self.nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._queue: deque[_Item] = deque()
        self._draining = False
        self._wake = asyncio.Event()
        self._drainer: asyncio.Task[None] | None = None
        self._next = 0  # the last publish number handed out
        self._waiting: dict[int, _Item] = {}  # published, acknowledgement not yet in
        self._order: deque[int] = deque()  # JetStream publish numbers, in order
        self._complete: set[int] = set()
        self._stored_upto = 0
        self._cond = threading.Condition()
        self._thread_waiters = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.Task[None] | None = None
        #: Futures waiting for the barrier: (publish number, failures when asked, future).
        self._barrier: deque[tuple[int, int, asyncio.Future[None]]] = deque()
        #: Round trip of the last acknowledged publish, seconds (for status and heartbeats).
        self.ack_latency = 0.0
        #: Publishes that failed (disconnected, timed out, refused), for metrics and status.
        self.failures = 0

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "connect() first"
        return self._js

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    # --- connecting ----------------------------------------------------------------------------

    async def connect(
        self,
        *,
        disconnected: Callable[[], Awaitable[None]],
        reconnected: Callable[[], Awaitable[None]],
    ) -> None:
        """Connect to NATS and set up the streams and buckets.

        Raises:
            ClusterError: no server could be reached, authentication failed, or JetStream is
                not enabled on the server.
        """
        await self.connect_only(disconnected=disconnected, reconnected=reconnected)
        nc = self.nc
        assert nc is not None
        try:
            await self._set_up()
        except (nats.errors.Error, ClusterError) as exc:
            await nc.close()
            if isinstance(exc, ClusterError):
                raise
            raise ClusterError(
                f"JetStream is not usable on {self.config.cluster.url}: {exc}"
            ) from None
        await nc.subscribe(f"{self.names.ack_prefix}.*", cb=self._on_ack)
        await nc.flush()
        self._timer = asyncio.get_running_loop().create_task(self._expire_loop())

    async def connect_only(
        self,
        *,
        disconnected: Callable[[], Awaitable[None]],
        reconnected: Callable[[], Awaitable[None]],
    ) -> None:
        """Connect to NATS, nothing more (``relaychat cluster status`` reads with it).

        Raises:
            ClusterError: no server could be reached, or authentication failed.
        """
        cl = self.config.cluster
        servers = [u.strip() for u in cl.url.split(",") if u.strip()]
        self._loop = asyncio.get_running_loop()
        options: dict[str, Any] = {
            "servers": servers,
            "name": f"relaychat {self.names.node}",
            "connect_timeout": 2,
            "reconnect_time_wait": 0.5,
            "max_reconnect_attempts": -1,
            "ping_interval": 2,
            "max_outstanding_pings": 3,
            "pending_size": 0,  # rule 3
            "allow_reconnect": True,
            "disconnected_cb": disconnected,
            "reconnected_cb": reconnected,
            "error_cb": self._error,
            "tls": _tls_context(self.config),
        }
        if cl.creds:
            options["user_credentials"] = cl.creds
        if cl.user:
            options["user"] = cl.user
            options["password"] = cl.password
        if cl.token:
            options["token"] = cl.token
        nc = NatsClient()
        seen: list[Exception] = []

        async def note(exc: Exception) -> None:
            seen.append(exc)

        try:
            # The first connection is tried once per server: a wrong URL must fail the start.
            # (nats-py tries each server max_reconnect_attempts + 1 times; 0 would mean for ever)
            probe = {k: v for k, v in options.items() if not k.endswith("_cb")}
            probe.update(error_cb=note, max_reconnect_attempts=1, allow_reconnect=False)
            await nc.connect(**probe)
        except Exception as exc:
            cause = seen[-1] if seen and isinstance(exc, nats.errors.NoServersError) else exc
            reason = (
                cause.strerror
                if isinstance(cause, OSError) and cause.strerror
                else str(cause) or type(cause).__name__
            )
            raise ClusterError(f"cannot connect to NATS at {cl.url}: {reason}") from None
        await nc.close()
        nc = NatsClient()
        try:
            await nc.connect(**options)
        except Exception as exc:  # pragma: no cover - it answered a moment ago
            raise ClusterError(f"cannot connect to NATS at {cl.url}: {exc}") from None
        self.nc = nc
        self._js = nc.jetstream(timeout=max(2.0, cl.ack_timeout))
        self._drainer = asyncio.get_running_loop().create_task(self._drain_loop())

    async def _error(self, exc: Exception) -> None:
        log.debug("NATS: %s", exc)

    async def _set_up(self) -> None:
        """Create (or update) the streams and buckets of this network."""
        js, names, cl, hist = self.js, self.names, self.config.cluster, self.config.history
        if hist.enabled:
            max_age = hist.max_age_days * 86400 or None
            per_subject = hist.max_per_target or -1
        else:  # kept only for a moment: ordering and catch-up, not history
            max_age, per_subject = 3600.0, 1000
        for name, subjects, republish in (
            (
                names.channels_stream,
                [f"{names.prefix}.c.>"],
                RePublish(src=f"{names.prefix}.c.>", dest=f"{names.prefix}.r.>"),
            ),
            (
                names.private_stream,
                [f"{names.prefix}.p.>"],
                RePublish(src=f"{names.prefix}.p.>", dest=f"{names.prefix}.q.>"),
            ),
        ):
            config = StreamConfig(
                name=name,
                subjects=subjects,
                republish=republish,
                allow_direct=True,
                max_age=max_age,
                max_msgs_per_subject=per_subject,
                storage=StorageType.FILE,
                num_replicas=cl.replicas,
                discard=DiscardPolicy.OLD,
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError:
                try:
                    await js.update_stream(config)  # retention settings changed
                except nats.errors.Error as exc:
                    raise ClusterError(
                        f"stream {name} exists with a layout this relaychat cannot use or "
                        f"change ({exc}); remove it (nats stream rm {name}) or choose another "
                        "cluster.prefix"
                    ) from None
        for bucket, ttl in (
            (names.state_bucket, None),
            (names.nodes_bucket, max(30.0, 3 * cl.node_timeout)),
            (names.accounts_bucket, None),
        ):
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    ttl=ttl,
                    storage=StorageType.FILE,
                    replicas=cl.replicas,
                    direct=True,
                )
            )
        await self._idem_bucket()

    async def _idem_bucket(self) -> None:
        """The idempotency keys' bucket (``idem.py``): its TTL is the window, which may change."""
        cfg = KeyValueConfig(
            bucket=self.names.idem_bucket,
            history=1,
            ttl=max(1.0, self.config.idempotency.window),
            storage=StorageType.FILE,
            replicas=self.config.cluster.replicas,
            direct=True,
        )
        try:
            await self.js.create_key_value(cfg)
        except nats.js.errors.BadRequestError:  # made with another window: take the new one
            info = await self.js.stream_info(f"KV_{cfg.bucket}")
            config = info.config
            config.max_age = cfg.ttl
            await self.js.update_stream(config)

    async def close(self) -> None:
        """Wait briefly for what is queued, then close the connection."""
        if self._timer is not None:
            self._timer.cancel()
        deadline = time.monotonic() + 2.0
        while (self._queue or self._waiting) and time.monotonic() < deadline and self.connected:
            await asyncio.sleep(0.01)
        self._fail_all("closing")
        if self._drainer is not None:
            self._drainer.cancel()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.close(), 2.0)
            except (TimeoutError, nats.errors.Error):  # pragma: no cover
                pass

    # --- publishing (rules 1-4) ----------------------------------------------------------------

    def publish_js(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None = None,
        done: Done | None = None,
    ) -> None:
        """Queue a JetStream publish; ``done(ack)`` is called on the loop when it ends.

        Never blocks. The publish counts for the barrier until it ends (rule 2).
        """
        self._next += 1
        item = _Item(subject, payload, headers, self._next, done)
        self._order.append(item.ident)
        if not self.connected:
            self._finish(item, Ack(0, "not connected to NATS"))
            return
        self._queue.append(item)
        self._kick()

    def publish_merged(self, subject: str, payload: bytes) -> None:
        """Queue a JetStream publish of ``payload``, or append it to the publish queued last
        when that one is to the same subject, merged too, and not sent yet (rule 5).

        The caller's payloads must be self-delimiting (``wire.channel_payload``): one stream
        message then carries several, with one acknowledgement for all of them.
        """
        queue = self._queue
        if queue:
            last = queue[-1]
            parts = last.parts
            if (
                parts is not None
                and last.subject == subject
                and len(parts) < MERGE_MAX
                and last.size + len(payload) <= MERGE_BYTES
            ):
                parts.append(payload)
                last.size += len(payload)
                return
        self.publish_js(subject, payload)
        if queue and queue[-1].ident == self._next:
            queue[-1].parts = [payload]

    def publish(self, subject: str, payload: bytes) -> None:
        """Queue a core NATS publish (no acknowledgement), in order with the rest (rule 1)."""
        if not self.connected:
            return
        self._queue.append(_Item(subject, payload, None, 0, None))
        self._kick()

    def kv_put(
        self,
        bucket: str,
        key: str,
        value: bytes,
        *,
        last: int | None = None,
        done: Done | None = None,
    ) -> None:
        """Write ``value`` at ``key`` (only over revision ``last`` when given: 0 = create)."""
        headers = None if last is None else {"Nats-Expected-Last-Subject-Sequence": str(last)}
        self.publish_js(self.names.kv_subject(bucket, key), value, headers, done)

    async def kv_write(self, bucket: str, key: str, value: bytes, *, last: int | None) -> Ack:
        """:meth:`kv_put`, awaited: the write's acknowledgement."""
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()

        def done(ack: Ack) -> None:
            if not future.done():
                future.set_result(ack)

        self.kv_put(bucket, key, value, last=last, done=done)
        return await future

    def kv_delete(
        self, bucket: str, key: str, *, last: int | None = None, done: Done | None = None
    ) -> None:
        """Delete ``key`` (only at revision ``last`` when given)."""
        headers = {"KV-Operation": "DEL"}
        if last:
            headers["Nats-Expected-Last-Subject-Sequence"] = str(last)
        self.publish_js(self.names.kv_subject(bucket, key), b"", headers, done)

    def _kick(self) -> None:
        """Wake the drain task (one task for the node's life: no task made per loop turn)."""
        if not self._draining:
            self._draining = True
            self._wake.set()

    async def _drain_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._drain()
            finally:
                self._draining = False
                if self._queue:  # queued while the last publish was being written
                    self._kick()

    async def _drain(self) -> None:
        nc = self.nc
        assert nc is not None
        prefix = self.names.ack_prefix
        while self._queue:
            item = self._queue.popleft()
            try:
                if item.ident:
                    item.issued = time.monotonic()
                    self._waiting[item.ident] = item
                    parts = item.parts
                    if parts is not None and len(parts) > 1:
                        item.payload = b"".join(parts)
                    item.parts = None
                    await nc.publish(
                        item.subject,
                        item.payload,
                        reply=f"{prefix}.{item.ident}",
                        headers=item.headers,
                    )
                else:
                    await nc.publish(item.subject, item.payload)
            except Exception as exc:  # disconnected, too big...: this one fails, go on
                if item.ident:
                    self._waiting.pop(item.ident, None)
                    self._finish(item, Ack(0, str(exc) or type(exc).__name__))

    async def _on_ack(self, msg: Msg) -> None:
        try:
            ident = int(msg.subject.rsplit(".", 1)[1])
        except ValueError:  # pragma: no cover - not ours
            return
        item = self._waiting.pop(ident, None)
        if item is None:
            return  # timed out already
        self.ack_latency = time.monotonic() - item.issued
        raw = msg.data
        at = raw.find(b'"seq":') if b'"error"' not in raw else -1
        if at >= 0:  # the common case, without a JSON parse: {"stream":"...","seq":N...}
            end = at + 6
            while end < len(raw) and raw[end : end + 1].isdigit():
                end += 1
            self._finish(item, Ack(int(raw[at + 6 : end] or b"0")))
            return
        try:
            error = json.loads(raw).get("error") or {"description": "no sequence"}
        except (ValueError, AttributeError):
            error = {"description": "unreadable acknowledgement"}
        self._finish(
            item, Ack(0, str(error.get("description", "error")), int(error.get("err_code", 0)))
        )

    def _finish(self, item: _Item, ack: Ack) -> None:
        if not ack.ok and ack.code != WRONG_LAST_SEQUENCE:
            self.failures += 1
        self._complete.add(item.ident)
        order = self._order
        advanced = False
        while order and order[0] in self._complete:
            self._complete.discard(order.popleft())
            advanced = True
        if advanced:
            self._stored_upto = order[0] - 1 if order else self._next
            if self._thread_waiters:
                with self._cond:
                    self._cond.notify_all()
            barrier = self._barrier
            while barrier and barrier[0][0] <= self._stored_upto:
                _, failures, future = barrier.popleft()
                if future.done():
                    continue
                if self.failures != failures:
                    future.set_exception(RuntimeError("JetStream refused or lost some messages"))
                else:
                    future.set_result(None)
        if item.done is not None:
            try:
                item.done(ack)
            except Exception:  # a callback's bug must not stop the others
                log.exception("cluster: completion of a publish to %s failed", item.subject)

    def _fail_all(self, reason: str) -> None:
        queued = [i for i in self._queue if i.ident]
        self._queue.clear()
        waiting = sorted(self._waiting.values(), key=lambda i: i.ident)
        self._waiting.clear()
        for item in (*waiting, *queued):
            self._finish(item, Ack(0, reason))

    def disconnected(self) -> None:
        """The connection dropped: everything in flight has failed (rule 3)."""
        self._fail_all("disconnected from NATS")

    async def _expire_loop(self) -> None:
        timeout = self.config.cluster.ack_timeout
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            now = time.monotonic()
            late = [i for i in self._waiting.values() if now - i.issued > timeout]
            for item in sorted(late, key=lambda i: i.ident):
                self._waiting.pop(item.ident, None)
                self._finish(item, Ack(0, f"not acknowledged in {timeout:g} s"))

    # --- the barrier (rule 2) ------------------------------------------------------------------

    def pending(self) -> bool:
        """Whether some JetStream publish has not ended yet."""
        return bool(self._order)

    def issued(self) -> int:
        """The number of the last JetStream publish handed out."""
        return self._next

    def wait_stored(self, upto: int | None = None, timeout: float | None = None) -> bool:
        """Block (in a worker thread) until every publish up to ``upto`` (default: all issued
        so far) has ended. Returns whether they did before ``timeout``."""
        target = self._next if upto is None else upto
        limit = self.config.cluster.ack_timeout + 1.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        with self._cond:
            self._thread_waiters += 1
            try:
                # Short waits: the loop notifies without the lock, and may miss one.
                while self._stored_upto < target and time.monotonic() < deadline:
                    self._cond.wait(min(0.05, max(0.0, deadline - time.monotonic())))
                return self._stored_upto >= target
            finally:
                self._thread_waiters -= 1

    def stored_future(self) -> asyncio.Future[None]:
        """A future done once every JetStream publish issued so far has ended (on the loop,
        no thread); it fails when one of them failed."""
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        if self._stored_upto >= self._next:
            future.set_result(None)
        else:
            self._barrier.append((self._next, self.failures, future))
        return future

    async def settled(self, timeout: float | None = None) -> bool:
        """Wait (on the loop) until every JetStream publish issued so far has ended."""
        target = self._next
        deadline = time.monotonic() + (timeout or self.config.cluster.ack_timeout + 1.0)
        while self._stored_upto < target and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return self._stored_upto >= target

    # --- reading -------------------------------------------------------------------------------

    async def kv_get(self, bucket: str, key: str) -> Stored | None:
        """The latest value of ``key`` (``None``: never written, or purged)."""
        try:
            msg = await self.js.get_msg(
                f"KV_{bucket}", subject=self.names.kv_subject(bucket, key), direct=True
            )
        except nats.js.errors.NotFoundError:
            return None
        op = (msg.headers or {}).get("KV-Operation")
        return Stored(int(msg.seq or 0), None if op in ("DEL", "PURGE") else (msg.data or b""))
