"""Every exception relaychat raises on purpose derives from one base.

The tree::

    RelaychatError
    ├── ProtocolError          a peer sent something that is not valid IRC (carries a numeric hint)
    │   ├── InputTooLong       a line over 512 bytes (or tags over 4094)  -> 417 ERR_INPUTTOOLONG
    │   ├── InvalidUtf8        a client line that is not UTF-8 (UTF8ONLY) -> FAIL <cmd> INVALID_UTF8
    │   ├── EmptyMessage       a line with no command                    -> ignored
    │   └── SeveralLines       a WebSocket message holding CR or LF      -> 400 ERR_UNKNOWNERROR
    ├── ConfigError            the operator's configuration is wrong (carries the key path)
    ├── ListenError            a listener could not be opened          (server/listeners.py)
    ├── TLSSetupError          certificate or key unusable             (server/tls.py)
    ├── StoreError             the history store cannot be used        (store/base.py)
    ├── AccountStoreError      the account store cannot be used        (accounts/store.py)
    ├── DiscoveryError         multicast discovery unavailable         (discovery.py)
    ├── NoServersFound         discovery found nothing                 (discovery.py)
    └── ClientError            the client library's errors; its own tree in client/errors.py

Errors are values at the edges: the server turns a ``ProtocolError`` into its numeric reply, and
the CLI turns any other ``RelaychatError`` into one line on stderr and a non-zero exit code (2 for
an operator's mistake).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EmptyMessage",
    "InputTooLong",
    "InvalidUtf8",
    "ProtocolError",
    "RelaychatError",
    "SeveralLines",
]


class RelaychatError(Exception):
    """Base of every error relaychat raises on purpose."""


class ProtocolError(RelaychatError):
    """The peer broke the protocol.

    Attributes:
        numeric: the code of the reply the server should send back, or ``None`` to stay silent.
    """

    numeric: str | None = None

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InputTooLong(ProtocolError):
    """A line longer than the protocol allows (RFC 1459 §2.3, IRCv3 message-tags)."""

    numeric = "417"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"line of {size} bytes exceeds the limit of {limit}")
        self.size = size
        self.limit = limit


class InvalidUtf8(ProtocolError):
    """A client's line that is not valid UTF-8, on a server that announces ``UTF8ONLY``.

    https://ircv3.net/specs/extensions/utf8-only: the server answers
    ``FAIL <command> INVALID_UTF8`` (``*`` when the command itself cannot be read).

    Attributes:
        command: the line's command, or ``*``.
    """

    def __init__(self, command: str) -> None:
        super().__init__(f"{command} line is not valid UTF-8")
        self.command = command


class EmptyMessage(ProtocolError):
    """A line that holds no command (only tags, a source or blanks)."""


class SeveralLines(ProtocolError):
    """A WebSocket message holding a CR or LF inside: IRCv3 WebSocket says each message MUST
    be a single IRC line, so the whole message is refused (none of its lines is carried out)."""

    numeric = "400"

    def __init__(self) -> None:
        super().__init__(
            "A WebSocket message must hold one IRC line, with no CR or LF; it was ignored"
        )


class ConfigError(RelaychatError, ValueError):
    """A configuration value is wrong.

    Attributes:
        key: the dotted key path, e.g. ``limits.nicklen``.
        reason: why the value was refused.
    """

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason
