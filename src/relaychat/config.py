"""Configuration: one frozen :class:`Config`, built in one place.

Precedence, lowest first: the defaults below < a TOML file (``--config``) < ``RELAYCHAT_*``
environment variables < command-line flags. Nothing else in relaychat reads ``os.environ``.

Environment names mirror the keys: ``RELAYCHAT_PORT``, ``RELAYCHAT_SERVER_NAME``, and for a section
``RELAYCHAT_LIMITS__NICKLEN``. Opers are only read from the TOML file (``[[opers]]`` tables), since
they carry password hashes.

Every bad value raises :class:`~relaychat.errors.ConfigError` naming its key path; the CLI turns it
into one line on stderr and exit code 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from relaychat.errors import ConfigError

__all__ = [
    "FLOOD_ACTIONS",
    "SECTIONS",
    "Accounts",
    "Cluster",
    "Config",
    "History",
    "Http",
    "Idempotency",
    "Limits",
    "Metadata",
    "Oper",
    "Throttle",
    "Uploads",
    "load_config",
]

ENV_PREFIX = "RELAYCHAT_"
#: The values of ``limits.flood_action`` (see server/connection.py, docs/security.md).
FLOOD_ACTIONS = ("throttle", "fakelag", "disconnect")


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class Limits:
    """Every bound the server enforces; exceeding one has a defined outcome."""

    max_clients: int = _opt(10_000, "most connections at once; more are refused with ERROR")
    max_per_ip: int = _opt(256, "most connections from one IP address (0 = no limit)")
    sendq: int = _opt(1 << 20, "bytes queued to one client before it is dropped (SendQ exceeded)")
    recvq: int = _opt(
        16_384, "bytes of unprocessed input held for a flooding client (Excess Flood)"
    )
    flood_burst: int = _opt(30, "lines a client may send at once before it is throttled")
    flood_rate: float = _opt(10.0, "lines per second a client may send after its burst (0 = off)")
    nicklen: int = _opt(30, "longest nickname")
    channellen: int = _opt(64, "longest channel name")
    topiclen: int = _opt(390, "longest topic")
    kicklen: int = _opt(390, "longest kick reason")
    awaylen: int = _opt(390, "longest away message")
    maxtargets: int = _opt(4, "most targets in one PRIVMSG, NOTICE, KICK or NAMES")
    modes: int = _opt(4, "most modes with a parameter in one MODE command")
    chanlimit: int = _opt(50, "most channels one user may be in")
    maxbans: int = _opt(100, "most entries in a channel's ban list")
    whowas: int = _opt(256, "nicknames remembered for WHOWAS")
    multiline_max_bytes: int = _opt(
        4096, "most bytes of text in one draft/multiline batch (its lines joined by newlines)"
    )
    multiline_max_lines: int = _opt(100, "most lines in one draft/multiline batch")
    typing_interval: float = _opt(
        1.0, "seconds before the same +typing value to the same target is relayed again (0 = off)"
    )
    monitor: int = _opt(100, "most nicks in one client's MONITOR list (ISUPPORT MONITOR)")
    who_results: int = _opt(200, "most users one WHO with a mask lists; its 315 says when cut")
    flood_action: str = _opt(
        "throttle",
        "past flood_burst: throttle (delay lines, Excess Flood past recvq), fakelag (delay "
        "lines and stop reading, never disconnect) or disconnect (Excess Flood at once)",
    )


@dataclass(frozen=True, slots=True)
class History:
    """Message history: on by default, kept in SQLite under ``data_dir``."""

    enabled: bool = _opt(True, "keep channel and private messages for CHATHISTORY and replay")
    max_age_days: float = _opt(30.0, "delete messages older than this many days (0 = keep)")
    max_per_target: int = _opt(10_000, "messages kept per channel or conversation (0 = all)")
    replay_lines: int = _opt(20, "lines replayed on JOIN to clients without chathistory (0 = off)")
    query_limit: int = _opt(100, "most messages one CHATHISTORY request returns")
    redact_window: float = _opt(
        0.0, "seconds during which senders may REDACT their own messages (0 = any time)"
    )
    max_read_markers: int = _opt(
        1000, "read markers (MARKREAD) kept per account, the oldest forgotten first (0 = off)"
    )


@dataclass(frozen=True, slots=True)
class Accounts:
    """Built-in accounts: registration, SASL and nick protection."""

    registration: bool = _opt(True, "let users create accounts with REGISTER")
    nick_grace: float = _opt(30.0, "seconds a stranger may hold a registered nick before renaming")
    min_password_length: int = _opt(8, "shortest password REGISTER accepts, in characters")
    register_before_connect: bool = _opt(
        True, "allow REGISTER before the connection has registered (never with a server password)"
    )
    email_verification: bool = _opt(
        False,
        "REGISTER needs an e-mail address and a code sent to it (VERIFY); needs mail_command",
    )
    mail_command: str = _opt(
        "",
        "command that sends a verification code; {email}, {account} and {code} are filled in",
    )
    unconfirmed_expiry_days: float = _opt(
        3.0,
        "days after which an account never verified nor logged in to again is deleted (0 = keep)",
    )


@dataclass(frozen=True, slots=True)
class Throttle:
    """Defences against one user slowing everyone else (see docs/security.md)."""

    ipv4_prefix: int = _opt(32, "IPv4 addresses count as one for per-IP limits by this prefix")
    ipv6_prefix: int = _opt(64, "IPv6 addresses count as one for per-IP limits by this prefix")
    tls_handshake_timeout: float = _opt(10.0, "seconds a TLS client has to finish its handshake")
    max_handshaking: int = _opt(
        256, "most TLS connections still in their handshake at once; more are closed"
    )
    nick_hold: float = _opt(
        10.0, "seconds an unregistered connection keeps its nick against another who wants it"
    )
    hash_threads: int = _opt(2, "password hashes (argon2) checked at once, in worker threads")
    hash_queue: int = _opt(64, "password checks waiting for a thread, in all")
    hash_queue_per_key: int = _opt(
        4, "password checks one address group may have waiting; more are told to retry"
    )
    login_failures: int = _opt(
        10, "failed logins or server passwords from one address before it is locked out"
    )
    account_failures: int = _opt(
        5, "failed logins to one account from one address before that address is locked out of it"
    )
    account_failures_total: int = _opt(
        50, "failed logins to one account from all addresses before it is locked out for all"
    )
    oper_failures: int = _opt(3, "failed OPER attempts per connection or address before lock-out")
    lockout: float = _opt(2.0, "seconds of the first lock-out; each further failure doubles it")
    lockout_max: float = _opt(600.0, "longest lock-out, in seconds")
    tarpit: float = _opt(
        5.0, "seconds a locked-out attempt waits for its refusal (the connection waits too)"
    )
    failure_memory: float = _opt(
        900.0, "seconds after its last failure that an address or account starts afresh"
    )
    register_ip_burst: int = _opt(3, "accounts one address may register at once")
    register_ip_interval: float = _opt(
        600.0, "seconds before one address may register one more account (0 = no limit)"
    )
    register_burst: int = _opt(20, "accounts the whole server registers at once")
    register_interval: float = _opt(
        3.0, "seconds before the server accepts one more registration (0 = no limit)"
    )
    log_interval: float = _opt(
        10.0, "seconds between log lines of one repeated cause (the rest are counted)"
    )
    connect_burst: int = _opt(
        30, "connections one address group may open at once before connect_per_minute applies"
    )
    connect_per_minute: float = _opt(
        60.0, "new connections per minute from one address group after its burst (0 = no limit)"
    )


@dataclass(frozen=True, slots=True)
class Http:
    """The HTTP port: the web client, IRC over WebSocket (``/ws``), metrics, health, webhooks."""

    port: int = _opt(8080, "HTTP port on every host: web client, /ws, /metrics, hooks (0 = off)")
    tls: bool = _opt(
        False, "serve HTTPS and wss:// on http.port, with the tls_cert/tls_key settings"
    )
    allowed_origins: str = _opt(
        "", "Origins allowed to open /ws, comma-separated (empty: the request's own host; * = any)"
    )
    trusted_proxies: str = _opt(
        "", "proxy addresses or networks whose X-Forwarded-For gives the client's IP (comma-sep.)"
    )
    metrics_token: str = _opt("", "bearer token /metrics requires (empty: /metrics is open)")
    ws_max_message: int = _opt(
        16_384, "largest WebSocket message; a bigger one closes the connection (code 1009)"
    )
    ws_ping_interval: float = _opt(
        30.0, "seconds between WebSocket pings to a quiet client; pongs count as activity (0 = off)"
    )
    max_body: int = _opt(16_384, "largest request body in bytes (webhooks); more gets 413")
    request_timeout: float = _opt(
        30.0, "seconds to receive one HTTP request, and to keep an idle HTTP connection open"
    )
    max_connections: int = _opt(1024, "most HTTP connections at once, WebSockets not counted")
    hook_max_lines: int = _opt(20, "most lines (messages) in one webhook post; more gets 400")
    hook_rate: float = _opt(
        1.0, "lines per second one webhook may post after its burst (0 = no limit)"
    )
    hook_burst: int = _opt(20, "lines one webhook may post at once before it gets 429")


@dataclass(frozen=True, slots=True)
class Metadata:
    """IRCv3 ``draft/metadata-2``: key/value metadata on users and channels."""

    before_connect: bool = _opt(True, "allow METADATA before registration (cap before-connect)")
    max_subs: int = _opt(50, "most keys one client may subscribe to (cap max-subs)")
    max_keys: int = _opt(20, "most keys set on one user or channel (cap max-keys)")
    max_value_bytes: int = _opt(300, "longest value in UTF-8 bytes (cap max-value-bytes, <= 300)")
    set_burst: int = _opt(10, "METADATA SET/CLEAR a client may send at once (then RATE_LIMITED)")
    set_rate: float = _opt(1.0, "METADATA SET/CLEAR per second a client may send after its burst")
    sync_members: int = _opt(
        500, "channel size above which JOIN sends 774 (SYNC later) instead of members' metadata"
    )


@dataclass(frozen=True, slots=True)
class Idempotency:
    """Exactly-once sending: repeats of a message's idempotency key are not relayed again."""

    enabled: bool = _opt(
        True, "offer relaychat.dev/idempotency (needs history: the keys are kept with it)"
    )
    window: float = _opt(600.0, "seconds a message's idempotency key is remembered")
    max_keys: int = _opt(
        100_000, "keys held in memory (past it, the history store is asked on a miss)"
    )


