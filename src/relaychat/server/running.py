"""What the operator edges use of a running server: :class:`RunningServer`.

:mod:`.admin`, :mod:`.operations` and :mod:`.reload` work on the
:class:`~relaychat.server.listeners.Server` that imports them; they see it through this protocol
(exactly the part they use), so none of them imports :mod:`.listeners` and the imports point
down only.
"""

from __future__ import annotations

import ssl
from typing import Protocol

from relaychat.server.tlsaccept import Listening, TLSHub

__all__ = ["RunningServer"]


class RunningServer(TLSHub, Protocol):
    """The part of :class:`~relaychat.server.listeners.Server` its operator edges use.

    It is a :class:`~relaychat.server.tlsaccept.TLSHub` (so a
    :class:`~relaychat.server.connection.Hub` too): a reload opens listeners whose connections
    are handed the server.
    """

    tls_context: ssl.SSLContext | None
    web_tls_context: ssl.SSLContext | None
    _listeners: list[Listening]
    _servers: dict[str, list[Listening]]

    def addresses_of(self, kind: str) -> list[tuple[str, int]]:
        """The bound (host, port) of every listening socket of ``kind`` (irc, plain, tls, http)."""
        ...
