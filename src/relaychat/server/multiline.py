"""How a ``draft/multiline`` message goes on the wire (https://ircv3.net/specs/extensions/multiline).

Pure serialisation, shared by live delivery (``commands/multiline.py``) and history
(``commands/history.py``): a :class:`Multiline` is built once per message and serialised at most
once per (tag profile, batch or not), like a :class:`~relaychat.server.relay.Relay`.

- To a client with ``draft/multiline`` and ``batch``: ``BATCH +<ref> draft/multiline <target>``
  carrying the msgid, time, account and client tags; each line with ``batch=<ref>`` (and
  ``draft/multiline-concat`` where the sender put it); ``BATCH -<ref>``. Inside a
  ``chathistory`` batch, the ``BATCH`` lines carry the outer batch's tag.
- To any other client: the lines one by one, blank lines left out, the first with the msgid,
  every one with time, account and client tags (as the spec's fallback says).
"""

from __future__ import annotations

from collections.abc import Callable

from relaychat.protocol.servertime import format_server_time
from relaychat.protocol.tags import serialize_tags
from relaychat.server.commands.params import fit
from relaychat.server.core import ServerCore, add_tag
from relaychat.server.relay import Relay
from relaychat.server.state import User
from relaychat.store.base import Entry

__all__ = ["BATCH_TYPE", "CAP", "CONCAT", "Multiline", "capable", "history_lines"]

#: The capability, batch type and tag names (draft: the spec is a work in progress).
CAP = "draft/multiline"
BATCH_TYPE = "draft/multiline"
CONCAT = "draft/multiline-concat"


def capable(user: User) -> bool:
    """Whether ``user`` takes multiline messages as batches (rule 5)."""
    caps = user.caps
    return CAP in caps and "batch" in caps


class Multiline:
    """One multiline message, serialised at most once per (tag profile, batch or not).

    Args:
        source: the sender's ``nick!user@host``.
        verb: ``PRIVMSG`` or ``NOTICE``.
        target: the target as shown.
        lines: each line's text and its concat flag.
        time: the ``time`` tag value.
        msgid: the message's one msgid.
        account: the sender's account, or ``None``.
        client_tags: the sender's client-only tags, or ``None``.
        ref: the batch reference to use on the wire.
        bot: the sender is in bot mode (the ``bot`` tag, as on any of its messages).
    """

    __slots__ = ("_cache", "_end", "_lines", "_prefix", "event", "ref", "target")

    def __init__(
        self,
        *,
        source: str,
        verb: str,
        target: str,
        lines: list[tuple[str, bool]],
        time: str,
        msgid: str,
        account: str | None,
        client_tags: dict[str, str] | None,
        ref: bytes,
        bot: bool = False,
    ) -> None:
        self.ref = ref
        self.target = target
        head = f":{source} BATCH +{ref.decode()} {BATCH_TYPE} {target}\r\n".encode()
        #: The ``BATCH +`` line and the message's tags (msgid, time, account, client tags).
        self.event = Relay(
            head, time=time, msgid=msgid, account=account, client_tags=client_tags, bot=bot
        )
        self._end = f":{source} BATCH -{ref.decode()}\r\n".encode()
        overhead = len(source.encode()) + len(verb) + len(target.encode()) + 5
        self._prefix = f":{source} {verb} {target} :"
        self._lines = [(fit(text, overhead), concat) for text, concat in lines]
        self._cache: dict[tuple[int, bool], bytes] = {}

    def data(self, user: User, *, outer: bytes | None = None) -> bytes:
        """The bytes ``user`` receives (rule 5); ``outer``: inside that batch (rule 6)."""
        key = (user.profile, capable(user))
        cached = self._cache.get(key) if outer is None else None
        if cached is None:
            cached = self._batch(user, outer) if key[1] else self._fallback(user, outer)
            if outer is None:
                self._cache[key] = cached
        return cached

    def _batch(self, user: User, outer: bytes | None) -> bytes:
        ref = self.ref
        head = self.event.data(user)
        end = self._end
        if outer is not None:  # nested in a chathistory batch: its start and end carry it
            head = add_tag(head, b"batch=" + outer)
            end = add_tag(end, b"batch=" + outer)
        prefix = self._prefix
        out = [head]
        for text, concat in self._lines:
            tags = b"@batch=" + ref + (b";" + CONCAT.encode() if concat else b"") + b" "
            out.append(tags + (prefix + text + "\r\n").encode("utf-8", "replace"))
        out.append(end)
        return b"".join(out)

    def _fallback(self, user: User, outer: bytes | None) -> bytes:
        first = self.event.tags_for(user.profile)
        rest = dict(first)
        rest.pop("msgid", None)  # the spec: the msgid on the first line only
        out: list[bytes] = []
        for text, _ in self._lines:
            if not text:
                continue  # never a blank line to a client without the capability
            tags = rest if out else first
            if outer is not None:
                tags = {"batch": outer.decode(), **tags}
            raw = (self._prefix + text + "\r\n").encode("utf-8", "replace")
            out.append(b"@" + serialize_tags(tags).encode() + b" " + raw if tags else raw)
        return b"".join(out)


def history_lines(
    core: ServerCore,
    user: User,
    entry: Entry,
    outer: bytes | None,
    stamp: Callable[[str, int], str] | None = None,
) -> bytes:
    """A stored multiline message as ``user`` gets it from history, inside batch ``outer``.

    Args:
        stamp: for replay without server-time: puts the time in front of each line's text.
    """
    m = entry.message
    assert m.multiline is not None
    texts = m.text.split("\n")
    lines = list(zip(texts, m.multiline, strict=False))
    if stamp is not None:
        lines = [(stamp(text, entry.time_ms) if text else text, c) for text, c in lines]
    message = Multiline(
        source=m.source,
        verb=m.command,
        target=m.target,
        lines=lines,
        time=format_server_time(entry.time_ms),
        msgid=m.msgid,
        account=m.account,
        client_tags=m.tags or None,
        ref=core.new_batch_id(),
    )
    return message.data(user, outer=outer)
