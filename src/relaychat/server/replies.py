"""Replies: one command's answer to its sender, sent in one write (and labeled when asked).

Handlers add to a :class:`Replies`; :meth:`ServerCore.handle` flushes it after the handler
returns. When the command carried a ``label`` tag and the client has ``labeled-response``, the
replies are labeled: one reply carries the label, several go in a ``labeled-response`` batch,
and a command with no reply at all gets ``ACK``
(https://ircv3.net/specs/extensions/labeled-response).

An item may hold several lines (a batch of its own: a multiline echo, a ``chathistory`` or
``metadata`` batch; or lines sent one by one): labeled, one batch alone carries the label on
its ``BATCH +`` line (its type applies to the whole answer); anything else of more than one
line goes in a ``labeled-response`` batch, where every line not already in a batch gets its
tag, so a nested batch's ``BATCH +`` and ``BATCH -`` lines carry it and its own lines keep
theirs (https://ircv3.net/specs/extensions/batch, nested batches).

A reply that is answered in several parts (a streamed ``LIST``, see ``server/pending.py``) keeps
one labeled batch open across them: :meth:`Replies.flush` with ``final=False`` opens it, and the
later parts carry its reference in :attr:`Replies.batch` until the last closes it.
"""

from __future__ import annotations

from typing import Protocol

from relaychat.protocol import numerics as N
from relaychat.protocol.message import Message
from relaychat.protocol.tags import escape_value
from relaychat.server.relay import Relay
from relaychat.server.state import User

__all__ = ["MAX_REPLY_BYTES", "Replies", "add_tag"]


class _Core(Protocol):
    """What replies need from the core: its name and batch references."""

    name: str

    def new_batch_id(self) -> bytes: ...


class Replies:
    """Collects one command's replies to its sender; sent together in one write."""

    __slots__ = ("batch", "core", "items", "label", "user")

    def __init__(self, core: _Core, user: User, label: str | None = None) -> None:
        self.core = core
        self.user = user
        self.items: list[bytes] = []
        self.label = label
        #: The reference of a labeled batch left open by an earlier part of the same answer.
        self.batch: bytes | None = None

    def numeric(self, numeric: N.Numeric, *params: str, text: str | None = None) -> None:
        """Add a numeric reply addressed to the sender."""
        # Fast path: the bytes directly (numerics.reply_bytes); a Message only when those need
        # its checks or the line must be shortened.
        data = N.reply_bytes(self.core.name, self.user.nick, numeric, *params, text=text)
        if data is None or len(data) > MAX_REPLY_BYTES:
            msg = N.reply(self.core.name, self.user.nick, numeric, *params, text=text)
            data = msg.to_bytes()
            if len(data) > MAX_REPLY_BYTES:
                data = _shortened(msg)
        self.items.append(data)

    def add(self, msg: Message) -> None:
        """Add any message for the sender."""
        self.items.append(msg.to_bytes())

    def raw(self, data: bytes) -> None:
        """Add bytes already serialised."""
        self.items.append(data)

    def relay(self, event: Relay) -> None:
        """Add the sender's own copy of a relayed event."""
        self.items.append(event.data(self.user))

    def standard(self, kind: str, command: str, code: str, *context: str, text: str) -> None:
        """Add a standard reply (``FAIL``/``WARN``/``NOTE``, IRCv3 standard-replies)."""
        msg = Message(
            kind, (command, code, *(N.safe_param(c) for c in context), text), self.core.name
        )
        data = msg.to_bytes()
        if len(data) > MAX_REPLY_BYTES:
            data = _shortened(msg)
        self.items.append(data)

    def flush(self, *, final: bool = True) -> None:
        """Send everything collected, in one write.

        Args:
            final: ``False`` when more of the same answer follows later (a streamed reply): a
                labeled answer then opens its batch and leaves it open in :attr:`batch`.
        """
        items = self.items
        self.items = []
        if self.batch is not None:
            items = self._in_batch(items, self.batch, final)
            if final:
                self.batch = None
        elif self.label is not None:
            label, self.label = self.label, None
            if final:
                items = self._labeled(items, label)
            else:
                ref = self.batch = self.core.new_batch_id()
                items = [
                    self._batch_start(self._label_tag(label), ref),
                    *self._in_batch(items, ref, False),
                ]
        if items and not self.user.quitting:
            self.user.send(b"".join(items) if len(items) > 1 else items[0])

    def _label_tag(self, label: str) -> bytes:
        return b"label=" + escape_value(label).encode("utf-8", "replace")

    def _batch_start(self, tag: bytes, ref: bytes) -> bytes:
        """The ``BATCH +ref labeled-response`` line, carrying the label ``tag``."""
        return b"@%s :%s BATCH +%s labeled-response\r\n" % (tag, self.core.name.encode(), ref)

    def _in_batch(self, items: list[bytes], ref: bytes, final: bool) -> list[bytes]:
        tag = b"batch=" + ref
        out = [add_tag(item, tag) if _one_line(item) else _nest(item, tag) for item in items]
        if final:
            out.append(b":%s BATCH -%s\r\n" % (self.core.name.encode(), ref))
        return out

    def _labeled(self, items: list[bytes], label: str) -> list[bytes]:
        tag = self._label_tag(label)
        if not items:
            return [b"@" + tag + b" :" + self.core.name.encode() + b" ACK\r\n"]
        # One message, or one batch holding the whole answer (a multiline echo, a chathistory
        # or metadata batch): the label goes on it, on the BATCH + line for a batch.
        if len(items) == 1 and (_one_line(items[0]) or _one_batch(items[0])):
            return [add_tag(items[0], tag)]
        ref = self.core.new_batch_id()
        return [self._batch_start(tag, ref), *self._in_batch(items, ref, True)]