@dataclass(frozen=True, slots=True)
class Uploads:
    """Files users upload to the HTTP port (IRCv3 ``draft/FILEHOST``), kept under ``data_dir``."""

    enabled: bool = _opt(True, "let logged-in users upload files to the HTTP port (POST /upload)")
    dir: str = _opt("", "where uploaded files are kept (default: <data_dir>/uploads)")
    public_url: str = _opt(
        "", "base URL of the HTTP port as others reach it (default: the address each client used)"
    )
    max_size: int = _opt(100 << 20, "largest file in bytes; a bigger upload gets 413")
    quota_per_account: int = _opt(1 << 30, "bytes of files one account may keep (0 = no limit)")
    max_files_per_account: int = _opt(1000, "files one account may keep (0 = no limit)")
    quota_delete_oldest: bool = _opt(
        False, "over quota, delete the account's oldest files to make room (else refuse: 413)"
    )
    max_total: int = _opt(
        10 << 30, "bytes of uploads the server keeps in all (0 = no limit); more gets 507"
    )
    min_free: int = _opt(
        256 << 20, "bytes of disk to leave free; an upload that would eat into them gets 507"
    )
    max_concurrent: int = _opt(
        32, "uploads in progress at once on the server; more get 503 (0 = no limit)"
    )
    retention_days: float = _opt(30.0, "delete files older than this many days (0 = keep)")
    token_ttl: float = _opt(
        600.0, "seconds a TOKEN GENERATE FILEHOST token stays valid (it is used once)"
    )


