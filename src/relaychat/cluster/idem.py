"""Exactly-once on a cluster: idempotency keys in a JetStream key-value bucket, claimed before
their message is relayed (``relaychat.dev/idempotency``, docs/delivery.md).

Rules:
1. A key lives in the bucket ``P-idem`` (its TTL is ``idempotency.window``), under
   ``<sender as hex>.<key>``, whichever node the message reached. It is *claimed* before its
   message is relayed: a create (revision 0) that fails when the key exists, so two nodes (or
   two connections of one node) can never both relay one key. The claim is *pending*
   (``{"p":1,"n":node,"g":incarnation,"t":time}``) until the node that claimed it has relayed
   the message; then that node overwrites it with the *record* (what was relayed: targets,
   msgids, time, text; compare-and-set on the claim's revision). The record goes through the
   node's ordered outbox after the message's own publishes, so the echo that confirms the
   line, which waits for the durability barrier, waits for the record too.
2. A node that finds a record answers the repeat from it: the original echo, same msgid and
   time (the core's ``KeyIndex`` does, once the record is in this store). A pending claim of a
   live node is waited for (it resolves within ``cluster.ack_timeout``); a claim whose node
   died between claiming and recording is taken over: the message's conversations are read
   back from the streams from the claim's time on, and a message carrying the key there is
   adopted as the record (it was relayed); otherwise the message is relayed now.
3. A message relayed nowhere (every target refused: ``404``...) releases its claim, so its
   repeat is tried afresh, as on one process.
4. This store holds the records this node wrote or read, for the window, at most
   ``idempotency.max_keys``: repeats on the same node are answered from memory.
5. The secret that signs ``IDEM TOKEN`` tokens is the network's (state bucket key ``s.idem``,
   made by the first node), so a token issued by one node is valid on every other.
6. While the node is cut off from NATS, keyed messages are refused
   (``FAIL <verb> TEMPORARILY_UNAVAILABLE``): a key that cannot be claimed could be relayed
   twice. The library reports such a line as not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import nats.errors
from nats.js.api import DeliverPolicy

from relaychat.cluster.base import Claim, Node
from relaychat.cluster.jet import WRONG_LAST_SEQUENCE, Ack, Stored, scan_config
from relaychat.cluster.wire import dumps, read_channel, read_private
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.servertime import parse_server_time
from relaychat.server.idempotency import TAG
from relaychat.store.base import StoredMessage, conversation_key
from relaychat.store.keys import KeyRecord

__all__ = ["Claim", "ClusterKeys", "record_from_json", "record_to_json"]

log = logging.getLogger("relaychat.cluster")

#: The state bucket's key holding the token secret (rule 5).
SECRET_KEY = "s.idem"
#: Seconds between reads of a pending claim while its node relays the message.
POLL = 0.02
#: Most reads of one key while claiming it (each wait for a live node's record is one).
MAX_TRIES = 1000
#: Most stream messages read per conversation when a dead node's claim is resolved (rule 2).
SCAN_LIMIT = 2000


def record_to_json(record: KeyRecord) -> dict[str, Any]:
    """A key's record as JSON (the bucket's value)."""
    return {
        "s": record.sender,
        "k": record.key,
        "t": record.time,
        "src": record.source,
        "c": record.command,
        "x": record.text,
        "tg": record.tags,
        "to": [list(pair) for pair in record.sent],
    }


def record_from_json(d: dict[str, Any]) -> KeyRecord:
    """The inverse of :func:`record_to_json`.

    Raises:
        KeyError, TypeError, ValueError: ``d`` is not such a record.
    """
    return KeyRecord(
        str(d["s"]),
        str(d["k"]),
        float(d["t"]),
        str(d["src"]),
        str(d["c"]),
        str(d["x"]),
        {str(k): str(v) for k, v in dict(d.get("tg") or {}).items()},
        tuple((str(t), str(m)) for t, m in d["to"]),
    )


class ClusterKeys:
    """The cluster's idempotency keys: the ``KeyStore`` of the core's ``KeyIndex`` on a node,
    and the claims made in the bucket (see the module rules).

    Args:
        node: this node.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.jet = node.jet
        cfg = node.config.idempotency
        self.window = cfg.window
        self.max_keys = cfg.max_keys
        self.bucket = node.names.idem_bucket
        self._secret = b""
        #: (sender, key) -> record, oldest first (rule 4).
        self._records: OrderedDict[tuple[str, str], KeyRecord] = OrderedDict()
        #: Claims this node holds and has not recorded yet: (sender, key) -> revision.
        self.claims: dict[tuple[str, str], int] = {}
        #: Repeats answered from another node's record, and claims taken over (for tests).
        self.adopted = 0
        self.taken_over = 0

    @staticmethod
    def kv_key(sender: str, key: str) -> str:
        return f"{sender.encode('utf-8').hex()}.{key}"

    # --- start (rule 5) ------------------------------------------------------------------------

    async def start(self) -> None:
        """Read (or make) the network's token secret. Call once connected.

        Raises:
            nats.errors.Error: NATS could not be read.
        """
        bucket = self.node.names.state_bucket
        for _ in range(5):
            found = await self.jet.kv_get(bucket, SECRET_KEY)
            if found is not None and found.value:
                self._secret = bytes.fromhex(found.value.decode("ascii"))
                return
            ack = await self.jet.kv_write(
                bucket,
                SECRET_KEY,
                secrets.token_hex(32).encode(),
                last=found.revision if found is not None else 0,
            )
            if not ack.ok and ack.code != WRONG_LAST_SEQUENCE:
                raise nats.errors.Error(f"cannot store the token secret: {ack.error}")
        raise nats.errors.Error("cannot agree on the token secret")

    # --- the KeyStore (store/keys.py) ----------------------------------------------------------

    def key_secret(self) -> bytes:
        return self._secret

    def append_keyed(self, record: KeyRecord, messages: Sequence[StoredMessage]) -> None:
        """Write ``record`` over this node's claim (rule 1); ``messages`` (when the caller
        hands them here rather than to history: a multiline batch) go to the history, which
        stashes them for their events (the keys are not kept with history here)."""
        history = self.node.history
        if history is not None:
            for message in messages:
                history.append(message)
        self._remember(record)
        revision = self.claims.pop((record.sender, record.key), None)
        if revision is None:
            log.warning("cluster: key %s of %s relayed without a claim", record.key, record.sender)
        self.jet.kv_put(
            self.bucket,
            self.kv_key(record.sender, record.key),
            dumps(record_to_json(record)),
            last=revision,
            done=self._recorded,
        )

    def _recorded(self, ack: Ack) -> None:
        if not ack.ok:
            log.warning("cluster: an idempotency key could not be recorded: %s", ack.error)

    def recall_key(self, sender: str, key: str, since: float) -> KeyRecord | None:
        found = self._records.get((sender, key))
        return found if found is not None and found.time >= since else None

    def recent_keys(self, since: float, limit: int) -> list[tuple[str, str, float]]:
        return []  # the bucket is the truth: keys are read from it on a miss

    def prune_keys(self, before: float) -> int:
        records, gone = self._records, 0
        while records and next(iter(records.values())).time < before:
            records.popitem(last=False)
            gone += 1
        return gone

    def _remember(self, record: KeyRecord) -> None:
        ident = (record.sender, record.key)
        self._records.pop(ident, None)
        self._records[ident] = record
        self.prune_keys(time.time() - self.window)
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def known(self, sender: str, key: str, now: float) -> bool:
        """Whether this node holds the record of ``(sender, key)`` (rule 4)."""
        return self.recall_key(sender, key, now - self.window) is not None

    # --- claims (rules 1-3) --------------------------------------------------------------------

    async def claim(self, sender: str, key: str, source: str, targets: str) -> Claim:
        """Claim ``(sender, key)`` for a message of ``source`` to ``targets`` (rules 1, 2)."""
        node = self.node
        kv_key = self.kv_key(sender, key)
        pending = dumps(
            {
                "p": 1,
                "n": node.name,
                "g": node.incarnation,
                "t": time.time(),
                "src": source,
                "to": targets,
            }
        )
        cl = node.config.cluster
        deadline = time.monotonic() + cl.ack_timeout + 2 * cl.heartbeat
        last = 0
        for _ in range(MAX_TRIES):
            ack = await self.jet.kv_write(self.bucket, kv_key, pending, last=last)
            if ack.ok:
                self.claims[(sender, key)] = ack.seq
                return Claim.NEW
            if ack.code != WRONG_LAST_SEQUENCE or node.isolated:
                return Claim.UNAVAILABLE
            found = await self.jet.kv_get(self.bucket, kv_key)
            if found is None:
                last = 0
                continue
            if found.value is None:  # released (rule 3): claim over the deletion
                last = found.revision
                continue
            try:
                value = json.loads(found.value)
                if not value.get("p"):
                    self._remember(record_from_json(value))
                    self.adopted += 1
                    return Claim.KNOWN
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("cluster: ignoring a malformed idempotency key %s", kv_key)
                last = found.revision
                continue
            if self._alive(value) and time.monotonic() < deadline:
                await asyncio.sleep(POLL)  # its node is relaying it: wait for the record
                last = 0
                continue
            return await self._take_over(sender, key, kv_key, found, value, pending)
        return Claim.UNAVAILABLE

    def _alive(self, claim: dict[str, Any]) -> bool:
        node = self.node
        name, inc = str(claim.get("n")), str(claim.get("g"))
        if name == node.name and inc == node.incarnation:
            return True
        liveness = node.liveness
        return liveness.incarnation_of(name) == inc and not liveness.silent(name)

    async def _take_over(
        self,
        sender: str,
        key: str,
        kv_key: str,
        found: Stored,
        claim: dict[str, Any],
        pending: bytes,
    ) -> Claim:
        """The node that claimed ``key`` died before recording it (rule 2)."""
        since = float(claim.get("t") or 0.0)
        record = await self._search(sender, key, since, str(claim.get("src", "")), claim)
        if record is not None:
            ack = await self.jet.kv_write(
                self.bucket, kv_key, dumps(record_to_json(record)), last=found.revision
            )
            self._remember(record)
            self.adopted += 1
            return Claim.KNOWN if ack.ok or ack.code == WRONG_LAST_SEQUENCE else Claim.UNAVAILABLE
        ack = await self.jet.kv_write(self.bucket, kv_key, pending, last=found.revision)
        if not ack.ok:
            return Claim.UNAVAILABLE  # somebody else took it over meanwhile: asked again later
        self.claims[(sender, key)] = ack.seq
        self.taken_over += 1
        log.info("cluster: took over the idempotency key %s of a node that died", key)
        return Claim.NEW

    async def _search(
        self, sender: str, key: str, since: float, source: str, claim: dict[str, Any]
    ) -> KeyRecord | None:
        """The message carrying ``key`` in the conversations of a dead node's claim, as a
        record, if the streams have it (it was relayed before the node died)."""
        names = self.node.names
        nick = source.split("!", 1)[0]
        sent: list[tuple[str, str]] = []
        found: dict[str, Any] | None = None
        for target in str(claim.get("to", "")).split(","):
            if not target:
                continue
            name = target[1:] if target[:1] in "@+" and target[1:2] == "#" else target
            if name[:1] == "#":
                stream = names.channels_stream
                subject = f"{names.prefix}.c.{irc_lower(name).encode().hex()}.*"
            else:
                stream = names.private_stream
                subject = names.private_subject(conversation_key(nick, name))
            hit = await self._scan(stream, subject, key, source, since)
            if hit is not None:
                sent.append((target if name[:1] == "#" else name, str(hit["i"])))
                found = hit
        if found is None:
            return None
        tags = dict(found.get("tg") or found.get("c") or {})
        text = str(found.get("x", ""))
        verb = str(found.get("cmd", "")) or "PRIVMSG"
        return KeyRecord(sender, key, float(found["t"]), source, verb, text, tags, tuple(sent))

    async def _scan(
        self, stream: str, subject: str, key: str, source: str, since: float
    ) -> dict[str, Any] | None:
        """The first message of ``subject`` from ``since`` on whose tags carry ``key``."""
        js = self.jet.js
        start = datetime.datetime.fromtimestamp(max(0.0, since - 2.0), datetime.UTC)
        config = scan_config(
            subject, deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start
        )
        try:
            sub = await js.pull_subscribe(subject, stream=stream, config=config)
        except nats.errors.Error:
            return None
        try:
            seen = 0
            while seen < SCAN_LIMIT:
                try:
                    msgs = await sub.fetch(200, timeout=0.5)
                except (nats.errors.TimeoutError, TimeoutError):
                    break
                if not msgs:
                    break
                for msg in msgs:
                    seen += 1
                    hit = _carries(msg.data, key, source)
                    if hit is not None:
                        return hit
        finally:
            with contextlib.suppress(nats.errors.Error, AttributeError):
                await js.delete_consumer(stream, sub._consumer)
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        return None

    def release(self, sender: str, key: str) -> None:
        """Nothing was relayed for this node's claim of ``(sender, key)``: free it (rule 3)."""
        revision = self.claims.pop((sender, key), None)
        if revision is not None:
            self.jet.kv_delete(self.bucket, self.kv_key(sender, key), last=revision)


