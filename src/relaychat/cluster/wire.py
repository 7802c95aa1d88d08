"""What the nodes write to NATS, as plain JSON-able values, and how records are merged.

Pure functions, no I/O (tested in ``tests/unit/test_cluster_wire.py``):

- a *user record* (``u.<node>.<uid>``) says who a user is: nick, user, host, realname,
  account, away, user modes and capabilities (its tag profile shapes the bytes others send it);
- a *channel record* (``c.<chan>``) holds a channel's state: modes, key, limit, topic, bans,
  invites, and which members (``<node>/<uid>``) are operators or voiced;
- a *delta* is what one node changed in a channel record; writes are compare-and-set, and a
  node that lost the race applies its delta to the newer record and tries again, so two
  changes made at once on two nodes both survive (:func:`diff` and :func:`apply`);
- a *stored message* is a ``store.base.StoredMessage`` as JSON, the history in the streams;
- a *channel payload* (the channels stream) carries an event's line in front of its JSON, and
  the history record after it: ``E1 <line> <meta> <record length>\n<line><meta><record>``,
  several of them one after the other in one stream message when merged;
- a *private payload* (the private stream) carries the bytes for the recipient in front of the
  record, so the recipient's node reads them without parsing any JSON:
  ``P1 <uid> <incarnation> <length>\n<bytes><record JSON>``; a record alone is
  ``{"h": <record>}`` (a private message whose recipient is on the sender's node, or none).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from relaychat.server.state import Channel, User
from relaychat.store.base import StoredMessage

__all__ = [
    "apply",
    "channel_payload",
    "channel_record",
    "diff",
    "dumps",
    "private_payload",
    "read_channel",
    "read_private",
    "stored_from_json",
    "stored_to_json",
    "user_record",
]

Record = dict[str, Any]

#: Channel fields replaced whole when they differ.
_SCALARS = ("name", "created", "modes", "key", "limit", "topic", "topic_by", "topic_time")
#: Channel fields that are sets: a delta holds what was added and what was removed.
_SETS = ("invites", "ops", "voices")


#: One encoder for every :func:`dumps` (``json.dumps`` with options makes a new one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return _ENCODE(value).encode("utf-8")


def user_record(user: User, server: str, incarnation: str) -> Record:
    """What other nodes need to know of a local user."""
    return {
        "nick": user.nick,
        "user": user.username,
        "host": user.host,
        "real": user.realname,
        "acct": user.account,
        "away": user.away,
        "modes": "".join(sorted(user.modes)),
        "caps": sorted(user.caps),
        "srv": server,
        "inc": incarnation,
        "t": int(user.connected_at),
    }


def channel_record(channel: Channel, ident: Callable[[User], str]) -> Record:
    """A channel's shared state; ``ident`` names a member (``<node>/<uid>``)."""
    ops: list[str] = []
    voices: list[str] = []
    for member, ms in channel.members.items():
        if ms.op:
            ops.append(ident(member))
        if ms.voice:
            voices.append(ident(member))
    return {
        "name": channel.name,
        "created": channel.created,
        "modes": "".join(sorted(channel.modes)),
        "key": channel.password,
        "limit": channel.limit,
        "topic": channel.topic,
        "topic_by": channel.topic_by,
        "topic_time": channel.topic_time,
        "bans": [list(b) for b in channel.bans],
        "invites": sorted(channel.invites),
        "ops": sorted(ops),
        "voices": sorted(voices),
    }


def diff(base: Record, now: Record) -> Record:
    """What changed from ``base`` to ``now`` (empty when nothing did)."""
    delta: Record = {}
    for name in _SCALARS:
        if base.get(name) != now.get(name):
            delta[name] = now.get(name)
    for name in _SETS:
        old, new = set(base.get(name) or ()), set(now.get(name) or ())
        if old != new:
            delta[name] = [sorted(new - old), sorted(old - new)]
    old_bans = {b[0]: b for b in base.get("bans") or ()}
    new_bans = {b[0]: b for b in now.get("bans") or ()}
    if old_bans.keys() != new_bans.keys():
        added = [b for m, b in new_bans.items() if m not in old_bans]
        removed = [m for m in old_bans if m not in new_bans]
        delta["bans"] = [added, removed]
    return delta


def apply(record: Record, delta: Record) -> Record:
    """``record`` with ``delta`` applied (a new dict)."""
    out = dict(record)
    for name in _SCALARS:
        if name in delta:
            out[name] = delta[name]
    for name in _SETS:
        if name in delta:
            added, removed = delta[name]
            out[name] = sorted((set(out.get(name) or ()) | set(added)) - set(removed))
    if "bans" in delta:
        added, removed = delta["bans"]
        gone = set(removed)
        bans = [b for b in out.get("bans") or () if b[0] not in gone]
        have = {b[0] for b in bans}
        bans.extend(b for b in added if b[0] not in have)
        out["bans"] = bans
    return out


