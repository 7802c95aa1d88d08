"""What the core asks of a network beyond this process (``relaychat.cluster`` is one).

A single relaychat process is a whole network: the core delivers channel traffic to its own
members directly. Several processes become one network when a :class:`Backplane` is attached
to each core (``core.backplane``): the core then hands it the channel traffic, and the backplane
delivers it to the members on every node, this one included (``ServerCore.deliver_local``), in
one order everywhere. Users connected to other nodes appear in the core as :class:`User` objects
whose ``server`` is set; what the core sends them directly (a private message, an INVITE) goes
through their peer, which the backplane provides.

The core never asks whether it is clustered: it calls these methods when a backplane is attached,
and does the same work itself when none is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from relaychat.server.relay import Relay
    from relaychat.server.state import Channel, User

__all__ = ["Backplane", "Elsewhere"]


class Elsewhere(NamedTuple):
    """The users of the network's other servers, for LUSERS."""

    users: int
    invisible: int
    opers: int
    servers: int


class Backplane(Protocol):
    """The network layer under a core (see the module docstring)."""

    def channel_event(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        status: str = "",
        tagmsg: bool = False,
    ) -> None:
        """Relay ``event`` to the members of ``channel`` on every node except ``skip``.

        Delivery to this node's members happens later, through ``core.deliver_local``, in the
        order the network gave the event. Never blocks, never raises.

        Args:
            status: ``"@"`` or ``"+"`` for a STATUSMSG (only operators, or voiced and operators).
            tagmsg: a TAGMSG: only members with ``message-tags`` receive it.
        """

    def channel_special(
        self,
        channel: Channel,
        event: Relay,
        skip: User | None,
        *,
        cap: str = "",
        multiline: dict[str, Any] | None = None,
    ) -> None:
        """Relay ``event`` like :meth:`channel_event`, in the channel's one order, to the
        members with capability ``cap`` only (when given; a ``REDACT``), or as the multiline
        message ``Multiline(**multiline)`` (``server/multiline.py``; ``event`` is its ``event``).

        Delivery to this node's members happens later, in the network's order.
        """

    def user_left(self, user: User, reason: str) -> None:
        """``user`` is being disconnected (called first thing in ``core.disconnect``)."""

    def elsewhere(self) -> Elsewhere:
        """How many users (invisible, operators) the other servers have, and how many there are."""
        ...
