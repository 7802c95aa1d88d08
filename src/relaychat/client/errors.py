"""Exceptions of the client library; all derive from :class:`ClientError`.

The tree (under :class:`relaychat.errors.RelaychatError`)::

    ClientError
    ├── ClientClosed        the client was closed, or never started (misuse; also RuntimeError)
    ├── ConnectionClosed    the connection dropped while a request waited for its reply
    ├── DccError            a DCC file transfer failed, was refused or cancelled (client/dcc.py)
    ├── GaveUpError         the client stopped reconnecting (max attempts, or a fatal refusal)
    ├── NotSent             messages that were not delivered, listed in ``unsent``
    │   ├── OutboxFull      the bounded outbox had no room: nothing of that send was queued
    │   └── Rejected        the server refused the message with an error numeric
    ├── RequestFailed       a request got an error reply (carries the whole reply)
    ├── RequestTimeout      a request got no complete reply in time (also TimeoutError)
    └── UploadError         an upload to the server's file host failed (client/upload.py)

Errors carry their facts as attributes; the message text is built from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relaychat.errors import RelaychatError

if TYPE_CHECKING:
    from relaychat.client.events import Outgoing
    from relaychat.client.requests import Reply

__all__ = [
    "ClientClosed",
    "ClientError",
    "ConnectionClosed",
    "DccError",
    "GaveUpError",
    "NotSent",
    "OutboxFull",
    "Rejected",
    "RequestFailed",
    "RequestTimeout",
    "UploadError",
]


class ClientError(RelaychatError):
    """Base of every error the client library raises."""


class ClientClosed(ClientError, RuntimeError):
    """The client is closed (or was never started); it accepts no more work."""

    def __init__(self, reason: str = "the client is closed") -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionClosed(ClientError):
    """The connection dropped before a pending request was answered.

    Attributes:
        reason: why the connection ended (``"Connection reset by peer"``, ``"ping timeout"``...).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"connection closed: {reason}")
        self.reason = reason


class DccError(ClientError):
    """A DCC file transfer failed, was refused or was cancelled.

    Attributes:
        reason: why, in words for a user (``"bob closed the connection after 3.0 MiB of 20.0
            MiB"``, ``"no data for 60 s"``...).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GaveUpError(ClientError):
    """The client stopped trying to connect.

    Attributes:
        reason: the last failure.
        unsent: the messages that were still waiting in the outbox (never sent).
    """

    def __init__(self, reason: str, unsent: tuple[Outgoing, ...] = ()) -> None:
        super().__init__(f"gave up: {reason}")
        self.reason = reason
        self.unsent = unsent


class NotSent(ClientError):
    """Messages the client could not deliver.

    Attributes:
        reason: why.
        unsent: exactly the lines concerned, in order.
        maybe_delivered: ``True`` when the lines had been written to a connection that dropped
            before the server confirmed them: they may or may not have arrived. ``False`` when
            they were never written.
    """

    def __init__(
        self, reason: str, unsent: tuple[Outgoing, ...], *, maybe_delivered: bool = False
    ) -> None:
        super().__init__(f"{len(unsent)} line(s) not sent: {reason}")
        self.reason = reason
        self.unsent = unsent
        self.maybe_delivered = maybe_delivered


class OutboxFull(NotSent):
    """The outbox is full; none of the lines of this send were queued.

    Attributes:
        limit: the outbox capacity, in lines.
    """

    def __init__(self, unsent: tuple[Outgoing, ...], limit: int) -> None:
        super().__init__(f"outbox full ({limit} lines)", unsent)
        self.limit = limit


class Rejected(NotSent):
    """The server refused a line with an error numeric (e.g. 404 ERR_CANNOTSENDTOCHAN).

    Attributes:
        code: the numeric.
        text: the server's explanation.
    """

    def __init__(self, unsent: tuple[Outgoing, ...], code: str, text: str) -> None:
        super().__init__(f"refused by the server: {code} {text}", unsent)
        self.code = code
        self.text = text


class RequestFailed(ClientError):
    """A request was answered with an error.

    Attributes:
        reply: the whole reply; ``reply.error`` is the error message.
    """

    def __init__(self, reply: Reply) -> None:
        err = reply.error
        detail = err.serialize() if err is not None else "error"
        super().__init__(f"{reply.command} failed: {detail}")
        self.reply = reply


class RequestTimeout(ClientError, TimeoutError):
    """A request was not answered within its timeout.

    Attributes:
        command: the command that was sent.
        timeout: the seconds waited.
    """

    def __init__(self, command: str, timeout: float) -> None:
        super().__init__(f"{command}: no reply within {timeout:g} s")
        self.command = command
        self.timeout = timeout


class UploadError(ClientError):
    """An upload to the server's file host (``draft/FILEHOST``) failed.

    Attributes:
        reason: what went wrong, one line (the server's own words when it gave some).
        status: the HTTP status the server answered, or ``None`` (no answer, or no upload).
    """

    def __init__(self, reason: str, status: int | None = None) -> None:
        where = "" if status is None else f" ({status})"
        super().__init__(f"upload failed{where}: {reason}")
        self.reason = reason
        self.status = status
