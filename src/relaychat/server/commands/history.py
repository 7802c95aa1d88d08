"""History for clients: ``CHATHISTORY`` (IRCv3 draft/chathistory) and replay on JOIN.

Spec: https://ircv3.net/specs/extensions/chathistory. Replies come in a ``chathistory`` batch
(``draft/chathistory-targets`` for TARGETS) when the client has ``batch``; every line carries the
tags the client's caps ask for, by the same rules as live traffic (``relay.py``), so a message
from history carries the ``msgid`` and ``time`` it had when it was relayed.

Rules:
1. Who reads what: a channel's history is for its current members (a non-member gets
   ``INVALID_TARGET``, whether or not the channel exists or has history). A private conversation
   is read under the reader's current nick, filtered by ``store.base.Reader``: what was relayed
   since the reader took its current nick (``User.nick_tip``: not since it connected, or a
   client that connects early and takes a nick later would read its last holder's messages),
   and, when logged in, what its account sent or received. A nick alone is not an identity, so
   it does not unlock older private messages. The same rule decides what TARGETS lists.
2. Limits: at most ``history.query_limit`` messages per request (announced as ISUPPORT
   ``CHATHISTORY``); a larger request gets a full page, and the client asks again from its last
   message, as the spec expects.
3. Never a silent gap: when a request starts from a message id the store no longer has (or
   never had), or from a time older than what retention deleted, the reply is preceded by
   ``WARN CHATHISTORY HISTORY_GAP`` saying so, and then carries what is kept.
4. Errors are standard replies: ``FAIL CHATHISTORY <code> <subcommand> [...] :<text>``.
5. Replay on JOIN: a client without ``draft/chathistory`` gets the channel's last
   ``history.replay_lines`` messages after NAMES: as a ``chathistory`` batch when it has
   ``batch`` and ``server-time``; otherwise as plain lines whose text starts with ``[HH:MM:SS]``
   (UTC), so they cannot be mistaken for new ones. CTCP requests other than ACTION are never
   replayed (clients would answer them again).
6. Redacted messages are never returned; a client with ``draft/message-redaction`` gets the
   ``REDACT`` records in the span of each page (``commands/redaction.py`` rule 5). A multiline
   message is sent as ``commands/multiline.py`` rule 6 says.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from relaychat.protocol import numerics as N
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import is_ctcp_not_action
from relaychat.protocol.message import Message
from relaychat.protocol.servertime import format_server_time as server_time
from relaychat.protocol.servertime import parse_server_time as parse_timestamp
from relaychat.server.commands.params import fit, number
from relaychat.server.commands.redaction import CAP as REDACTION
from relaychat.server.commands.redaction import history_line as redact_line
from relaychat.server.core import Replies, ServerCore, add_tag, command
from relaychat.server.multiline import history_lines as multiline_lines
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User
from relaychat.store.base import (
    MAX_SEQ,
    Entry,
    HistoryStore,
    Position,
    Reader,
    conversation_key,
)

__all__ = ["parse_timestamp", "reader_of", "replay_on_join", "server_time"]

log = logging.getLogger("relaychat.server")

#: Parameters after the subcommand, by subcommand.
_ARITY = {"AFTER": 3, "AROUND": 3, "BEFORE": 3, "BETWEEN": 4, "LATEST": 3, "TARGETS": 3}
#: What a private target may look like: a nick, loosely (a bad one only finds no history).
_NICKISH = re.compile(r"[^\s#&,*?!@:.$][^\s,*?!@]*\Z")


@dataclass(frozen=True, slots=True)
class _Ref:
    """A message reference: ``msgid=...`` or ``timestamp=...`` (or ``*``, neither)."""

    text: str
    msgid: str | None = None
    ms: int | None = None


def _parse_ref(text: str) -> _Ref | None:
    kind, _, value = text.partition("=")
    if kind == "msgid" and value:
        return _Ref(text, msgid=value)
    if kind == "timestamp":
        ms = parse_timestamp(value)
        return None if ms is None else _Ref(text, ms=ms)
    if text == "*":
        return _Ref(text)
    return None


@dataclass(slots=True)
class _Request:
    """One CHATHISTORY request being answered."""

    core: ServerCore
    user: User
    out: Replies
    store: HistoryStore
    sub: str
    target: str  # as shown back: the channel's name, or the nick asked for
    key: str
    reader: Reader | None

    def fail(self, code: str, *context: str, text: str) -> None:
        self.out.standard("FAIL", "CHATHISTORY", code, self.sub, *context, text=text)

    def resolve(self, ref: _Ref, *, lower: bool) -> Position | None:
        """``ref`` as an exclusive bound: the lower one (after it) or the upper one (before it).

        Returns ``None`` for an unknown msgid.
        """
        if ref.msgid is not None:
            return self.store.find(self.key, ref.msgid)
        assert ref.ms is not None
        return (ref.ms, MAX_SEQ) if lower else (ref.ms, 0)

    def gap_warning(self, after: Position | None, unknown: str | None) -> None:
        """WARN when what follows ``after`` is not all kept (rule 3)."""
        conv = self.store.conversation(self.key)
        trimmed = conv.trimmed if conv is not None else None
        if unknown is not None:
            kept = "nothing is kept"
            if conv is not None and conv.latest is not None:
                oldest = self.store.query(self.key, limit=1, reader=self.reader)
                if oldest:
                    kept = f"the oldest message kept is from {server_time(oldest[0].time_ms)}"
            self.out.standard(
                "WARN",
                "CHATHISTORY",
                "HISTORY_GAP",
                self.sub,
                self.target,
                text=f"Message {unknown} is not in this history (deleted by retention, or "
                f"never here); {kept}; sending "
                + ("the latest" if self.sub == "LATEST" else "from the oldest"),
            )
        elif trimmed is not None and after is not None and trimmed > after:
            self.out.standard(
                "WARN",
                "CHATHISTORY",
                "HISTORY_GAP",
                self.sub,
                self.target,
                text=f"Messages up to {server_time(trimmed[0])} were not kept (retention); "
                "some of what you asked for is gone",
            )


@command("CHATHISTORY")
def chathistory(core: ServerCore, user: User, msg: Message, out: Replies) -> None:
    """CHATHISTORY <BEFORE|AFTER|LATEST|AROUND|BETWEEN|TARGETS> <target> <ref> [<ref>] <limit>

    Earlier messages of a channel or conversation, by msgid= or timestamp= (or *).
    """
    store = core.history
    if store is None:
        out.numeric(N.ERR_UNKNOWNCOMMAND, "CHATHISTORY")
        return
    params = msg.params
    sub = params[0].upper() if params and params[0] else ""
    if not sub:
        out.standard("FAIL", "CHATHISTORY", "NEED_MORE_PARAMS", "*", text="Missing parameters")
        return
    arity = _ARITY.get(sub)
    if arity is None:
        out.standard("FAIL", "CHATHISTORY", "UNKNOWN_COMMAND", sub, text="Unknown subcommand")
        return
    if len(params) - 1 < arity:
        out.standard("FAIL", "CHATHISTORY", "NEED_MORE_PARAMS", sub, text="Missing parameters")
        return
    limit = number(params[arity])
    if not limit:
        out.standard(
            "FAIL",
            "CHATHISTORY",
            "INVALID_PARAMS",
            sub,
            params[arity],
            text="The limit must be a positive number",
        )
        return
    cap = core.config.history.query_limit
    if cap:
        limit = min(limit, cap)
    try:
        if sub == "TARGETS":
            _targets(core, user, out, store, params[1], params[2], limit)
        else:
            _messages(core, user, out, store, sub, params[1:arity], limit)
    except Exception:  # a store failure: say so, keep the connection
        log.exception("CHATHISTORY %s failed (connection #%d)", sub, user.id)
        out.items.clear()
        out.standard(
            "FAIL",
            "CHATHISTORY",
            "MESSAGE_ERROR",
            sub,
            params[1],
            text="Messages could not be retrieved",
        )


def _access(core: ServerCore, user: User, target: str) -> tuple[str, str, Reader | None] | None:
    """(key, name shown, reader) for ``target`` when ``user`` may read it (rule 1), else None."""
    if target[:1] == "#":
        channel = user.channels.get(irc_lower(target))
        return None if channel is None else (channel.key, channel.name, None)
    if len(target) > core.config.limits.nicklen or _NICKISH.match(target) is None:
        return None
    return conversation_key(user.nick, target), target, reader_of(user)


def reader_of(user: User) -> Reader:
    """Who ``user`` is as a reader of private history (rule 1)."""
    since_ms, since_seq = user.nick_tip
    return Reader(since_ms, user.account, since_seq)


def _messages(
    core: ServerCore,
    user: User,
    out: Replies,
    store: HistoryStore,
    sub: str,
    args: tuple[str, ...],
    limit: int,
) -> None:
    """BEFORE, AFTER, LATEST, AROUND and BETWEEN."""
    target = args[0]
    access = _access(core, user, target)
    if access is None:
        out.standard(
            "FAIL",
            "CHATHISTORY",
            "INVALID_TARGET",
            sub,
            target,
            text="You may only read channels you are in and your own conversations",
        )
        return
    key, shown, reader = access
    red = REDACTION in user.caps  # rule 6: REDACT records with each page
    req = _Request(core, user, out, store, sub, shown, key, reader)
    refs = [_parse_ref(a) for a in args[1:]]
    for raw, ref in zip(args[1:], refs, strict=True):
        if ref is None or (ref.text == "*" and sub != "LATEST"):
            req.fail("INVALID_PARAMS", raw, text="Expected msgid=<id> or timestamp=<time>")
            return
    entries: list[Entry]
    ref = refs[0]
    assert ref is not None
    if sub in ("AFTER", "LATEST"):
        after = None if ref.text == "*" else req.resolve(ref, lower=True)
        unknown = ref.msgid if ref.msgid is not None and after is None else None
        if ref.text != "*":
            req.gap_warning(after, unknown)
        entries = store.query(
            key, after=after, limit=limit, latest=sub == "LATEST", reader=reader, redactions=red
        )
    elif sub == "BEFORE":
        before = req.resolve(ref, lower=False)
        if before is None:
            req.fail("MESSAGE_ERROR", shown, ref.text, text="That message is not in this history")
            return
        entries = store.query(
            key, before=before, limit=limit, latest=True, reader=reader, redactions=red
        )
    elif sub == "AROUND":
        pivot = req.resolve(ref, lower=False)
        if pivot is None:
            req.fail("MESSAGE_ERROR", shown, ref.text, text="That message is not in this history")
            return
        # Half before the pivot; the rest from it on (a msgid's own message included).
        older = store.query(
            key, before=pivot, limit=limit // 2, latest=True, reader=reader, redactions=red
        )
        start = (pivot[0], pivot[1] - 1) if ref.msgid is not None else (pivot[0], -1)
        rest = limit - sum(1 for e in older if e.message.redacts is None)
        newer = store.query(key, after=start, limit=rest, reader=reader, redactions=red)
        entries = older + newer
    else:  # BETWEEN
        other = refs[1]
        assert other is not None
        lo, hi = req.resolve(ref, lower=True), req.resolve(other, lower=False)
        if lo is None or hi is None:
            bad = ref.text if lo is None else other.text
            req.fail("MESSAGE_ERROR", shown, bad, text="That message is not in this history")
            return
        if _pivot(ref, lo) <= _pivot(other, hi):
            entries = store.query(
                key, after=lo, before=hi, limit=limit, reader=reader, redactions=red
            )
        else:  # backwards in time: the messages nearest the first reference
            lo, hi = req.resolve(other, lower=True), req.resolve(ref, lower=False)
            entries = store.query(
                key, after=lo, before=hi, limit=limit, latest=True, reader=reader, redactions=red
            )
    send_batch(core, user, out, shown, entries)


def _pivot(ref: _Ref, bound: Position) -> Position:
    """Where a reference sits, to tell which way a BETWEEN runs."""
    return bound if ref.msgid is not None else (bound[0], 0)


def _targets(
    core: ServerCore,
    user: User,
    out: Replies,
    store: HistoryStore,
    first: str,
    second: str,
    limit: int,
) -> None:
    """TARGETS <timestamp=a> <timestamp=b> <limit>: conversations active between a and b."""
    a, b = _parse_ref(first), _parse_ref(second)
    for raw, ref in ((first, a), (second, b)):
        if ref is None or ref.ms is None:
            out.standard(
                "FAIL",
                "CHATHISTORY",
                "INVALID_PARAMS",
                "TARGETS",
                raw,
                text="Expected timestamp=<time>",
            )
            return
    assert a is not None and a.ms is not None and b is not None and b.ms is not None
    lo, hi = min(a.ms, b.ms), max(a.ms, b.ms)
    # One bounded read of the store: an index range per side of the nick and a row per channel,
    # the window and the limit applied there (store.base.HistoryStore.targets).
    entries = store.targets(
        user.key,
        list(user.channels),
        after_ms=lo,
        before_ms=hi,
        limit=limit,
        newest=a.ms > b.ms,
        reader=reader_of(user),
    )
    found: list[tuple[int, str]] = []
    for entry in entries:
        m = entry.message
        channel = user.channels.get(m.key)
        if channel is not None:
            found.append((entry.time_ms, channel.name))
            continue
        sender = m.source.split("!", 1)[0]
        found.append((entry.time_ms, m.target if irc_lower(sender) == user.key else sender))
    lines = [
        Message("CHATHISTORY", ("TARGETS", target, server_time(ms)), core.name).to_bytes()
        for ms, target in found
    ]
    if "batch" not in user.caps:
        for line in lines:
            out.raw(line)
        return
    bref = core.new_batch_id()  # one item, as in send_batch
    name = core.name.encode()
    head = b":%s BATCH +%s draft/chathistory-targets\r\n" % (name, bref)
    body = [add_tag(line, b"batch=" + bref) for line in lines]
    out.raw(b"".join([head, *body, b":%s BATCH -%s\r\n" % (name, bref)]))


def _line(entry: Entry, user: User, *, stamp: bool = False) -> bytes:
    """The stored message as ``user`` sees it: its line and the tags its caps ask for."""
    m = entry.message
    text = _stamped(m.text, entry.time_ms) if stamp else m.text
    overhead = len(m.source.encode()) + len(m.command) + len(m.target.encode()) + 5
    text = fit(text, overhead)
    raw = f":{m.source} {m.command} {m.target} :{text}\r\n".encode("utf-8", "replace")
    relay = Relay(
        raw,
        time=server_time(entry.time_ms),
        msgid=m.msgid,
        account=m.account,
        client_tags=m.tags or None,
    )
    return relay.data(user)


def _entry_bytes(
    core: ServerCore, user: User, entry: Entry, outer: bytes | None, *, stamp: bool = False
) -> bytes:
    """One history entry as ``user`` gets it, inside batch ``outer`` (or none): a message, a
    multiline message (``server/multiline.py``) or a ``REDACT`` (rule 6)."""
    m = entry.message
    if m.multiline is not None:
        return multiline_lines(core, user, entry, outer, _stamped if stamp else None)
    if m.redacts is not None:
        return redact_line(entry, user, outer)
    line = _line(entry, user, stamp=stamp)
    return add_tag(line, b"batch=" + outer) if outer is not None else line


def _stamped(text: str, ms: int) -> str:
    """``text`` with ``[HH:MM:SS] `` (UTC) in front (after ``ACTION`` for a CTCP ACTION)."""
    stamp = time.strftime("[%H:%M:%S] ", time.gmtime(ms // 1000))
    if text.startswith("\x01ACTION "):
        return "\x01ACTION " + stamp + text[8:]
    return stamp + text


def send_batch(
    core: ServerCore, user: User, out: Replies, target: str, entries: list[Entry]
) -> None:
    """``entries`` for ``user`` in a ``chathistory`` batch (plain lines without ``batch``).

    The batch is one item of ``out``: when the reply is labeled, the label tags its ``BATCH +``
    line (or an enclosing labeled-response batch tags its ``BATCH +`` and ``BATCH -`` lines:
    ``replies.py``), and the lines inside keep the one batch tag they carry. Without ``batch``
    each line is an item of its own.
    """
    if "batch" not in user.caps:
        for entry in entries:
            out.raw(_entry_bytes(core, user, entry, None))
        return
    ref = core.new_batch_id()
    head = Message("BATCH", ("+" + ref.decode(), "chathistory", target), core.name)
    lines = [head.to_bytes(), *(_entry_bytes(core, user, entry, ref) for entry in entries)]
    lines.append(b":%s BATCH -%s\r\n" % (core.name.encode(), ref))
    out.raw(b"".join(lines))


def replay_on_join(core: ServerCore, user: User, channel: Channel, out: Replies) -> None:
    """Send the channel's last lines to a client that cannot ask for them (rule 5).

    Called by JOIN after NAMES. Does nothing without history, with ``replay_lines`` 0, or for
    a client with ``draft/chathistory`` (it asks with CHATHISTORY itself). A store failure is
    logged and skipped: it must not spoil the JOIN.
    """
    store = core.history
    count = core.config.history.replay_lines
    if store is None or count <= 0 or "draft/chathistory" in user.caps:
        return
    try:
        entries = store.query(channel.key, limit=count, latest=True)
    except Exception:
        log.exception("replay on join to %s failed (connection #%d)", channel.name, user.id)
        return
    # Kept from before CTCP was left out of history (``is_ctcp_not_action``): never replayed.
    entries = [e for e in entries if not is_ctcp_not_action(e.message.text)]
    if not entries:
        return
    if "batch" in user.caps and "server-time" in user.caps:
        send_batch(core, user, out, channel.name, entries)
    else:
        for entry in entries:
            out.raw(_entry_bytes(core, user, entry, None, stamp=True))
