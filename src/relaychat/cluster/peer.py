"""Users on other nodes, as the core sees them: a :class:`RemotePeer` per user, and a
:class:`Link` per node that carries the bytes the core sends them.

Rules:
1. What the core sends a remote user directly (a private message, an INVITE, the QUIT or NICK
   of someone sharing a channel with it) is queued on the link to that user's node, with the
   user's id on that node. Channel traffic never goes this way (``node.py`` sends it once per
   node, through the channel's stream).
2. A link is flushed like a client connection: the server's flush calls :meth:`Link.flush`
   after the history barrier, so bytes carrying a message leave only once JetStream has it.
   One flush is one NATS message per node, however many users it is for.
3. A batch is a sequence of records ``uid (8 bytes) | length (4 bytes) | bytes``; uid 0 is a
   request to the node itself (JSON), such as a KILL of one of its users.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

from relaychat.cluster.wire import dumps

__all__ = ["Link", "RemotePeer", "decode_batch"]

_HEAD = struct.Struct(">QI")


class Link:
    """Bytes waiting for one remote node's users (rule 2); duck-types a connection's flush.

    Args:
        subject: the node's subject (``Names.node_subject``).
        publish: publishes one batch (``Jet.publish``).
        mark_dirty: asks the server's flush to call :meth:`flush` at the end of the loop turn.
    """

    __slots__ = ("closed", "dirty", "mark_dirty", "out", "publish", "subject")

    def __init__(
        self,
        subject: str,
        publish: Callable[[str, bytes], None],
        mark_dirty: Callable[[Link], None],
    ) -> None:
        self.subject = subject
        self.publish = publish
        self.mark_dirty = mark_dirty
        self.out: list[bytes] = []
        self.dirty = False
        self.closed = False

    def add(self, uid: int, data: bytes) -> None:
        """Queue ``data`` for the user ``uid`` of that node."""
        if self.closed:
            return
        self.out.append(_HEAD.pack(uid, len(data)) + data)
        if not self.dirty:
            self.dirty = True
            self.mark_dirty(self)

    def request(self, body: dict[str, Any]) -> None:
        """Queue a request to the node itself (rule 3)."""
        self.add(0, dumps(body))

    def flush(self, count: int | None = None) -> None:
        """Publish the first ``count`` records (all by default) as one message."""
        out = self.out
        if count is None or count >= len(out):
            self.dirty = False
            if not out:
                return
            batch, self.out = b"".join(out), []
        else:
            if count <= 0:
                return
            batch = b"".join(out[:count])
            del out[:count]
        self.publish(self.subject, batch)


def decode_batch(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The ``(uid, bytes)`` records of a batch; stops at a truncated record."""
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos + _HEAD.size <= end:
        uid, size = _HEAD.unpack_from(view, pos)
        pos += _HEAD.size
        if pos + size > end:
            return
        yield uid, bytes(view[pos : pos + size])
        pos += size


class RemotePeer:
    """The core's :class:`~relaychat.server.effects.Peer` for a user on another node.

    Attributes:
        node: the node's name.
        incarnation: the node process's incarnation.
        uid: the user's connection id on that node.
        link: where its bytes go.
        quiet: a callable telling whether forwarding is off (while this node replays the
            network's own events locally, each node tells its own users).
        private: sends the bytes with the private message stashed for this user, if any
            (``history.py`` rule 3).
    """

    __slots__ = ("incarnation", "link", "node", "private", "quiet", "uid")

    def __init__(
        self,
        node: str,
        incarnation: str,
        uid: int,
        link: Link,
        quiet: Callable[[], bool],
        private: Callable[[RemotePeer, bytes], bool] | None = None,
    ) -> None:
        self.node = node
        self.incarnation = incarnation
        self.uid = uid
        self.link = link
        self.quiet = quiet
        #: Sends ``bytes`` with a private message waiting for them, if there is one.
        self.private = private

    @property
    def ident(self) -> str:
        """``<node>/<uid>``: the user's name in channel records."""
        return f"{self.node}/{self.uid}"

    def send(self, data: bytes) -> None:
        if self.quiet():
            return
        private = self.private
        if private is not None and private(self, data):
            return  # it went with its private message, through the private stream
        self.link.add(self.uid, data)

    def close(self, error: str) -> None:
        """Nothing to close here: the user's own node closes its connection."""