@dataclass(frozen=True, slots=True)
class Cluster:
    """Several relaychat processes as one network over NATS JetStream (off when ``url`` is empty).

    See docs/cluster.md.
    """

    url: str = _opt(
        "", "NATS server URLs, comma-separated (nats://host:4222); empty: this process alone"
    )
    node_name: str = _opt(
        "", "this node's name, unique in the cluster (letters, digits, - and _; default host-pid)"
    )
    prefix: str = _opt(
        "relaychat", "prefix of the NATS subjects, streams and buckets (one network per prefix)"
    )
    replicas: int = _opt(1, "copies JetStream keeps of each stream and bucket (3: NATS cluster)")
    heartbeat: float = _opt(2.0, "seconds between this node's heartbeats")
    node_timeout: float = _opt(
        10.0, "seconds without a heartbeat before a node is declared dead and its users split off"
    )
    ack_timeout: float = _opt(
        5.0, "seconds to wait for JetStream to store a message before relaying it unstored"
    )
    tls_ca: str = _opt("", "CA certificate file that verifies the NATS server (PEM)")
    tls_cert: str = _opt("", "client certificate for NATS (PEM; with cluster.tls_key)")
    tls_key: str = _opt("", "client private key for NATS (PEM)")
    creds: str = _opt("", "NATS credentials file (.creds: user JWT and NKey seed)")
    user: str = _opt("", "NATS user name (with cluster.password)")
    password: str = _opt("", "NATS password")
    token: str = _opt("", "NATS authentication token")


