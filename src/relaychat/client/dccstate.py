"""DCC file transfer, the pure part: settings, transfers as values, events, and the rules.

Rules:
1. No sockets, no tasks, no clock: what depends on time takes ``now``. The asyncio side is
   :mod:`relaychat.client.dcc` (the manager) and :mod:`relaychat.client.dccio` (the bytes).
2. Safe by default. A file name from a peer goes through :func:`safe_name` before it comes near
   the disk: no path components, no leading dot, no control or invisible characters, a bounded
   length; :func:`free_name` never picks a name that exists (no overwriting: a resume is the
   only way to write into an existing file, and only into our own ``.part`` unless asked).
3. Acknowledgements are what mIRC, irssi and WeeChat exchange: after each read the receiver
   sends the total number of bytes it has, as a 32-bit big-endian number, so past 4 GiB it wraps
   (irssi and WeeChat send ``position & 0xffffffff``). :class:`AckTracker` unwraps it against
   the bytes sent, which is exact as long as less than 4 GiB is in flight (a TCP window is a
   few MiB). A peer sending 64-bit acks is understood too: each 4-byte half unwraps to a
   position no higher than the truth, and the highest one seen counts.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import struct
import unicodedata
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from relaychat.client.events import Event
from relaychat.errors import ConfigError
from relaychat.protocol.ctcp import MAX_PORT, DccSend

__all__ = [
    "ACK_MASK",
    "MAX_NAME_BYTES",
    "PART_SUFFIX",
    "AckTracker",
    "DccConfig",
    "DccDone",
    "DccEvent",
    "DccFailed",
    "DccOffered",
    "DccProgress",
    "DccRefused",
    "Direction",
    "RateMeter",
    "State",
    "Transfer",
    "ack_bytes",
    "check_address",
    "check_offer",
    "format_eta",
    "format_rate",
    "format_size",
    "free_name",
    "parse_port_range",
    "parse_size",
    "safe_name",
    "unwrap_ack",
]

ACK_MASK = 0xFFFFFFFF
#: The longest file name we write or offer, in UTF-8 bytes (most file systems allow 255).
MAX_NAME_BYTES = 200
#: What a file being received is called until it is complete.
PART_SUFFIX = ".part"
_ACK = struct.Struct("!I")
#: Characters that are path separators or not allowed in file names on common systems.
_RESERVED = re.compile(r'[/\\:*?"<>|]')
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul"} | {f"{d}{i}" for d in ("com", "lpt") for i in range(1, 10)}
)


# --- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DccConfig:
    """How DCC behaves; checked when built. Every bound has a safe default.

    Attributes are grouped: listening, safety, timeouts, sending, tuning.
    """

    # Listening (active sends, and receiving a passive offer)
    bind_host: str | None = None  # None: the local address of the link to the IRC server
    advertise_host: str | None = None  # the address put in offers (behind NAT: the public one)
    port_range: tuple[int, int] | None = None  # (first, last) to listen on; None: any free port

    # Safety
    max_size: int = 16 << 30  # offers above this many bytes are refused
    allow_from: tuple[str, ...] | None = None  # nicks whose offers are heard; None: anyone's
    allow_low_ports: bool = False  # connect to ports below 1024 (a peer could aim at a service)
    max_offers: int = 32  # pending incoming offers kept (the oldest goes first)

    # Timeouts (seconds)
    offer_timeout: float = 300.0  # an offer (ours or theirs) waits this long for the other side
    connect_timeout: float = 30.0  # a TCP connection to the peer
    stall_timeout: float = 60.0  # no byte moved (data or acknowledgement) for this long

    # Sending
    passive: bool | None = None  # None: listen when we can, else a passive (reverse) offer
    turbo: bool = False  # done when the peer closes after the last byte, without acks

    # Receiving (for front-ends: the library always takes a directory)
    download_dir: str | None = None  # None: ~/Downloads when it exists, else the current one

    # Tuning
    chunk_size: int = 1 << 20  # bytes read or written at once
    progress_interval: float = 0.5  # least seconds between two DccProgress of one transfer

    def __post_init__(self) -> None:
        if self.port_range is not None:
            first, last = self.port_range
            if not 1 <= first <= last <= MAX_PORT:
                raise ConfigError("dcc.port_range", f"{first}-{last} is not a port range")
        if self.max_size < 0:
            raise ConfigError("dcc.max_size", "must not be negative")
        for key in ("offer_timeout", "connect_timeout", "stall_timeout", "progress_interval"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"dcc.{key}", "must be greater than 0")
        if not 4096 <= self.chunk_size <= 64 << 20:
            raise ConfigError("dcc.chunk_size", "must be from 4096 to 64 MiB")
        if self.max_offers < 1:
            raise ConfigError("dcc.max_offers", "must be at least 1")
        if self.allow_from is not None:
            object.__setattr__(self, "allow_from", tuple(self.allow_from))

    @classmethod
    def from_settings(cls, data: Mapping[str, Any], where: str = "dcc") -> DccConfig:
        """Build from the ``[dcc]`` table of the client config file (or any mapping).

        Sizes may be given as ``"2G"``, the port range as ``"5000-5010"``, and timeouts as
        numbers of seconds.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type or out of range.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"{where}.{key}", "unknown setting")
            try:
                out[key] = _setting(key, value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where}.{key}", str(exc)) from None
        return cls(**out)

    def download_path(self) -> Path:
        """Where front-ends save files: ``download_dir``, else ``~/Downloads``, else ``.``."""
        if self.download_dir:
            return Path(self.download_dir).expanduser()
        home = Path("~/Downloads").expanduser()
        return home if home.is_dir() else Path.cwd()


