"""History in JetStream streams, read through a node-local index: the cluster's HistoryStore.

Rules (on top of ``store/base.py``):
1. The streams are the history: a channel message is published (with its delivery) by the
   node it was said on, to ``P.c.<chan>.m``; a private message to ``P.p.<a>.<b>.<node>``, with
   the bytes for its recipient when that one is on another node (``<node>``), which JetStream
   republishes to that node once stored (one message: stored, then delivered). The stream
   sequence is the message's ``seq``; its time is the one the sender's node gave it, raised to
   the previous message's time of the same conversation when clocks disagree, so positions sort
   in stream order on every node alike.
2. Reads (CHATHISTORY, replay on JOIN) are answered from this node's index of the streams (a
   ``MemoryHistory``), which the node refreshes from JetStream before the command runs
   (``node.py`` holds the command meanwhile, :meth:`ClusterHistory.refresh`). So every node gives
   the same answer, whoever said what where.
3. ``append`` of a channel message only stashes it: the channel event that follows carries it
   (``take``); so does ``append`` of a private message for a user of another node: the bytes
   the core sends that user next carry it (``take_private``). A record nothing took (a REDACT)
   is published on its own when the server's flush asks ``has_pending`` (before the barrier, so
   it is covered by it).
4. The durability barrier is the node's (``Jet.wait_stored``): ``commit_pending`` returns when
   JetStream has acknowledged everything published so far, or raises after ``ack_timeout``.
5. The index is bounded: retention (``history.*``) is applied to it as to the streams, and a
   conversation not read for ``IDLE_EVICT`` seconds (and not fed live) is dropped from it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import nats.errors
from nats.js.api import DeliverPolicy

from relaychat.cluster.jet import MERGE_MAX, scan_config
from relaychat.cluster.names import Names
from relaychat.cluster.wire import (
    dumps,
    read_channel,
    read_private,
    stored_from_json,
    stored_to_json,
)
from relaychat.config import Config
from relaychat.store.base import Entry, StoredMessage, is_private
from relaychat.store.memory import MemoryHistory

if TYPE_CHECKING:
    from relaychat.cluster.jet import Jet

__all__ = ["IDLE_EVICT", "ClusterHistory"]

log = logging.getLogger("relaychat.cluster")

#: Seconds after which a conversation nobody read (and no live feed keeps fresh) leaves the index.
IDLE_EVICT = 600.0
#: Positions per stream message: the index's ``seq`` of the ``i``-th record of stream message
#: ``n`` is ``n * PER_MESSAGE + i`` (several channel messages may share one: ``jet.py`` rule 5).
PER_MESSAGE = 1024
assert PER_MESSAGE > MERGE_MAX
#: Messages fetched per request when the index loads a conversation.
FETCH_BATCH = 500
#: Live records kept unparsed per conversation; past it, the conversation leaves the index.
RAW_LIMIT = 1000


class ClusterHistory(MemoryHistory):
    """The HistoryStore of a cluster node (see the module rules).

    Args:
        config: the server's configuration (``history.*`` retention).
        jet: the node's NATS connection.
        names: the network's names.
    """

    def __init__(
        self,
        config: Config,
        jet: Jet,
        names: Names,
        locate: Callable[[str], tuple[str, int] | None] = lambda nick: None,
    ) -> None:
        hist = config.history
        super().__init__(max_age_days=hist.max_age_days, max_per_target=hist.max_per_target)
        self._jet = jet
        self._names = names
        self._stash: dict[str, StoredMessage] = {}
        #: Where a nick's user is, when on another node: (node, uid).
        self._locate = locate
        #: A private message waiting for the bytes of its remote recipient: (message, node, uid).
        self._private: tuple[StoredMessage, str, int] | None = None
        #: Per conversation key: the last stream sequence the index holds (it is complete up
        #: to there). A key absent was never loaded.
        self._loaded: dict[str, int] = {}
        self._live: set[str] = set()  # keys fed live by a channel subscription
        #: Live records not parsed yet, per key: (sequence, records' JSON) (see :meth:`feed`).
        self._raw: dict[str, list[tuple[int, list[bytes]]]] = {}
        self._used: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # --- writing (rules 3 and 4) ---------------------------------------------------------------

    def append(self, message: StoredMessage) -> None:
        """Stash a channel message for its event, a private one for its recipient's bytes, or
        publish a private one at once (recipient here, or none) (rule 3)."""
        if not is_private(message.key):
            self._stash[message.msgid] = message
            return
        if self._private is not None:
            self._publish_private()
        where = self._locate(message.target)
        if where is None:
            payload = dumps({"h": stored_to_json(message)})
            self._jet.publish_js(self._names.private_subject(message.key, "_"), payload)
        else:
            self._private = (message, where[0], where[1])

    def take(self, msgid: str) -> StoredMessage | None:
        """The stashed channel message ``msgid`` (its event carries it), if any."""
        return self._stash.pop(msgid, None) if self._stash else None

    def take_private(self, node: str, uid: int) -> StoredMessage | None:
        """The private message stashed for user ``uid`` of ``node``, if any."""
        private = self._private
        if private is None or private[1] != node or private[2] != uid:
            return None
        self._private = None
        return private[0]

    def _publish_private(self) -> None:
        private, self._private = self._private, None
        if private is not None:
            payload = dumps({"h": stored_to_json(private[0])})
            self._jet.publish_js(self._names.private_subject(private[0].key, "_"), payload)

    def _publish_leftovers(self) -> None:
        stash, self._stash = self._stash, {}
        for message in stash.values():
            subject = self._names.channel_subject(message.key, "m")
            self._jet.publish_js(subject, dumps({"h": stored_to_json(message)}))
        self._publish_private()

    def has_pending(self) -> bool:
        """Whether publishes wait for JetStream (publishing stashed records first, rule 3)."""
        if self._stash or self._private is not None:
            self._publish_leftovers()
        return self._jet.pending()

    def commit_pending(self) -> None:
        """Wait until JetStream has everything published so far (rule 4). Blocking.

        Raises:
            TimeoutError: some publish was not acknowledged in time (it may be lost).
        """
        failures = self._jet.failures
        if not self._jet.wait_stored():
            raise TimeoutError("JetStream did not acknowledge in time")
        if self._jet.failures != failures:
            raise RuntimeError("JetStream refused or lost some messages (see the log)")

    def commit_soon(self) -> asyncio.Future[None]:
        """:meth:`commit_pending` without a thread: the server's flush waits on this future."""
        return self._jet.stored_future()

    def close(self) -> None:
        """Nothing to release: the streams are JetStream's."""

    def tip(self) -> tuple[int, int]:
        """Now, as a position: a reader taking a nick sees only the private messages relayed
        after this (``store/base.py`` ``Reader``). The index does not number what it is handed
        (the streams do), so the time stands for "newest": a message stamped by a node whose
        clock is behind may fall before it."""
        return (int(time.time() * 1000), 0)

    def set_read_marker(self, owner: str, target: str, time_ms: int) -> None:
        """Keep ``owner``'s read marker here and in the state bucket (every node's)."""
        if time_ms <= (self.read_marker(owner, target) or -1):
            return
        super().set_read_marker(owner, target, time_ms)
        key = self._names.marker_key(owner, target)
        self._jet.kv_put(self._names.state_bucket, key, str(time_ms).encode())

    def set_read_marker_quietly(self, owner: str, target: str, value: bytes) -> None:
        """A read marker from the state bucket (another node's, or ours coming back)."""
        try:
            super().set_read_marker(owner, target, int(value))
        except ValueError:
            pass

    # --- the index (rules 1, 2 and 5) ----------------------------------------------------------

    def _ingest(self, key: str, seq: int, message: StoredMessage, index: int = 0) -> None:
        """Put ``message``, the ``index``-th record of stream message ``seq``, in the index."""
        ms = int(message.time * 1000)
        entries = self._by_key.get(key)
        if entries and entries[-1].time_ms > ms:
            ms = entries[-1].time_ms  # rule 1: the stream's order wins over the clocks
        self.insert(Entry(ms, seq * PER_MESSAGE + index, message))
        self._loaded[key] = seq

    def feed(self, key: str, seq: int, last: int, records: list[bytes]) -> None:
        """Channel messages arrived live in stream message ``seq`` (``last``: the previous
        sequence of its subject; ``records``: their history records' JSON).

        The index takes it only when it follows what it holds (otherwise the next
        :meth:`refresh` loads the gap), and parses it only when the conversation is read
        (:meth:`ready`): most live messages are never asked for. A conversation nobody read
        for :data:`RAW_LIMIT` messages is dropped from the index instead (the stream has it;
        the next read loads it again), so an unread busy channel costs nothing here.
        """
        self._live.add(key)
        if self._loaded.get(key) != last:
            return
        raw = self._raw.get(key)
        if raw is None:
            raw = self._raw[key] = []
        raw.append((seq, records))
        self._loaded[key] = seq
        if len(raw) >= RAW_LIMIT:
            del self._raw[key]
            self._loaded.pop(key, None)
            self.forget(key)

    def _materialize(self, key: str) -> None:
        """Parse the records :meth:`feed` kept raw for ``key`` into the index."""
        for seq, records in self._raw.pop(key, ()):
            for index, record in enumerate(records):
                try:
                    message = stored_from_json(json.loads(record))
                except (KeyError, TypeError, ValueError):
                    continue
                self._ingest(key, seq, message, index)

    def unfeed(self, key: str) -> None:
        """The channel's live feed stopped: the index may fall behind from now on."""
        self._live.discard(key)

    def ready(self, key: str) -> bool:
        """Whether the index can answer for ``key`` without a refresh (fed live, loaded).

        Call it before reading ``key``: it also parses what was fed raw.
        """
        if key in self._raw:
            self._materialize(key)
        return key in self._live and key in self._loaded

    async def refresh(self, key: str) -> None:
        """Load what the stream has of ``key`` beyond what the index holds (rule 2).

        Raises:
            nats.errors.Error: JetStream could not be read.
        """
        self._used[key] = time.monotonic()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key in self._raw:
                self._materialize(key)
            if is_private(key):
                stream, subject = self._names.private_stream, self._names.private_subject(key)
                # (the subject names every recipient node: P.p.<a>.<b>.*)
            else:
                stream, subject = (
                    self._names.channels_stream,
                    self._names.channel_subject(key, "m"),
                )
            start = self._loaded.get(key, 0) + 1
            first_load = key not in self._loaded
            js = self._jet.js
            config = scan_config(
                subject, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            )
            sub = await js.pull_subscribe(subject, stream=stream, config=config)
            try:
                info = await sub.consumer_info()
                pending = int(info.num_pending or 0)
                count = 0
                while pending > 0:
                    msgs = await sub.fetch(min(pending, FETCH_BATCH), timeout=2.0)
                    if not msgs:
                        break
                    for msg in msgs:
                        seq = msg.metadata.sequence.stream
                        if seq <= self._loaded.get(key, 0):
                            continue
                        try:
                            messages = _records(msg.data)
                        except (KeyError, TypeError, ValueError):
                            self._loaded[key] = seq
                            continue
                        for index, message in enumerate(messages):
                            self._ingest(key, seq, message, index)
                        self._loaded[key] = seq
                        count += 1
                    pending -= len(msgs)
                if first_load:
                    self._loaded.setdefault(key, 0)
                    self._mark_trimmed(key, count)
            finally:
                try:
                    await js.delete_consumer(stream, sub._consumer)
                except (nats.errors.Error, AttributeError):
                    pass
                await sub.unsubscribe()

    def _mark_trimmed(self, key: str, count: int) -> None:
        """A first load that found as many messages as the stream keeps: older ones are gone."""
        entries = self._by_key.get(key)
        if entries and self.max_per_target and count >= self.max_per_target:
            first = entries[0]
            self._trimmed[key] = (first.time_ms, first.seq - 1)

    def stale(self) -> None:
        """Everything may have changed (NATS was away): refresh before answering again."""
        self._live.clear()

    def evict_idle(self, now: float) -> int:
        """Drop conversations not read for ``IDLE_EVICT`` seconds and not fed live (rule 5)."""
        gone = [
            k for k, used in self._used.items() if now - used > IDLE_EVICT and k not in self._live
        ]
        for key in gone:
            self._raw.pop(key, None)
            self.forget(key)
            self._loaded.pop(key, None)
            self._used.pop(key, None)
            self._locks.pop(key, None)
        self.prune()
        return len(gone)

    def touch(self, key: str) -> None:
        """``key`` is being read (keeps it in the index)."""
        self._used[key] = time.monotonic()


def _records(payload: bytes) -> list[StoredMessage]:
    """The history records of a stream message (several for merged channel events).

    Raises:
        KeyError, TypeError, ValueError: not such a message.
    """
    if payload[:3] == b"E1 ":
        return [stored_from_json(json.loads(r)) for _, _, r in read_channel(payload) if r]
    return [stored_from_json(read_private(payload)[3])]
