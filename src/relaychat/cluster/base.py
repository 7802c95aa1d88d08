"""What the parts of a cluster node see of it: :class:`Node` and the parts' own surfaces.

:class:`~relaychat.cluster.node.ClusterNode` is made of parts (``accounts.py``, ``bans.py``,
``commands.py``, ``feeds.py``, ``idem.py``, ``liveness.py``, ``mirror.py``, ``recovery.py``,
``sync.py``), each handed the node. The parts see the node through :class:`Node` here (and each
other through the small protocols below, exactly what one part uses of another), so they never
import ``node.py`` (which imports them) nor each other in a circle: the imports point down.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

from relaychat.cluster.history import ClusterHistory
from relaychat.cluster.jet import Jet
from relaychat.cluster.names import Names
from relaychat.cluster.peer import Link, RemotePeer
from relaychat.config import Config
from relaychat.protocol.message import Message
from relaychat.server.core import Replies, ServerCore
from relaychat.server.relay import Relay
from relaychat.server.state import Channel, User
from relaychat.store.keys import KeyRecord

__all__ = [
    "BansPart",
    "Claim",
    "FeedsPart",
    "KeysPart",
    "LivenessPart",
    "MirrorPart",
    "Node",
    "RecoveryPart",
    "SyncPart",
]

#: A record of the state bucket as JSON.
_Record = dict[str, Any]


class Claim(enum.Enum):
    """What claiming an idempotency key found (``idem.py``)."""

    NEW = "new"  #: claimed: relay the message, then record it
    KNOWN = "known"  #: relayed before: the record is in this store now
    UNAVAILABLE = "unavailable"  #: NATS could not be asked: refuse the message (idem.py rule 6)


class BansPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.bans.SharedBans`."""

    def entry(self, rest: str, value: bytes | None) -> None:
        """Apply one entry of the state bucket."""

    def resync(self, present: set[str]) -> None:
        """Lift the network bans whose entries are no longer ``present``."""


class FeedsPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.feeds.Feeds`."""

    @property
    def subs(self) -> Mapping[str, Any]:
        """The channel feeds subscribed to, by channel key."""

    def check(self, chan_key: str) -> None:
        """Drop the feed of a channel without local members."""

    async def ensure(self, chan_key: str) -> None:
        """Subscribe to a channel's feed (once)."""

    def want(self, chan_key: str) -> None:
        """Subscribe to a channel's feed in the background."""

    def publish(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
        others_only: bool = False,
    ) -> None:
        """Publish one channel event."""

    def forget_positions(self) -> None:
        """Forget the last sequence delivered of every feed."""


class KeysPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.idem.ClusterKeys`."""

    @property
    def window(self) -> float:
        """How long a key is remembered, in seconds."""

    def known(self, sender: str, key: str, now: float) -> bool:
        """Whether ``key`` of ``sender`` was relayed on this node."""

    async def claim(self, sender: str, key: str, source: str, targets: str) -> Claim:
        """Claim ``key`` of ``sender`` network-wide."""

    def release(self, sender: str, key: str) -> None:
        """Give up a claim (nothing was relayed)."""

    def recall_key(self, sender: str, key: str, since: float) -> KeyRecord | None:
        """The record of ``key`` of ``sender`` made since ``since``, if any."""


class LivenessPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.liveness.Liveness`."""

    @property
    def nodes(self) -> Mapping[str, Any]:
        """What this node knows of every other node, by name."""

    def incarnation_of(self, name: str) -> str | None:
        """The incarnation of node ``name`` as last heard."""

    def silent(self, name: str) -> bool:
        """Whether node ``name`` is judged gone."""

    def gone(self, name: str) -> None:
        """Forget node ``name`` and its users."""

    def heartbeat(self) -> None:
        """Write this node's record now."""

    def restart_clock(self) -> None:
        """Judge other nodes from now on (NATS is back)."""


class MirrorPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.mirror.Mirror`."""

    keys_of: dict[str, set[str]]
    claims: dict[str, tuple[str, int]]
    own: dict[str, bytes]
    base: dict[str, tuple[_Record, int]]

    def drop_node(self, node: str, *, show: bool) -> list[User]:
        """Drop every user of ``node``."""

    def record_of(self, channel: Channel) -> _Record:
        """A channel's record as the bucket holds it."""

    def ident(self, user: User) -> str:
        """``<node>/<uid>``: how channel records name a member."""

    def set_channel(self, channel: Channel, record: _Record) -> None:
        """Make ``channel`` say what ``record`` says."""


class RecoveryPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.recovery.Recovery`."""

    def cut_off_for(self, now: float) -> None:
        """Cut this node off when NATS has been away too long."""

    def schedule(self) -> None:
        """Start a resynchronisation in the background."""


class SyncPart(Protocol):
    """What the other parts use of :class:`~relaychat.cluster.sync.Sync`."""

    users: dict[int, _Record]
    members: dict[int, set[str]]
    claims: dict[int, tuple[str, int]]

    def holder(self, user: User) -> str:
        """How a nick claim names ``user``."""

    async def claim(self, user: User, nick_key: str) -> int | None:
        """Claim a nick network-wide; its revision, or ``None``."""

    def release(self, nick_key: str, revision: int) -> None:
        """Give up a nick claim."""

    async def ensure_channel(self, chan_key: str, name: str, creator: User) -> bool:
        """Create a channel network-wide; whether this call created it."""

    def memberships(self, user: User, *, force: bool = False) -> None:
        """Write ``user``'s memberships."""

    def channel_changed(self, chan_key: str) -> None:
        """Write a channel's record (once at a time)."""


class Node(Protocol):
    """What the parts use of :class:`~relaychat.cluster.node.ClusterNode`."""

    links: dict[tuple[str, str], Link]
    isolated: bool

    @property
    def core(self) -> ServerCore:
        """The server core."""

    @property
    def config(self) -> Config:
        """The configuration."""

    @property
    def name(self) -> str:
        """This node's name."""

    @property
    def incarnation(self) -> str:
        """This run's incarnation."""

    @property
    def names(self) -> Names:
        """The names of subjects, buckets and keys."""

    @property
    def jet(self) -> Jet:
        """The NATS connection."""

    @property
    def history(self) -> ClusterHistory | None:
        """The shared history, when kept."""

    @property
    def keys(self) -> KeysPart | None:
        """The idempotency keys, when offered."""

    @property
    def bans(self) -> BansPart:
        """The network bans."""

    @property
    def mirror(self) -> MirrorPart:
        """The copy of the other nodes' users and channels."""

    @property
    def sync(self) -> SyncPart:
        """This node's users and channels in the bucket."""

    @property
    def feeds(self) -> FeedsPart:
        """The channel feeds."""

    @property
    def liveness(self) -> LivenessPart:
        """Heartbeats and judging other nodes."""

    @property
    def recovery(self) -> RecoveryPart:
        """Being cut off and coming back."""

    @property
    def closing(self) -> bool:
        """Whether the node is shutting down."""

    @property
    def started(self) -> float:
        """When the node started (wall clock)."""

    def after_command(self, user: User, msg: Message) -> None:
        """What a command changed, written to the cluster."""

    def is_quiet(self) -> bool:
        """Whether changes are applied without being written back."""

    def quietly(self) -> AbstractContextManager[None]:
        """Apply changes without writing them back, within the block."""

    def link(self, node: str, incarnation: str) -> Link:
        """The link to node ``node``."""

    def notice_all(self, text: str) -> None:
        """Tell every local user ``text``."""

    def cut_off(self, user: User, out: Replies) -> None:
        """Tell ``user`` this node is cut off."""

    async def private_keys_of(self, nick_key: str) -> list[str]:
        """The private history keys of a nick."""

    def send_private(self, peer: RemotePeer, data: bytes) -> bool:
        """Send a private message to a remote user's node."""

    async def stop_watchers(self) -> None:
        """Stop following the buckets."""

    async def watch(self) -> None:
        """Follow the buckets."""
