"""MemoryHistory: the history interface kept in memory, for tests (and nothing durable).

It follows every rule of ``store/base.py`` (and ``store/keys.py``) except durability:
``commit_pending`` only marks the records as written. Thread-safe: one lock around everything,
held briefly.
"""

from __future__ import annotations

import bisect
import secrets
import threading
import time as _time
from collections.abc import Sequence
from dataclasses import replace

from relaychat.store.base import (
    Conversation,
    Entry,
    Position,
    Reader,
    StoredMessage,
    involves,
    is_private,
    merge,
    redaction_span,
    select,
    select_redactions,
    select_targets,
)
from relaychat.store.keys import KeyRecord

__all__ = ["MemoryHistory"]


class MemoryHistory:
    """History in dictionaries: per conversation, entries in order.

    Args:
        max_age_days: retention by age (0 keeps everything), applied by :meth:`prune`.
        max_per_target: retention by count per conversation (0 keeps everything).
        max_read_markers: read markers kept per owner (the oldest forgotten first).
    """

    def __init__(
        self, *, max_age_days: float = 0.0, max_per_target: int = 0, max_read_markers: int = 1000
    ) -> None:
        self.max_age_days = max_age_days
        self.max_per_target = max_per_target
        self.max_read_markers = max_read_markers
        self._markers: dict[str, dict[str, int]] = {}  # owner -> target -> time_ms
        self._lock = threading.Lock()
        self._seq = 0
        self._last_ms = 0
        self._pending = 0
        self._by_key: dict[str, list[Entry]] = {}
        self._by_msgid: dict[str, Entry] = {}
        self._trimmed: dict[str, Position] = {}
        self._keys: dict[tuple[str, str], KeyRecord] = {}  # (sender, key) -> record
        self._secret = secrets.token_bytes(32)
        #: How many commits ran (tests check the group commit through it).
        self.commits = 0

    # --- writing ---------------------------------------------------------------------------

    def append(self, message: StoredMessage) -> None:
        """Keep ``message`` (see :meth:`HistoryStore.append`)."""
        with self._lock:
            self._add(message)

    def _add(self, message: StoredMessage) -> None:
        """Number and keep ``message`` (the lock is held)."""
        ms = int(message.time * 1000)
        if ms < self._last_ms:
            ms = self._last_ms
        self._last_ms = ms
        self._seq += 1
        entry = Entry(ms, self._seq, message)
        self._by_key.setdefault(message.key, []).append(entry)
        self._by_msgid[message.msgid] = entry
        self._pending += 1
        if message.redacts is not None:
            self._redact(message.key, message.redacts)

    def insert(self, entry: Entry) -> bool:
        """Keep ``entry`` at the position it has (a store that mirrors another's order: the
        cluster's index of a JetStream stream). Entries of one key must come in position order;
        one not after its key's last entry is ignored (returns ``False``). Not pending: the
        other store holds it durably already.
        """
        message = entry.message
        with self._lock:
            entries = self._by_key.setdefault(message.key, [])
            if entries and entries[-1].position >= entry.position:
                return False
            entries.append(entry)
            self._by_msgid[message.msgid] = entry
            if message.redacts is not None:
                self._redact(message.key, message.redacts)
        return True

    def forget(self, key: str) -> None:
        """Drop everything kept of ``key`` (an index evicting a conversation it can reload)."""
        with self._lock:
            for entry in self._by_key.pop(key, ()):
                self._by_msgid.pop(entry.message.msgid, None)
            self._trimmed.pop(key, None)

    def _redact(self, key: str, msgid: str) -> None:
        """Mark ``msgid`` of ``key`` redacted: its text and tags go (lock held)."""
        entry = self._by_msgid.get(msgid)
        if entry is None or entry.message.key != key or entry.message.redacts is not None:
            return
        gone = entry._replace(
            message=replace(entry.message, text="", tags={}, multiline=None, redacted=True)
        )
        entries = self._by_key[key]
        i = bisect.bisect_left(entries, entry.position, key=_position)
        if i < len(entries) and entries[i].seq == entry.seq:
            entries[i] = gone
        self._by_msgid[msgid] = gone

    def set_read_marker(self, owner: str, target: str, time_ms: int) -> None:
        """Keep ``owner``'s read marker (see :meth:`HistoryStore.set_read_marker`)."""
        with self._lock:
            markers = self._markers.setdefault(owner, {})
            if time_ms <= markers.get(target, -1):
                return
            markers[target] = time_ms
            self._pending += 1
            if len(markers) > self.max_read_markers:
                del markers[min(markers, key=markers.__getitem__)]

    def read_marker(self, owner: str, target: str) -> int | None:
        """``owner``'s read marker for ``target`` (see :meth:`HistoryStore.read_marker`)."""
        with self._lock:
            return self._markers.get(owner, {}).get(target)

    def has_pending(self) -> bool:
        """Whether messages were appended since the last commit."""
        return self._pending > 0

    def commit_pending(self) -> None:
        """Mark everything appended as committed."""
        with self._lock:
            self._pending = 0
            self.commits += 1

    # --- reading ---------------------------------------------------------------------------

    def find(self, key: str, msgid: str) -> Position | None:
        """The position of ``msgid`` in ``key`` (see :meth:`HistoryStore.find`)."""
        with self._lock:
            entry = self._by_msgid.get(msgid)
            if entry is None or entry.message.key != key:
                return None
            return entry.position

    def query(
        self,
        key: str,
        *,
        after: Position | None = None,
        before: Position | None = None,
        limit: int,
        latest: bool = False,
        reader: Reader | None = None,
        redactions: bool = False,
    ) -> list[Entry]:
        """Messages of ``key`` between two positions (see :meth:`HistoryStore.query`)."""
        with self._lock:
            entries = self._by_key.get(key)
            if not entries or limit <= 0:
                return []
            page = select(
                entries, after=after, before=before, limit=limit, latest=latest, reader=reader
            )
            if not redactions:
                return page
            lo, hi = redaction_span(after, before, page, limit=limit, latest=latest)
            found = select_redactions(entries, after=lo, before=hi, limit=limit, reader=reader)
            return merge(page, found)

    def message(self, key: str, msgid: str) -> Entry | None:
        """The message ``msgid`` of ``key`` (see :meth:`HistoryStore.message`)."""
        with self._lock:
            entry = self._by_msgid.get(msgid)
            return entry if entry is not None and entry.message.key == key else None

    def conversation(self, key: str) -> Conversation | None:
        """What is known of ``key`` (see :meth:`HistoryStore.conversation`)."""
        with self._lock:
            entries = self._by_key.get(key)
            trimmed = self._trimmed.get(key)
            if not entries and trimmed is None:
                return None
            return Conversation(key, entries[-1] if entries else None, trimmed)

    def conversations_of(self, nick: str) -> list[Conversation]:
        """Every private conversation of ``nick`` (see :meth:`HistoryStore.conversations_of`)."""
        with self._lock:
            keys = {k for k in (*self._by_key, *self._trimmed) if involves(k, nick)}
        return [c for k in sorted(keys) if (c := self.conversation(k)) is not None]

    def tip(self) -> Position:
        """The newest position appended (see :meth:`HistoryStore.tip`)."""
        with self._lock:
            return (self._last_ms, self._seq)

    def targets(
        self,
        nick: str,
        channels: Sequence[str],
        *,
        after_ms: int,
        before_ms: int,
        limit: int,
        newest: bool,
        reader: Reader,
    ) -> list[Entry]:
        """Conversations active in a window (see :meth:`HistoryStore.targets`)."""
        with self._lock:
            keys = [k for k in self._by_key if involves(k, nick)]
            keys += [k for k in channels if not is_private(k)]
            latest = [self._by_key[k][-1] for k in keys if self._by_key.get(k)]
        return select_targets(
            latest,
            after_ms=after_ms,
            before_ms=before_ms,
            limit=limit,
            newest=newest,
            reader=reader,
        )

    # --- retention -------------------------------------------------------------------------

    def prune(self, now: float | None = None) -> int:
        """Delete what retention no longer keeps (see :meth:`HistoryStore.prune`)."""
        now = _time.time() if now is None else now
        cutoff = int((now - self.max_age_days * 86400) * 1000) if self.max_age_days else None
        deleted = 0
        with self._lock:
            for key, entries in list(self._by_key.items()):
                drop = 0
                if cutoff is not None:
                    while drop < len(entries) and entries[drop].time_ms < cutoff:
                        drop += 1
                if self.max_per_target and len(entries) - drop > self.max_per_target:
                    drop = len(entries) - self.max_per_target
                if not drop:
                    continue
                gone = entries[:drop]
                del entries[:drop]
                for entry in gone:
                    self._by_msgid.pop(entry.message.msgid, None)
                self._trimmed[key] = gone[-1].position
                deleted += drop
                if not entries:  # nothing left: the conversation is forgotten (base rule 5)
                    del self._by_key[key]
                    del self._trimmed[key]
        return deleted

    # --- idempotency keys (store/keys.py) ----------------------------------------------------

    def key_secret(self) -> bytes:
        """This store's token secret (random per instance: nothing here outlives the process)."""
        return self._secret

    def append_keyed(self, record: KeyRecord, messages: Sequence[StoredMessage]) -> None:
        """Keep ``record`` and its ``messages`` together (see :meth:`KeyStore.append_keyed`)."""
        with self._lock:
            for message in messages:
                self._add(message)
            self._keys[(record.sender, record.key)] = record
            self._pending += 1

    def recall_key(self, sender: str, key: str, since: float) -> KeyRecord | None:
        """The record of ``(sender, key)`` from ``since`` on (see :meth:`KeyStore.recall_key`)."""
        with self._lock:
            record = self._keys.get((sender, key))
        return record if record is not None and record.time >= since else None

    def recent_keys(self, since: float, limit: int) -> list[tuple[str, str, float]]:
        """The newest records from ``since`` on (see :meth:`KeyStore.recent_keys`)."""
        with self._lock:
            found = [(r.sender, r.key, r.time) for r in self._keys.values() if r.time >= since]
        found.sort(key=lambda item: item[2], reverse=True)
        return found[:limit]

    def prune_keys(self, before: float) -> int:
        """Forget the records older than ``before`` (see :meth:`KeyStore.prune_keys`)."""
        with self._lock:
            old = [k for k, r in self._keys.items() if r.time < before]
            for k in old:
                del self._keys[k]
        return len(old)

    def close(self) -> None:
        """Nothing to release."""
        self.commit_pending()


def _position(entry: Entry) -> Position:
    return entry.position
