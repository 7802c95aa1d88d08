"""The client's settings: one frozen :class:`ClientConfig`.

Host, port and nick come from arguments or from the environment (``RELAYCHAT_HOST``,
``RELAYCHAT_PORT``, ``RELAYCHAT_NICK``), other settings from the file ``RELAYCHAT_CLIENT_CONFIG``
names when it is set; :meth:`ClientConfig.from_env` is the one place in the client that reads
them. Arguments win over the environment, the environment over the file, the file over defaults.
"""

from __future__ import annotations

import dataclasses
import getpass
import os
import re
import ssl
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from relaychat.errors import ConfigError

__all__ = [
    "DELIVERY_MODES",
    "ENV_CLIENT_CONFIG",
    "FILE_SECTIONS",
    "ClientConfig",
    "client_config_path",
    "login_nick",
    "read_client_file",
    "read_toml",
]

ENV_HOST = "RELAYCHAT_HOST"
ENV_PORT = "RELAYCHAT_PORT"
ENV_NICK = "RELAYCHAT_NICK"

#: The delivery guarantees a client can ask for (``auto``: the strongest the server supports,
#: else today's at-most-once); see docs/delivery.md.
DELIVERY_MODES = ("auto", "exactly_once", "at_least_once", "at_most_once")

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
    # Delivery: exactly_once (the server deduplicates idempotency keys), at_least_once (lines
    # unconfirmed at a drop are written again), at_most_once (they are reported, never resent);
    # auto: exactly_once when the server offers it, else at_most_once (at_least_once with
    # resend_unconfirmed, the older name of that choice).
    delivery: str = "auto"
    resend_unconfirmed: bool = False
    history_limit: int = 100  # CHATHISTORY page size
    history_pages: int = 10
    # Messages fetched (CHATHISTORY LATEST) when a channel is first joined in this session, so
    # a reader sees the conversation it walks into (0: none; a reconnect resumes instead).
    backlog: int = 0
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
        if self.backlog < 0:
            raise ConfigError("backlog", "must not be negative")
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
        mode = self.delivery.replace("-", "_").lower()
        if mode not in DELIVERY_MODES:
            raise ConfigError("delivery", f"{self.delivery!r} is not one of {DELIVERY_MODES}")
        object.__setattr__(self, "delivery", mode)
        if self.max_attempts is not None and self.max_attempts < 0:
            raise ConfigError("max_attempts", "must not be negative")
        if self.port == 0:
            object.__setattr__(self, "port", 6697 if self.tls else 6667)
        if not self.username:
            name = "".join(c for c in self.nick if c.isalnum())[:10] or "relaychat"
            object.__setattr__(self, "username", name)

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        file_settings: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> ClientConfig:
        """Build a config from ``settings``, filling host, port and nick from the environment.

        Args:
            environ: where to read ``RELAYCHAT_HOST/PORT/NICK`` (``os.environ`` when ``None``).
            file_settings: settings from a config file (:func:`read_client_file`); they rank
                below the environment and ``settings``. When ``None``, the file named by
                ``RELAYCHAT_CLIENT_CONFIG`` is read, if that is set.
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
        if file_settings is None and env.get(ENV_CLIENT_CONFIG):
            file_settings = read_client_file(env[ENV_CLIENT_CONFIG])
        for key, value in (file_settings or {}).items():
            given.setdefault(key, value)
        if "channels" in given:
            given["channels"] = tuple(given["channels"])
        return cls(**given)


# === The client config file (``relaychat chat``, ``send``, ``tail``) ===========================
# Precedence, lowest first: defaults < the file < RELAYCHAT_* environment < arguments. The file
# holds ClientConfig fields at its top level (``nick = "alice"``, ``channels = ["#lobby"]``).

ENV_CLIENT_CONFIG = "RELAYCHAT_CLIENT_CONFIG"
#: Tables of the file that are not ClientConfig fields, each read by its own module.
FILE_SECTIONS = frozenset({"dcc"})
_NICK_CHARS = re.compile(r"[^A-Za-z0-9\[\]\\`_^{|}-]")


def client_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the client config file is looked for.

    Returns:
        ``$RELAYCHAT_CLIENT_CONFIG`` when set, else ``client.toml`` in the user's config
        directory (``~/.config/relaychat/client.toml`` on Linux). It may not exist.
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_CLIENT_CONFIG):
        return Path(env[ENV_CLIENT_CONFIG]).expanduser()
    return Path(platformdirs.user_config_dir("relaychat", appauthor=False)) / "client.toml"


def login_nick() -> str:
    """A nick made from the login name (the default of ``relaychat chat``), or ``guest``."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        name = ""
    name = _NICK_CHARS.sub("", name)[:30].lstrip("-0123456789")
    return name or "guest"


def read_toml(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """The whole client config file as a dict (``{}`` when missing and ``missing_ok``).

    Raises:
        ConfigError: the file cannot be read or is not valid TOML.
    """
    file = Path(path)
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise ConfigError(str(file), "no such file") from None
    except OSError as exc:
        raise ConfigError(str(file), exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), f"not valid TOML: {exc}") from None


def read_client_file(path: str | Path, *, missing_ok: bool = False) -> dict[str, Any]:
    """Read :class:`ClientConfig` settings from a TOML file.

    Args:
        path: the file.
        missing_ok: return ``{}`` when the file does not exist (the default location).

    Returns:
        The settings, checked for names and types (``channels`` and ``sasl`` become tuples).

    Raises:
        ConfigError: the file cannot be read or parsed, or holds an unknown key or a wrong type.
    """
    file = Path(path)
    data = read_toml(file, missing_ok=missing_ok)
    hints = typing.get_type_hints(ClientConfig)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in FILE_SECTIONS and isinstance(value, dict):
            continue  # read by its own reader (e.g. [dcc]: relaychat.client.dccstate)
        if key not in hints:
            raise ConfigError(f"{file}: {key}", "unknown setting")
        out[key] = _file_value(f"{file}: {key}", value, hints[key])
    return out


def _file_value(where: str, value: Any, hint: Any) -> Any:
    """Check one value of the file against the field's type hint."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kinds = set(typing.get_args(hint)) if union else {hint}
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(where, "must be a list of strings")
        if tuple[str, ...] in kinds:
            return tuple(value)
        if tuple[str, str] in kinds and len(value) == 2:
            return tuple(value)
        raise ConfigError(where, "a list is not allowed here")
    # TOML types each field kind accepts (a bool is never taken for a number).
    accepted = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    for kind in kinds:
        ok = accepted.get(kind, ())
        if isinstance(value, ok) and not (isinstance(value, bool) and kind is not bool):
            return value
    names = sorted(getattr(k, "__name__", str(k)) for k in kinds if k is not type(None))
    raise ConfigError(where, f"must be {' or '.join(names)}, not {value!r}")