@dataclass(frozen=True, slots=True)
class Oper:
    """An IRC operator account: ``OPER <name> <password>``; the password is stored hashed."""

    name: str
    password_hash: str


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of a relaychat server; immutable, replaced whole."""

    host: str = _opt("127.0.0.1", "addresses to listen on, comma-separated (e.g. 127.0.0.1,::1)")
    port: int = _opt(6667, "IRC port on every host (0 picks a free one)")
    server_name: str = _opt("relaychat.local", "this server's name, shown as the source of replies")
    network: str = _opt("relaychat", "network name, announced as NETWORK in 005")
    motd: str = _opt("", "message of the day text (lines separated by newlines)")
    motd_file: str = _opt("", "file holding the message of the day (overrides motd)")
    password: str = _opt("", "server password clients must send with PASS (argon2 hash or plain)")
    ping_interval: float = _opt(90.0, "seconds of silence before the server PINGs a client")
    ping_timeout: float = _opt(60.0, "seconds to wait for the PONG before dropping the client")
    registration_timeout: float = _opt(60.0, "seconds a connection may take to register")
    shutdown_timeout: float = _opt(5.0, "seconds to flush clients on shutdown before closing")
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR")
    log_format: str = _opt("text", "log lines as text, or json (one object per line)")
    data_dir: str = _opt("", "where history and accounts are kept (default: the user data dir)")
    tls_port: int = _opt(0, "TLS port on every host (0 = no TLS listener; 6697 is usual)")
    tls_cert: str = _opt("", "TLS certificate chain file (PEM)")
    tls_key: str = _opt("", "TLS private key file (PEM)")
    tls_self_signed: bool = _opt(False, "make a development certificate under data_dir")
    announce: str = _opt(
        "auto",
        "announce on the local network (DNS-SD/mDNS _irc._tcp): auto (only when listening "
        "beyond loopback), on or off",
    )
    plain_port: int = _opt(12345, "plain-text chat port for bare socket clients (0 = off)")
    plain_channel: str = _opt("#lobby", "the channel plain-text clients chat in")
    plain_pause: float = _opt(
        0.5, "seconds of silence that end a plain-text line sent without a newline"
    )
    limits: Limits = field(default_factory=Limits)
    history: History = field(default_factory=History)
    accounts: Accounts = field(default_factory=Accounts)
    http: Http = field(default_factory=Http)
    metadata: Metadata = field(default_factory=Metadata)
    idempotency: Idempotency = field(default_factory=Idempotency)
    uploads: Uploads = field(default_factory=Uploads)
    cluster: Cluster = field(default_factory=Cluster)
    throttle: Throttle = field(default_factory=Throttle)
    opers: tuple[Oper, ...] = ()

    def data_path(self) -> Path:
        """The data directory: ``data_dir``, or the user's data directory for relaychat."""
        if self.data_dir:
            return Path(self.data_dir).expanduser()
        return Path(platformdirs.user_data_dir("relaychat", appauthor=False))

    def hosts(self) -> list[str]:
        """The listen addresses, split and stripped."""
        return [h.strip() for h in self.host.split(",") if h.strip()]

    def motd_lines(self) -> list[str] | None:
        """The message of the day as lines, or ``None`` when there is none.

        Raises:
            ConfigError: ``motd_file`` cannot be read.
        """
        text = self.motd
        if self.motd_file:
            try:
                text = Path(self.motd_file).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ConfigError(
                    "motd_file", f"cannot read {self.motd_file}: {exc.strerror}"
                ) from None
        lines = text.splitlines()
        return lines or None