#: RFC 1459 §2.3: a line is at most 512 bytes, CR-LF included.
MAX_REPLY_BYTES = 512


def _clip(text: str, size: int) -> str:
    """``text`` cut to at most ``size`` bytes of UTF-8, on a character boundary."""
    return text.encode("utf-8", "replace")[: max(size, 1)].decode("utf-8", "ignore") or "*"


def _shortened(msg: Message) -> bytes:
    """A numeric that echoes long client input (a 500-byte unknown verb, nick or channel), cut
    to fit 512 bytes: the trailing text first, then the longest echoed parameters."""
    params = list(msg.params)
    excess = len(msg.to_bytes()) - MAX_REPLY_BYTES
    if len(params) > 1:  # the trailing text (never the recipient's nick)
        last = params[-1].encode("utf-8", "replace")
        cut = min(excess, max(len(last) - 1, 0))
        if cut > 0:
            params[-1] = _clip(params[-1], len(last) - cut)
            excess -= cut
    while excess > 0:
        i = max(range(1, len(params)), key=lambda k: len(params[k].encode()), default=0)
        size = len(params[i].encode("utf-8", "replace"))
        if i == 0 or size <= 1:
            break
        params[i] = _clip(params[i], max(size - excess, 1))
        excess = len(Message(msg.command, tuple(params), msg.source).to_bytes()) - MAX_REPLY_BYTES
    return Message(msg.command, tuple(params), msg.source).to_bytes()


def _one_line(item: bytes) -> bool:
    """Whether ``item`` (serialised lines, each ending in CR-LF) is a single line."""
    return item.find(b"\n") == len(item) - 1


def _lines(item: bytes) -> list[bytes]:
    return [line + b"\n" for line in item.split(b"\n")[:-1]]


def _command_of(line: bytes) -> tuple[dict[bytes, bytes], list[bytes]]:
    """The tag keys (to values) and the words after the tags and the source of ``line``."""
    tags: dict[bytes, bytes] = {}
    rest = line
    if rest[:1] == b"@":
        head, _, rest = rest.partition(b" ")
        for part in head[1:].split(b";"):
            key, _, value = part.partition(b"=")
            tags[key] = value
    if rest[:1] == b":":
        rest = rest.partition(b" ")[2]
    return tags, rest.split(b" ", 3)[:3]


def _one_batch(item: bytes) -> bool:
    """Whether ``item`` is exactly one batch: ``BATCH +ref ...``, its lines, ``BATCH -ref``.

    labeled-response: a batch "of an existing type applicable to the entire response" may
    carry the label itself.
    """
    lines = _lines(item)
    if len(lines) < 2:
        return False
    _, first = _command_of(lines[0])
    _, last = _command_of(lines[-1])
    if len(first) < 2 or len(last) < 2 or first[0] != b"BATCH" or last[0] != b"BATCH":
        return False
    ref = first[1][1:]
    return first[1][:1] == b"+" and last[1].rstrip(b"\r\n") == b"-" + ref


def _nest(item: bytes, tag: bytes) -> bytes:
    """Several lines into the batch of ``tag`` (batch spec, nested batches): each line that is
    not already inside a batch gets ``tag`` (so a nested batch's ``BATCH +``/``BATCH -`` lines
    do, and its own lines keep their inner ``batch`` tag)."""
    return b"".join(
        line if b"batch" in _command_of(line)[0] else add_tag(line, tag) for line in _lines(item)
    )


def add_tag(line: bytes, tag: bytes) -> bytes:
    """Put ``tag`` (``key=value``, escaped) first in the tags of the serialised ``line``."""
    if line[:1] == b"@":
        return b"@" + tag + b";" + line[1:]
    return b"@" + tag + b" " + line
