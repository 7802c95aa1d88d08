"""What the core asks the edges to do.

The core never touches a socket. Each connected client is represented in the core by a
:class:`Peer`: the core hands it bytes that are already serialised (a broadcast is serialised once
and the same ``bytes`` object goes to every recipient) and tells it when to close. The asyncio
transport implements :class:`Peer` with coalesced writes; tests implement it with a list.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Peer"]


class Peer(Protocol):
    """The core's handle on one connection."""

    def send(self, data: bytes) -> None:
        """Queue ``data`` (one or more complete lines) for the client. Never blocks.

        The edge enforces the send-queue bound: when it is exceeded the edge asks the core to
        disconnect the client later, never from inside this call.
        """

    def close(self, error: str) -> None:
        """Send ``ERROR :<error>`` after everything queued, then close the connection.

        Called once, by the core, after it has removed the client from its state.
        """
