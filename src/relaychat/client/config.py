"""The client's settings: one frozen :class:`ClientConfig`.

Host, port and nick come from arguments or from the environment (``RELAYCHAT_HOST``,
``RELAYCHAT_PORT``, ``RELAYCHAT_NICK``); :meth:`ClientConfig.from_env` is the one place in the
client that reads them. Arguments win over the environment, the environment over defaults.
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relaychat.errors import ConfigError

__all__ = ["ClientConfig"]

ENV_HOST = "RELAYCHAT_HOST"
ENV_PORT = "RELAYCHAT_PORT"
ENV_NICK = "RELAYCHAT_NICK"

#: Listen addresses a server may be configured with that a client cannot connect to.
_WILDCARDS = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Everything a :class:`~relaychat.client.Client` needs; checked when built.

    Attributes are grouped: identity, timeouts, reconnect, limits.
    """

    host: str = "127.0.0.1"
    port: int = 0  # 0: 6697 with TLS, else 6667
    nick: str = ""
    username: str = ""  # default: the nick
    realname: str = "relaychat"
    tls: bool | ssl.SSLContext = False
    password: str | None = None
    sasl: tuple[str, str] | None = None  # (account, password) for SASL PLAIN
    channels: tuple[str, ...] = ()  # joined at start, and rejoined after every reconnect

    # Timeouts (seconds)
    connect_timeout: float = 10.0
    registration_timeout: float = 30.0
    ping_interval: float = 30.0  # idle this long -> the client PINGs
    ping_timeout: float = 20.0  # no PONG this long -> the peer is dead
    request_timeout: float = 30.0
    ack_delay: float = 0.5  # longest wait before asking the server to confirm lines written

    # Reconnect
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_factor: float = 2.0
    backoff_max: float = 60.0
    max_attempts: int | None = None  # consecutive failed attempts before giving up

    # Limits
    outbox_size: int = 1000  # lines waiting to be written
    max_inflight: int = 64  # lines written and not yet confirmed
    pace_rate: float = 4.0  # lines per second after the burst (0: no pacing)
    pace_burst: int = 8
    resend_unconfirmed: bool = False  # True: at-least-once instead of at-most-once
    history_limit: int = 100  # CHATHISTORY page size
    history_pages: int = 10
    seen_msgids: int = 4096
    max_garbage_lines: int = 3  # consecutive unparseable lines before reconnecting
    nick_attempts: int = 10  # fallback nicks tried when the nick is taken
    event_queue: int = 10_000  # events held for one slow consumer

    def __post_init__(self) -> None:
        if not self.nick:
            raise ConfigError("nick", f"required (pass nick=... or set {ENV_NICK})")
        if " " in self.nick or self.nick.startswith(("#", ":")):
            raise ConfigError("nick", f"{self.nick!r} is not a nickname")
        if not self.host:
            raise ConfigError("host", "required")
        if not 0 <= self.port <= 65535:
            raise ConfigError("port", f"{self.port} is not a port number")
        for key in (
            "connect_timeout",
            "registration_timeout",
            "ping_interval",
            "ping_timeout",
            "request_timeout",
            "backoff_initial",
            "backoff_max",
        ):
            if getattr(self, key) <= 0:
                raise ConfigError(key, "must be greater than 0")
        if self.ack_delay < 0 or self.pace_rate < 0:
            raise ConfigError("pace_rate", "must not be negative")
        for key in (
            "outbox_size",
            "max_inflight",
            "pace_burst",
            "history_limit",
            "history_pages",
            "seen_msgids",
            "max_garbage_lines",
            "nick_attempts",
            "event_queue",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(key, "must be at least 1")
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ConfigError("max_attempts", "must not be negative")
        if self.port == 0:
            object.__setattr__(self, "port", 6697 if self.tls else 6667)
        if not self.username:
            name = "".join(c for c in self.nick if c.isalnum())[:10] or "relaychat"
            object.__setattr__(self, "username", name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **settings: Any) -> ClientConfig:
        """Build a config from ``settings``, filling host, port and nick from the environment.

        Args:
            environ: where to read ``RELAYCHAT_HOST/PORT/NICK`` (``os.environ`` when ``None``).
            settings: any field; ``None`` values count as not given.

        Returns:
            The checked config.

        Raises:
            ConfigError: a value is wrong or the nick is missing.
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in settings.items() if v is not None}
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown setting")
        if "host" not in given and env.get(ENV_HOST) is not None:
            first = env[ENV_HOST].split(",")[0].strip()
            given["host"] = _WILDCARDS.get(first, first)
        if "port" not in given and env.get(ENV_PORT):
            try:
                given["port"] = int(env[ENV_PORT])
            except ValueError:
                raise ConfigError(ENV_PORT, f"{env[ENV_PORT]!r} is not a port number") from None
        if "nick" not in given and env.get(ENV_NICK):
            given["nick"] = env[ENV_NICK]
        if "channels" in given:
            given["channels"] = tuple(given["channels"])
        return cls(**given)
