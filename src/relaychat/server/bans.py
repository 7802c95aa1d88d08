"""Server bans: K-lines (``user@host`` masks) and D-lines (IP addresses and CIDR networks).

Rules:
1. Pure: a :class:`BanList` holds the bans and answers "is this connection banned?" for a time
   passed in; it never reads the clock and never touches a file. Persisting is the edge's: it
   sets :attr:`BanList.on_change` to a function that saves (see :func:`save_bans`).
2. A K-line mask is ``user@host``: ``user`` is a wildcard mask matched against the username as
   shown (``~alice`` for a client without ident); ``host`` is a wildcard mask matched against the
   displayed host and the IP address, or a CIDR network (``10.0.0.0/8``, ``2001:db8::/32``)
   matched against the IP address.
3. A D-line is an IP address or a CIDR network, IPv4 or IPv6 (an IPv4-mapped IPv6 address is
   matched as the IPv4 address it holds). It is checked when a connection is accepted.
4. A ban may expire: ``expires`` is an absolute time; an expired ban matches nothing and is
   dropped by :meth:`BanList.expire` (the core's tick).
5. Masks that would ban everyone (``*@*``, ``0.0.0.0/0``) or too wide a network (shorter than
   /8 for IPv4, /16 for IPv6) are refused with :class:`BanError`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from relaychat.errors import RelaychatError
from relaychat.server.masks import match_mask

__all__ = [
    "Ban",
    "BanError",
    "BanList",
    "BanStoreError",
    "human_duration",
    "load_bans",
    "parse_duration",
    "save_bans",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: The narrowest prefix a D-line (or a K-line's CIDR host) may have: wider is refused.
MIN_PREFIX = {4: 8, 6: 16}
_DURATION = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}


class BanError(RelaychatError):
    """A ban cannot be set or parsed: ``reason`` says why, for the oper."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BanStoreError(RelaychatError):
    """The ban file exists but cannot be read (one line, exit code 2 at start)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read the ban file {path}: {reason}")
        self.path = path
        self.reason = reason


def parse_duration(text: str) -> int | None:
    """A ban duration in seconds: plain minutes (``30``, as other servers take it) or units
    (``90s``, ``2h30m``, ``1w``). ``None`` when ``text`` is not a duration."""
    if text.isascii() and text.isdigit() and len(text) <= 7:
        return int(text) * 60
    text = text.lower()
    if not text or len(text) > 20 or _DURATION.sub("", text):
        return None
    return sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text)) or None


def _network(text: str) -> IPNetwork | None:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if isinstance(net, ipaddress.IPv6Network) and net.network_address.ipv4_mapped is not None:
        mapped = net.network_address.ipv4_mapped
        return ipaddress.ip_network(f"{mapped}/{max(net.prefixlen - 96, 0)}", strict=False)
    return net


def _address(ip: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _check_width(net: IPNetwork, what: str) -> None:
    if net.prefixlen < MIN_PREFIX[net.version]:
        raise BanError(
            f"{what} {net} is too wide (at least /{MIN_PREFIX[net.version]} for IPv{net.version})"
        )


@dataclass(frozen=True, slots=True)
class Ban:
    """One K-line or D-line.

    Attributes:
        kind: ``"K"`` or ``"D"``.
        mask: ``user@host`` (K) or a network in CIDR form (D), normalised.
        reason: shown to the banned client and in STATS.
        set_by: who set it (an oper's nick!user@host, or ``admin`` for the admin socket).
        set_at: when (Unix time).
        expires: when it stops (Unix time), or ``None`` for a permanent ban.
    """

    kind: str
    mask: str
    reason: str
    set_by: str
    set_at: float
    expires: float | None = None

    def active(self, now: float) -> bool:
        return self.expires is None or now < self.expires

    def describe(self, now: float) -> str:
        """The reason, with how long is left for a temporary ban (for STATS and notices)."""
        if self.expires is None:
            return self.reason
        left = max(0, int(self.expires - now))
        return f"{self.reason} (expires in {human_duration(left)})"


def human_duration(seconds: int) -> str:
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts)


def normalize_kline(mask: str) -> str:
    """``user@host`` checked and normalised (a bare host becomes ``*@host``).

    Raises:
        BanError: not a usable mask, or one that would match everyone.
    """
    if not mask or " " in mask or "!" in mask or len(mask) > 200:
        raise BanError(f"{mask or '(empty)'} is not a user@host mask")
    user, at, host = mask.rpartition("@")
    if not at:
        user, host = "*", mask
    user = user or "*"
    if not host:
        raise BanError(f"{mask} has no host part")
    if "/" in host:
        net = _network(host)
        if net is None:
            raise BanError(f"{host} is not a CIDR network")
        _check_width(net, "the network")
        host = str(net)
    elif not host.strip("*?.:"):
        raise BanError(f"{mask} would match every host")
    return f"{user}@{host}".lower()


def normalize_dline(mask: str) -> str:
    """An IP address or network in CIDR form, normalised (``10.1.2.3/8`` -> ``10.0.0.0/8``).

    Raises:
        BanError: not an address or network, or too wide a one.
    """
    net = _network(mask)
    if net is None:
        raise BanError(f"{mask or '(empty)'} is not an IP address or CIDR network")
    _check_width(net, "the network")
    return str(net)


class BanList:
    """Every K-line and D-line of the server; see the module rules."""

    def __init__(self, bans: Iterable[Ban] = ()) -> None:
        self.klines: dict[str, Ban] = {}
        self.dlines: dict[str, Ban] = {}
        self._nets: dict[str, IPNetwork] = {}
        #: Called after every change (set by the edge to persist the list).
        self.on_change: Callable[[BanList], None] | None = None
        for ban in bans:
            self._put(ban)

    def __len__(self) -> int:
        return len(self.klines) + len(self.dlines)

    def all(self) -> list[Ban]:
        return [*self.klines.values(), *self.dlines.values()]

    def _put(self, ban: Ban) -> None:
        if ban.kind == "K":
            self.klines[ban.mask] = ban
            if "/" in ban.mask:
                net = _network(ban.mask.rpartition("@")[2])
                if net is not None:
                    self._nets["K" + ban.mask] = net
        else:
            self.dlines[ban.mask] = ban
            net = _network(ban.mask)
            if net is not None:
                self._nets["D" + ban.mask] = net

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def add(self, ban: Ban) -> Ban | None:
        """Add ``ban`` (already normalised), replacing one with the same mask.

        Returns:
            The ban it replaced, or ``None``.
        """
        old = (self.klines if ban.kind == "K" else self.dlines).get(ban.mask)
        self._put(ban)
        self._changed()
        return old

    def remove(self, kind: str, mask: str) -> Ban | None:
        """Remove the ``kind`` ban on ``mask`` (normalised as when set); ``None`` if none."""
        try:
            key = normalize_kline(mask) if kind == "K" else normalize_dline(mask)
        except BanError:
            key = mask
        table = self.klines if kind == "K" else self.dlines
        ban = table.pop(key, None)
        if ban is not None:
            self._nets.pop(kind + key, None)
            self._changed()
        return ban

    def expire(self, now: float) -> list[Ban]:
        """Drop the bans that have expired by ``now``; return them."""
        gone = [b for b in self.all() if not b.active(now)]
        for ban in gone:
            (self.klines if ban.kind == "K" else self.dlines).pop(ban.mask, None)
            self._nets.pop(ban.kind + ban.mask, None)
        if gone:
            self._changed()
        return gone

    def dline_for(self, ip: str, now: float) -> Ban | None:
        """The D-line that bans ``ip`` now, or ``None``."""
        if not self.dlines:
            return None
        addr = _address(ip)
        if addr is None:
            return None
        for ban in self.dlines.values():
            net = self._nets.get("D" + ban.mask)
            if net is not None and addr in net and ban.active(now):
                return ban
        return None

    def kline_for(self, username: str, host: str, ip: str, now: float) -> Ban | None:
        """The K-line that bans ``username@host`` (or ``username@ip``) now, or ``None``."""
        if not self.klines:
            return None
        addr: IPAddress | None = None
        for ban in self.klines.values():
            if not ban.active(now):
                continue
            user_mask, _, host_mask = ban.mask.rpartition("@")
            if not match_mask(user_mask, username):
                continue
            net = self._nets.get("K" + ban.mask)
            if net is not None:
                if addr is None:
                    addr = _address(ip)
                if addr is not None and addr in net:
                    return ban
            elif match_mask(host_mask, host) or match_mask(host_mask, ip):
                return ban
        return None


# --- persistence (used by the edge; the core never calls these) ------------------------------


def save_bans(path: Path, bans: BanList) -> None:
    """Write ``bans`` to ``path`` atomically (a temporary file, fsync, rename), mode 0600.

    Raises:
        OSError: the file could not be written (the old one is left as it was).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = {"version": 1, "bans": [asdict(b) for b in bans.all()]}
    fd, tmp = tempfile.mkstemp(prefix=".bans-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_bans(path: Path) -> BanList:
    """The bans saved at ``path`` (an empty list when there is no file).

    Raises:
        BanStoreError: the file exists but is not a ban file this version can read.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return BanList()
    except OSError as exc:
        raise BanStoreError(str(path), exc.strerror or str(exc)) from None
    try:
        data: Any = json.loads(raw)
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("not a version 1 ban file")
        bans = []
        for item in data["bans"]:
            ban = Ban(**item)
            if ban.kind not in ("K", "D"):
                raise ValueError(f"unknown ban kind {ban.kind!r}")
            bans.append(ban)
    except (ValueError, KeyError, TypeError) as exc:
        raise BanStoreError(str(path), str(exc)) from None
    return BanList(bans)