# --- loading ------------------------------------------------------------------------------------

_HINTS = typing.get_type_hints(Config)


def scalar_fields(cls: type[Any]) -> list[dataclasses.Field[Any]]:
    """The fields of ``cls`` that hold a str, int, float or bool (what flags and env can set)."""
    hints = typing.get_type_hints(cls)
    return [f for f in dataclasses.fields(cls) if hints[f.name] in (str, int, float, bool)]


def _coerce(key: str, kind: Any, value: Any) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(key, f"expected a boolean, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected an integer, got {value!r}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str | int | float):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return str(value)
    raise ConfigError(key, "cannot be set this way")  # pragma: no cover


def _merge_section(
    cls: type[Any],
    hints: Mapping[str, Any],
    prefix: str,
    raw: Mapping[str, Any],
    into: dict[str, Any],
) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(path, "unknown setting")
        into[key] = _coerce(path, hints[key], value)


def _parse_opers(raw: Any) -> tuple[Oper, ...]:
    if not isinstance(raw, list):
        raise ConfigError("opers", "expected a list of [[opers]] tables")
    opers = []
    for i, item in enumerate(raw):
        path = f"opers[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(path, "expected a table with name and password_hash")
        unknown = set(item) - {"name", "password_hash"}
        if unknown:
            raise ConfigError(f"{path}.{sorted(unknown)[0]}", "unknown setting")
        name, pw = item.get("name"), item.get("password_hash")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{path}.name", "required")
        if not isinstance(pw, str) or not pw.startswith("$argon2"):
            raise ConfigError(
                f"{path}.password_hash",
                "must be an argon2 hash (make one with `relaychat mkpasswd`)",
            )
        opers.append(Oper(name, pw))
    return tuple(opers)


#: The TOML tables of Config, each a frozen dataclass of scalars: name -> class.
SECTIONS: dict[str, type[Any]] = {
    "limits": Limits,
    "history": History,
    "accounts": Accounts,
    "http": Http,
    "metadata": Metadata,
    "idempotency": Idempotency,
    "uploads": Uploads,
    "cluster": Cluster,
    "throttle": Throttle,
}


def load_config(
    *,
    file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the :class:`Config` from its four layers.

    Args:
        file: a TOML file, or ``None``.
        environ: the environment to read ``RELAYCHAT_*`` from (``os.environ`` when ``None``).
        overrides: values from command-line flags: top-level keys and ``<section>.<key>`` keys;
            ``None`` values are ignored.

    Returns:
        The validated, frozen configuration.

    Raises:
        ConfigError: a value is wrong, a key unknown, or the file unreadable.
    """
    top: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    hints = {name: typing.get_type_hints(cls) for name, cls in SECTIONS.items()}
    opers: tuple[Oper, ...] = ()
    top_names = {f.name for f in scalar_fields(Config)}

    if file is not None:
        try:
            with open(file, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError("config", f"cannot read {os.fspath(file)}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"{os.fspath(file)} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if key in SECTIONS:
                if not isinstance(value, dict):
                    raise ConfigError(key, f"expected a [{key}] table")
                _merge_section(SECTIONS[key], hints[key], f"{key}.", value, sections[key])
            elif key == "opers":
                opers = _parse_opers(value)
            elif key in top_names:
                top[key] = _coerce(key, _HINTS[key], value)
            else:
                raise ConfigError(key, "unknown setting")

    env = os.environ if environ is None else environ
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        section, sep, sub_key = key.partition("__")
        if sep:
            if section not in SECTIONS or sub_key not in hints[section]:
                raise ConfigError(name, "unknown setting")
            sections[section][sub_key] = _coerce(name, hints[section][sub_key], value)
        elif key in top_names:
            top[key] = _coerce(name, _HINTS[key], value)
        # Other RELAYCHAT_* variables belong to the client commands (nick, target, ...).

    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, sep, sub_key = key.partition(".")
        if sep:
            sections[section][sub_key] = _coerce(key, hints[section][sub_key], value)
        else:
            top[key] = _coerce(key, _HINTS[key], value)

    config = Config(
        **top,
        **{name: cls(**sections[name]) for name, cls in SECTIONS.items()},
        opers=opers,
    )
    validate(config)
    return config


def validate(config: Config) -> None:
    """Check every value of ``config``.

    Raises:
        ConfigError: the first wrong value, by key path.
    """
    if not 0 <= config.port <= 65535:
        raise ConfigError("port", f"{config.port} is not a port number (0-65535)")
    hosts = config.hosts()
    if not hosts:
        raise ConfigError("host", "at least one address is needed")
    for h in hosts:
        if h in ("localhost", "*", "0.0.0.0", "::"):
            continue
        try:
            ipaddress.ip_address(h)
        except ValueError:
            raise ConfigError("host", f"{h!r} is not an IP address") from None
    name = config.server_name
    if not name or " " in name or "." not in name or len(name) > 63:
        raise ConfigError(
            "server_name", f"{name!r} must look like a host name (with a dot, no spaces)"
        )
    if not config.network or " " in config.network:
        raise ConfigError("network", f"{config.network!r} must be one word")
    for key in ("ping_interval", "ping_timeout", "registration_timeout", "shutdown_timeout"):
        if getattr(config, key) <= 0:
            raise ConfigError(key, "must be greater than 0")
    if config.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("log_level", f"{config.log_level!r} is not DEBUG, INFO, WARNING or ERROR")
    lim = config.limits
    for f in dataclasses.fields(Limits):
        value = getattr(lim, f.name)
        if isinstance(value, str):
            continue
        floor = 0 if f.name in ("max_per_ip", "flood_rate", "typing_interval") else 1
        if value < floor:
            raise ConfigError(f"limits.{f.name}", f"must be at least {floor}")
    if lim.nicklen < 9:
        raise ConfigError("limits.nicklen", "must be at least 9 (RFC 2812)")
    if lim.channellen < 2:
        raise ConfigError("limits.channellen", "must be at least 2")
    if lim.flood_action not in FLOOD_ACTIONS:
        raise ConfigError(
            "limits.flood_action", f"{lim.flood_action!r} is not throttle, fakelag or disconnect"
        )
    if lim.recvq < 1024:
        raise ConfigError("limits.recvq", "must be at least 1024")
    if lim.sendq < 4096:
        raise ConfigError("limits.sendq", "must be at least 4096")
    for section in ("history", "accounts", "metadata"):
        _non_negative(config, section)
    meta = config.metadata
    # A value must fit in one line: ":server 761 <nick> <target> <key> * :<value>".
    if not 1 <= meta.max_value_bytes <= 300:
        raise ConfigError("metadata.max_value_bytes", "must be between 1 and 300")
    for key in ("max_subs", "max_keys", "set_burst"):
        if getattr(meta, key) < 1:
            raise ConfigError(f"metadata.{key}", "must be at least 1")
    if meta.set_rate <= 0:
        raise ConfigError("metadata.set_rate", "must be greater than 0")
    idem = config.idempotency
    if idem.window <= 0:
        raise ConfigError("idempotency.window", "must be greater than 0")
    if idem.max_keys < 1:
        raise ConfigError("idempotency.max_keys", "must be at least 1")
    if config.log_format not in ("text", "json"):
        raise ConfigError("log_format", f"{config.log_format!r} is not text or json")
    _validate_throttle(config)
    if config.announce not in ("auto", "on", "off"):
        raise ConfigError("announce", f"{config.announce!r} is not auto, on or off")
    if not 0 <= config.plain_port <= 65535:
        raise ConfigError("plain_port", f"{config.plain_port} is not a port number (0-65535)")
    pc = config.plain_channel
    if (
        len(pc) < 2
        or pc[0] != "#"
        or any(ch in pc for ch in " ,:\x07\x00")
        or len(pc) > lim.channellen
    ):
        raise ConfigError("plain_channel", f"{pc!r} is not a valid channel name")
    if config.plain_pause <= 0:
        raise ConfigError("plain_pause", "must be greater than 0")
    if not 0 <= config.tls_port <= 65535:
        raise ConfigError("tls_port", f"{config.tls_port} is not a port number (0-65535)")
    if config.tls_port and not config.tls_self_signed and not (config.tls_cert and config.tls_key):
        raise ConfigError("tls_port", "needs tls_cert and tls_key, or tls_self_signed")
    if (config.tls_cert or config.tls_key) and not (config.tls_cert and config.tls_key):
        raise ConfigError(
            "tls_cert" if not config.tls_cert else "tls_key", "tls_cert and tls_key go together"
        )
    _validate_http(config)
    _validate_uploads(config)
    _validate_cluster(config)
    config.motd_lines()


def _validate_http(config: Config) -> None:
    """Check the ``[http]`` section (see :func:`validate`)."""
    web = config.http
    if not 0 <= web.port <= 65535:
        raise ConfigError("http.port", f"{web.port} is not a port number (0-65535)")
    if web.tls and not config.tls_self_signed and not (config.tls_cert and config.tls_key):
        raise ConfigError("http.tls", "needs tls_cert and tls_key, or tls_self_signed")
    for key in ("ws_max_message", "max_body", "max_connections", "hook_max_lines", "hook_burst"):
        if getattr(web, key) < 1:
            raise ConfigError(f"http.{key}", "must be at least 1")
    if web.ws_max_message < 1024:
        raise ConfigError("http.ws_max_message", "must be at least 1024")
    for key in ("ws_ping_interval", "hook_rate"):
        if getattr(web, key) < 0:
            raise ConfigError(f"http.{key}", "must not be negative")
    if web.request_timeout <= 0:
        raise ConfigError("http.request_timeout", "must be greater than 0")
    if web.hook_burst < web.hook_max_lines:
        raise ConfigError("http.hook_burst", "must be at least http.hook_max_lines")
    for item in (p.strip() for p in web.trusted_proxies.split(",")):
        if item:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    "http.trusted_proxies", f"{item!r} is not an IP address or network"
                ) from None
    for origin in (o.strip() for o in web.allowed_origins.split(",")):
        if origin and origin != "*" and "://" not in origin:
            raise ConfigError(
                "http.allowed_origins", f"{origin!r} is not an origin (scheme://host[:port])"
            )


def _non_negative(config: Config, section: str) -> None:
    """Refuse a negative number anywhere in ``section`` (booleans and strings are skipped)."""
    values = getattr(config, section)
    for f in dataclasses.fields(SECTIONS[section]):
        value = getattr(values, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{section}.{f.name}", "must not be negative")


def _validate_uploads(config: Config) -> None:
    """Check the ``[uploads]`` section (see :func:`validate`)."""
    up = config.uploads
    _non_negative(config, "uploads")
    if up.max_size < 1:
        raise ConfigError("uploads.max_size", "must be at least 1")
    if up.token_ttl <= 0:
        raise ConfigError("uploads.token_ttl", "must be greater than 0")
    url = up.public_url
    if url:
        scheme, sep, rest = url.partition("://")
        if scheme not in ("http", "https") or not sep or not rest.strip("/"):
            raise ConfigError("uploads.public_url", f"{url!r} is not an http:// or https:// URL")
        if any(ch in url for ch in " ?#\\") or any(ord(ch) < 33 for ch in url):
            raise ConfigError(
                "uploads.public_url", f"{url!r} must not hold spaces, a query or a fragment"
            )


_NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def _validate_cluster(config: Config) -> None:
    """Check the ``[cluster]`` section (see :func:`validate`)."""
    cl = config.cluster
    for url in (u.strip() for u in cl.url.split(",")):
        if url and not re.match(r"(nats|tls|ws|wss)://[^\s/]+\Z", url):
            raise ConfigError("cluster.url", f"{url!r} is not a NATS URL (nats://host:port)")
    if cl.node_name and not _NODE_NAME.match(cl.node_name):
        raise ConfigError("cluster.node_name", "use 1-64 letters, digits, - and _")
    if not _NODE_NAME.match(cl.prefix) or len(cl.prefix) > 32:
        raise ConfigError("cluster.prefix", "use 1-32 letters, digits, - and _")
    if not 1 <= cl.replicas <= 5:
        raise ConfigError("cluster.replicas", "must be between 1 and 5")
    for key in ("heartbeat", "node_timeout", "ack_timeout"):
        if getattr(cl, key) <= 0:
            raise ConfigError(f"cluster.{key}", "must be greater than 0")
    if cl.node_timeout < 2 * cl.heartbeat:
        raise ConfigError("cluster.node_timeout", "must be at least twice cluster.heartbeat")
    if (cl.tls_cert or cl.tls_key) and not (cl.tls_cert and cl.tls_key):
        raise ConfigError(
            "cluster.tls_cert" if not cl.tls_cert else "cluster.tls_key",
            "cluster.tls_cert and cluster.tls_key go together",
        )


def _validate_throttle(config: Config) -> None:
    """The ``[throttle]`` section and the account settings that go with it.

    Raises:
        ConfigError: the first wrong value, by key path.
    """
    thr = config.throttle
    _non_negative(config, "throttle")
    if not 8 <= thr.ipv4_prefix <= 32:
        raise ConfigError("throttle.ipv4_prefix", "must be 8 to 32")
    if not 16 <= thr.ipv6_prefix <= 128:
        raise ConfigError("throttle.ipv6_prefix", "must be 16 to 128")
    for key in ("tls_handshake_timeout", "log_interval"):
        if getattr(thr, key) <= 0:
            raise ConfigError(f"throttle.{key}", "must be greater than 0")
    for key in (
        "max_handshaking",
        "hash_threads",
        "hash_queue_per_key",
        "lockout_max",
        "login_failures",
        "account_failures",
        "account_failures_total",
        "oper_failures",
        "register_ip_burst",
        "register_burst",
        "connect_burst",
    ):
        if getattr(thr, key) < 1:
            raise ConfigError(f"throttle.{key}", "must be at least 1")
    acc = config.accounts
    if not 1 <= acc.min_password_length <= 300:
        raise ConfigError("accounts.min_password_length", "must be 1 to 300")