def _setting(key: str, value: Any) -> Any:
    """One value of the ``[dcc]`` table, converted to what :class:`DccConfig` takes."""
    if key in ("max_size", "chunk_size", "max_offers"):
        if isinstance(value, str) and key != "max_offers":
            return parse_size(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError(f'must be a number of bytes (or like "2G"), not {value!r}')
    if key == "port_range":
        if isinstance(value, str):
            return parse_port_range(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return (value, value)
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return (value[0], value[1])
        raise TypeError(f'must be a port or a range like "5000-5010", not {value!r}')
    if key == "allow_from":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise TypeError("must be a list of nicks")
    if key in ("allow_low_ports", "passive", "turbo"):
        if isinstance(value, bool):
            return value
        raise TypeError(f"must be true or false, not {value!r}")
    if key.endswith("_timeout") or key == "progress_interval":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise TypeError(f"must be a number of seconds, not {value!r}")
    if isinstance(value, str):  # bind_host, advertise_host, download_dir
        return value
    raise TypeError(f"must be text, not {value!r}")


def parse_port_range(text: str) -> tuple[int, int]:
    """Read ``5000`` or ``5000-5010`` (a settings or command-line value).

    Raises:
        ValueError: not one port or a range from low to high within 1-65535.
    """
    first, _, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{text!r} is not a port or a range like 5000-5010") from None
    if not 1 <= low <= high <= MAX_PORT:
        raise ValueError(f"{text!r} is not a port range within 1-65535")
    return low, high


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Read a size such as ``1048576``, ``500M``, ``2GiB`` or ``16g``.

    Raises:
        ValueError: not a size.
    """
    m = re.fullmatch(r"\s*([0-9]+)\s*([kKmMgGtT]?)(?:i?[bB])?\s*", text)
    if m is None:
        raise ValueError(f"{text!r} is not a size (e.g. 500M or 2G)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


# --- names ----------------------------------------------------------------------------------------


def safe_name(name: str) -> str:
    """A file name from a peer, made safe to create in a download directory (rule 2).

    Only the last path component is kept (``../../etc/passwd`` gives ``passwd``; ``\\`` counts
    as a separator too); control, format (bidi overrides, zero-width) and reserved characters
    become ``_``; leading dots and spaces and trailing dots and spaces go; a Windows device name
    gets a ``_`` in front; the name is cut to :data:`MAX_NAME_BYTES` keeping its extension.

    Raises:
        ValueError: nothing usable is left (``..``, ``/``, only dots...).
    """
    base = re.split(r"[/\\]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    out = "".join(
        "_" if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") else c
        for c in base
    )
    out = _RESERVED.sub("_", out).strip(" .")
    if not out.strip("_"):
        raise ValueError(f"the file name {name[:80]!r} has no usable part")
    if out.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
        out = "_" + out
    return _cut(out, MAX_NAME_BYTES)


def _cut(name: str, limit: int) -> str:
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or len(ext.encode("utf-8")) > 16:
        stem, ext = name, ""
    keep = limit - len(ext.encode("utf-8")) - (1 if ext else 0)
    cut = stem.encode("utf-8")[:keep].decode("utf-8", "ignore").rstrip(" .")
    return f"{cut}.{ext}" if ext else cut


def free_name(name: str, taken: Callable[[str], bool], *, limit: int = 1000) -> str:
    """``name``, or ``stem-1.ext``, ``stem-2.ext``... : the first that ``taken`` says is free.

    Args:
        name: a name from :func:`safe_name`.
        taken: whether a name is in use (it exists, or another transfer holds it).
        limit: how many numbers to try.

    Raises:
        ValueError: every candidate up to ``limit`` is taken.
    """
    if not taken(name):
        return name
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    for n in range(1, limit + 1):
        candidate = _cut(f"{stem}-{n}" + (f".{ext}" if ext else ""), MAX_NAME_BYTES)
        if not taken(candidate):
            return candidate
    raise ValueError(f"no free name like {name!r} ({limit} tried)")


# --- acknowledgements -------------------------------------------------------------------------


def ack_bytes(position: int) -> bytes:
    """The 4-byte acknowledgement of ``position`` bytes received (rule 3: it wraps at 4 GiB)."""
    return _ACK.pack(position & ACK_MASK)


def unwrap_ack(word: int, sent: int) -> int:
    """The position a 32-bit acknowledgement stands for: the highest ``p <= sent`` with
    ``p % 2**32 == word`` (rule 3)."""
    return sent - ((sent - word) & ACK_MASK)


class AckTracker:
    """Reads the receiver's acknowledgements from the byte stream (they may come split).

    Args:
        start: the position the transfer started at (a resume's offset).
    """

    __slots__ = ("_rest", "acked", "count")

    def __init__(self, start: int = 0) -> None:
        self.acked = start
        self.count = 0
        self._rest = b""

    def feed(self, data: bytes, sent: int) -> int:
        """Take bytes read from the receiver; returns the highest position acknowledged.

        Args:
            data: what was read.
            sent: how many bytes (from the file's start) were written so far.
        """
        buf = self._rest + data if self._rest else data
        whole = len(buf) - len(buf) % 4
        if whole:
            words = struct.unpack(f"!{whole // 4}I", buf[:whole])
            self.count += len(words)
            best = max(unwrap_ack(w, sent) for w in words)
            self.acked = max(self.acked, best)
        self._rest = bytes(buf[whole:])
        return self.acked


# --- rates ----------------------------------------------------------------------------------------


class RateMeter:
    """Bytes per second over the last ``window`` seconds (for progress bars and ETAs)."""

    __slots__ = ("_samples", "window")

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> None:
        """Record that ``done`` bytes were through at ``now``."""
        samples = self._samples
        samples.append((now, done))
        while len(samples) > 2 and samples[1][0] <= now - self.window:
            samples.popleft()

    def rate(self) -> float:
        """Bytes per second (0 before two samples)."""
        if len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0


def format_size(n: float) -> str:
    """``512 B``, ``1.5 KiB``, ``20.0 MiB``, ``4.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def format_rate(bytes_per_s: float) -> str:
    """``12.3 MiB/s``."""
    return format_size(bytes_per_s) + "/s"


def format_eta(seconds: float | None) -> str:
    """``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``?`` when unknown."""
    if seconds is None or math.isinf(seconds) or math.isnan(seconds) or seconds < 0:
        return "?"
    s = int(seconds + 0.5)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


# --- transfers ------------------------------------------------------------------------------------


class Direction(Enum):
    """Which way the file goes."""

    SEND = "send"
    RECEIVE = "receive"


class State(Enum):
    """Where a transfer is; the last three are final."""

    OFFERED = "offered"  # an incoming offer, waiting for our user to accept it
    WAITING = "waiting"  # waiting for the peer: to connect, to answer, to accept a resume
    CONNECTING = "connecting"
    ACTIVE = "active"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """Whether nothing more will happen."""
        return self in (State.DONE, State.FAILED, State.CANCELLED)


@dataclass(eq=False, slots=True, kw_only=True)
class Transfer:
    """One file transfer, in either direction (the manager updates it as it goes).

    Attributes:
        id: unique within the manager, from 1.
        direction: send or receive.
        nick: the peer.
        name: the file name on the wire (for an offer received: already made safe).
        size: the file's size in bytes.
        state: see :class:`State`.
        path: the file (sending: the source; receiving: where it is written).
        offered_name: the name exactly as the peer sent it (receiving).
        host, port: the peer's address once known (the offer's, or the connection's).
        token: the passive DCC token, when passive.
        passive: the passive (reverse) protocol: the receiver listens.
        turbo: no acknowledgements (mIRC TSEND, or our ``turbo`` setting).
        offset: where the transfer started (a resume's position).
        done: bytes the receiver has (sending: acknowledged, or written in turbo mode;
            receiving: written to the file).
        sha256: the received file's SHA-256 (hex), once done.
        error: why it failed or was cancelled.
        created, started, finished: monotonic times.
    """

    id: int
    direction: Direction
    nick: str
    name: str
    size: int
    state: State = State.WAITING
    path: Path | None = None
    offered_name: str = ""
    host: str = ""
    port: int = 0
    token: str | None = None
    passive: bool = False
    turbo: bool = False
    offset: int = 0
    done: int = 0
    sha256: str | None = None
    error: str = ""
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    meter: RateMeter = field(default_factory=RateMeter, repr=False)

    @property
    def fraction(self) -> float:
        """How much is through, from 0 to 1."""
        return 1.0 if self.size == 0 else min(1.0, self.done / self.size)

    def rate(self) -> float:
        """Bytes per second lately (while active), or on average (once done)."""
        if self.state is State.DONE and self.started is not None and self.finished:
            took = self.finished - self.started
            return (self.done - self.offset) / took if took > 0 else 0.0
        return self.meter.rate()

    def eta(self) -> float | None:
        """Seconds left at the current rate (``None`` when unknown)."""
        rate = self.meter.rate()
        if self.state is not State.ACTIVE or rate <= 0:
            return None
        return (self.size - self.done) / rate

    def describe(self) -> str:
        """One line: ``#3 receive report.pdf from bob: 12.0 MiB of 20.0 MiB (60%) active``."""
        way = "to" if self.direction is Direction.SEND else "from"
        pct = f"{self.fraction * 100:.0f}%"
        text = (
            f"#{self.id} {self.direction.value} {self.name} {way} {self.nick}: "
            f"{format_size(self.done)} of {format_size(self.size)} ({pct}) {self.state.value}"
        )
        return text + (f": {self.error}" if self.error else "")


def check_offer(offer: DccSend, config: DccConfig) -> str | None:
    """Why an incoming offer must be refused, or ``None`` when it may be shown to the user.

    Checks the size bound and, for a classic offer, the address (:func:`check_address`). The
    name is checked by :func:`safe_name`.
    """
    if offer.size > config.max_size:
        return f"{format_size(offer.size)} is over the limit of {format_size(config.max_size)}"
    return None if offer.passive else check_address(offer.host, offer.port, config)


def check_address(host: str, port: int, config: DccConfig) -> str | None:
    """Why we must not connect to ``host``:``port`` as a peer said, or ``None``.

    The address must be unicast and usable, and the port from 1024 up unless
    ``allow_low_ports`` (a peer could aim our connection at a service such as SMTP).
    """
    ip = ipaddress.ip_address(host)
    if ip.is_unspecified or ip.is_multicast or (ip.version == 4 and ip.is_reserved):
        return f"{host} is not an address one can connect to"
    if port < 1024 and not config.allow_low_ports:
        return f"port {port} is below 1024 (allow_low_ports is off)"
    return None


# --- events ---------------------------------------------------------------------------------------


class DccEvent(Event):
    """Base of the DCC events (they come from :meth:`DccManager.events`)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class DccOffered(DccEvent):
    """A peer offers a file; nothing happens until the user accepts it (``dcc.accept``).

    Attributes:
        transfer: the offer (state ``OFFERED``); ``transfer.name`` is already made safe.
        resumable: bytes of it we have already (a ``.part`` of ours), 0 when none.
    """

    transfer: Transfer
    resumable: int = 0


@dataclass(frozen=True, slots=True)
class DccProgress(DccEvent):
    """A transfer moved on (at most every ``progress_interval`` seconds per transfer)."""

    transfer: Transfer
    done: int
    rate: float


@dataclass(frozen=True, slots=True)
class DccDone(DccEvent):
    """A transfer is complete: the receiver has every byte (``transfer.sha256`` when we
    received it, ``transfer.path`` its final name)."""

    transfer: Transfer


@dataclass(frozen=True, slots=True)
class DccFailed(DccEvent):
    """A transfer failed or was cancelled; ``reason`` says why, in words for a user."""

    transfer: Transfer
    reason: str


@dataclass(frozen=True, slots=True)
class DccRefused(DccEvent):
    """A DCC message from ``nick`` was refused (malformed, too big, unsafe); nothing was done."""

    nick: str
    text: str
    reason: str