def stored_to_json(m: StoredMessage) -> Record:
    """A history record as JSON."""
    out: Record = {
        "i": m.msgid,
        "t": m.time,
        "k": m.key,
        "s": m.source,
        "c": m.command,
        "g": m.target,
        "x": m.text,
    }
    if m.account:
        out["a"] = m.account
    if m.tags:
        out["tg"] = m.tags
    if m.to_account:
        out["ta"] = m.to_account
    if m.multiline is not None:
        out["ml"] = list(m.multiline)
    if m.redacts is not None:
        out["rd"] = m.redacts
    if m.redacted:
        out["rdd"] = True
    return out


def stored_from_json(d: Record) -> StoredMessage:
    """The inverse of :func:`stored_to_json`.

    Raises:
        KeyError, TypeError, ValueError: ``d`` is not such a record.
    """
    ml = d.get("ml")
    return StoredMessage(
        msgid=str(d["i"]),
        time=float(d["t"]),
        key=str(d["k"]),
        source=str(d["s"]),
        account=d.get("a"),
        command=str(d["c"]),
        target=str(d["g"]),
        text=str(d["x"]),
        tags=dict(d.get("tg") or {}),
        to_account=d.get("ta"),
        multiline=tuple(bool(x) for x in ml) if ml is not None else None,
        redacts=d.get("rd"),
        redacted=bool(d.get("rdd", False)),
    )


def channel_payload(meta: Record, line: bytes, record: bytes = b"") -> bytes:
    """A channel event (the channels stream): ``E1 <line length> <meta length> <record
    length>\n`` then the line's bytes, the ``meta`` JSON, and the history record's JSON
    (``record``, when kept). Events are self-delimiting: a stream message may hold several, one
    after the other (``jet.py`` merges the events of one loop turn to one channel).

    The receiving node slices the line out as it is (no decoding) and parses only the small
    ``meta``; the record is parsed only if the history is read (``history.py``).
    """
    head = dumps(meta)
    return b"E1 %d %d %d\n" % (len(line), len(head), len(record)) + line + head + record


def read_channel(payload: bytes) -> list[tuple[Record, bytes, bytes]]:
    """``(meta, line, record JSON)`` of each event of a stream message of the channels stream
    (an older node's JSON form too; the line is empty for a history record alone).

    Raises:
        ValueError, KeyError: ``payload`` is neither form.
    """
    if payload[:3] != b"E1 ":
        data = dict(json.loads(payload))
        record = data.pop("h", None)
        line = str(data.pop("l", "")).encode("utf-8")
        return [(data, line, dumps(record) if record is not None else b"")]
    events = []
    pos, size = 0, len(payload)
    while pos < size:
        if payload[pos : pos + 3] != b"E1 ":
            raise ValueError("not a channel event")
        end = payload.index(b"\n", pos)
        lengths = payload[pos + 3 : end].split(b" ")
        line_end = end + 1 + int(lengths[0])
        meta_end = line_end + int(lengths[1])
        pos = meta_end + int(lengths[2])
        if pos > size:
            raise ValueError("truncated channel payload")
        meta = dict(json.loads(payload[line_end:meta_end]))
        events.append((meta, payload[end + 1 : line_end], payload[meta_end:pos]))
    return events


def private_payload(uid: int, incarnation: str, data: bytes, record: Record) -> bytes:
    """A private message for user ``uid`` of a node (see the module docstring)."""
    return b"P1 %d %s %d\n" % (uid, incarnation.encode(), len(data)) + data + dumps(record)


def read_private(payload: bytes) -> tuple[int, str, bytes | None, Record]:
    """``(uid, incarnation, bytes, record)`` of a private payload (uid 0 and ``None`` when it
    is a record alone).

    Raises:
        ValueError, KeyError: ``payload`` is neither form.
    """
    if payload[:3] == b"E1 ":  # a channel event (its history record)
        return 0, "", None, dict(json.loads(read_channel(payload)[0][2]))
    if payload[:3] != b"P1 ":
        return 0, "", None, dict(json.loads(payload)["h"])
    end = payload.index(b"\n")
    uid_text, incarnation, size_text = payload[3:end].split(b" ")
    size = int(size_text)
    data = payload[end + 1 : end + 1 + size]
    if len(data) != size:
        raise ValueError("truncated private payload")
    return int(uid_text), incarnation.decode(), data, dict(json.loads(payload[end + 1 + size :]))