def _carries(payload: bytes, key: str, source: str) -> dict[str, Any] | None:
    """A stream message's ``{"i", "t", "x", "tg", "cmd"}`` when it holds ``source``'s message
    carrying idempotency ``key``, else ``None``."""
    if key.encode() not in payload:
        return None
    try:
        if payload[:3] == b"P1 ":
            events: list[tuple[dict[str, Any], bytes, dict[str, Any]]] = [
                ({}, b"", read_private(payload)[3])
            ]
        else:
            events = [
                (meta, line, json.loads(record) if record else {})
                for meta, line, record in read_channel(payload)
            ]
    except (ValueError, KeyError):
        return None
    for data, raw_line, record in events:
        tags = record.get("tg") or data.get("c") or {}
        if tags.get(TAG) != key:
            continue
        if record:
            if record.get("s") != source:
                continue
            return {
                "i": record["i"],
                "t": record["t"],
                "x": record.get("x", ""),
                "tg": tags,
                "cmd": record.get("c", ""),
            }
        line = raw_line.decode("utf-8", "replace")
        if line.startswith(f":{source} "):
            verb = line.split(" ", 2)[1] if " " in line else ""
            t = _epoch(str(data.get("t", "")))
            return {"i": data["i"], "t": t, "x": "", "tg": tags, "cmd": verb}
    return None


def _epoch(stamp: str) -> float:
    """An IRCv3 server-time stamp as epoch seconds (0 when unreadable)."""
    ms = parse_server_time(stamp)
    return ms / 1000 if ms is not None else 0.0
