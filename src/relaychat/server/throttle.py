"""Throttles: rate limits and failure lock-outs, keyed by address group, account or connection.

Pure and clock-injected: every method takes ``now`` (seconds, any monotonic-enough clock), so
the core can use it and tests can drive it in memory. Nothing here knows IRC; the callers
decide what a key is and what to tell the client.

- :func:`ip_group` maps an address to the key per-IP limits count by: the address itself for
  IPv4 (``throttle.ipv4_prefix``, /32 by default), its /64 network for IPv6
  (``throttle.ipv6_prefix``), since one IPv6 host usually owns a whole /64.
- :class:`RateLimiter` is a token bucket per key: ``burst`` at once, then one more every
  ``interval`` seconds (account registration per address and for the whole server, new
  connections per address).
- :class:`Lockout` counts failures per key: after ``threshold`` failures the key is locked for
  ``base`` seconds, doubling with each further failure up to ``cap``; a key with no failure for
  ``memory`` seconds starts afresh, and a success clears it (logins, OPER, server passwords).
- :class:`Throttles` is the set the server uses, built from the ``[throttle]`` config section.

Rules:
1. Bounded: each table keeps at most ``max_keys`` keys; the least recently used goes first.
2. Waits are reported in seconds (a float); callers round them up for people.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Hashable

from relaychat.config import Throttle

__all__ = [
    "MAX_KEYS",
    "Lockout",
    "RateLimiter",
    "Throttles",
    "ip_group",
    "retry_text",
    "seconds",
]

#: Most keys one table remembers.
MAX_KEYS = 100_000
#: Addresses whose group :meth:`Throttles.group` remembers.
_GROUPS_KEPT = 4096


def ip_group(ip: str, *, ipv4_prefix: int = 32, ipv6_prefix: int = 64) -> str:
    """The key ``ip`` is counted under: the address, or its network for shorter prefixes.

    An address that does not parse (a Unix socket, "unknown") is its own group.
    """
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = ipv4_prefix if addr.version == 4 else ipv6_prefix
    if prefix >= addr.max_prefixlen:
        return str(addr)
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def seconds(wait: float) -> int:
    """A wait as whole seconds for a message: rounded up, at least 1."""
    return max(1, math.ceil(wait))


def retry_text(wait: float) -> str:
    """ "try again in N seconds" (or "try again now" when the wait is over)."""
    return "try again now" if wait <= 0 else f"try again in {seconds(wait)} seconds"


def _per_minute(rate: float) -> float:
    """A rate per minute as a token bucket's interval in seconds (``0``: no limit)."""
    return 60.0 / rate if rate > 0 else 0.0


class RateLimiter:
    """A token bucket per key.

    Args:
        burst: tokens a key starts with (and can save up to).
        interval: seconds to earn one token back; ``0`` means no limit.
        max_keys: most keys remembered.
    """

    __slots__ = ("_buckets", "burst", "interval", "max_keys")

    def __init__(self, burst: int, interval: float, *, max_keys: int = MAX_KEYS) -> None:
        self.burst = float(burst)
        self.interval = interval
        self.max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # tokens, at

    def _tokens(self, key: Hashable, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return self.burst
        tokens, at = entry
        return min(self.burst, tokens + max(0.0, now - at) / self.interval)

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` may act (``0.0``: now). Takes nothing."""
        if self.interval <= 0:
            return 0.0
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) * self.interval

    def take(self, key: Hashable, now: float) -> float:
        """Spend one token of ``key`` if it has one.

        Returns:
            ``0.0`` when it was spent; otherwise the seconds to wait (nothing was spent).
        """
        if self.interval <= 0:
            return 0.0
        tokens = self._tokens(key, now)
        if tokens < 1.0:
            return (1.0 - tokens) * self.interval
        self._buckets[key] = (tokens - 1.0, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


class Lockout:
    """Failures per key, and the lock-out they earn.

    Args:
        threshold: failures allowed before the first lock-out.
        base: seconds of the first lock-out; each further failure doubles it.
        cap: the longest lock-out.
        memory: seconds after its last failure that a key is forgotten.
        max_keys: most keys remembered.
    """

    __slots__ = ("_keys", "base", "cap", "max_keys", "memory", "threshold")

    def __init__(
        self,
        threshold: int,
        base: float,
        cap: float,
        memory: float,
        *,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.threshold = threshold
        self.base = base
        self.cap = cap
        self.memory = memory
        self.max_keys = max_keys
        # key -> (failures, time of the last one, locked until)
        self._keys: OrderedDict[Hashable, tuple[int, float, float]] = OrderedDict()

    def _entry(self, key: Hashable, now: float) -> tuple[int, float, float] | None:
        entry = self._keys.get(key)
        if entry is not None and now - entry[1] >= max(self.memory, entry[2] - entry[1]):
            del self._keys[key]  # forgotten (never while it is still locked)
            return None
        return entry

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds ``key`` is still locked out for (``0.0``: it may try now)."""
        entry = self._entry(key, now)
        if entry is None:
            return 0.0
        return max(0.0, entry[2] - now)

    def failures(self, key: Hashable, now: float) -> int:
        """How many failures ``key`` has on record."""
        entry = self._entry(key, now)
        return 0 if entry is None else entry[0]

    def failure(self, key: Hashable, now: float) -> float:
        """Record a failure of ``key``.

        Returns:
            The lock-out it earned, in seconds (``0.0`` while under the threshold).
        """
        entry = self._entry(key, now)
        count = 1 if entry is None else entry[0] + 1
        lock = 0.0
        if count >= self.threshold:
            lock = min(self.cap, self.base * 2.0 ** (count - self.threshold))
        until = max(now + lock, entry[2] if entry is not None else 0.0)
        self._keys[key] = (count, now, until)
        self._keys.move_to_end(key)
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        return lock

    def success(self, key: Hashable) -> None:
        """Forget ``key``'s failures (it proved itself)."""
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


class Throttles:
    """The server's throttles, from the ``[throttle]`` section (see ``docs/security.md``).

    Attributes:
        login: failed logins (SASL, PASS account:password, VERIFY) per address group.
        account: failed logins per account name *and* address group: an attacker locks itself
            out of the account, not its owner elsewhere (any name counts, an unknown one too, so
            the lock-out does not tell which accounts exist).
        account_total: failed logins per account name from every address (a distributed
            attack), with a higher threshold.
        server_password: wrong server passwords (``PASS``) per address group.
        oper: failed OPER attempts, per address group and per connection.
        register_ip: account registrations per address group.
        register_all: account registrations on the whole server.
        connect: new connections per address group (``connect_burst`` at once, then
            ``connect_per_minute``).
    """

    def __init__(self, cfg: Throttle) -> None:
        self.config = cfg
        #: ip -> :meth:`group`, for the configured prefixes (a connect storm parses each
        #: address once, not once per connection); forgotten when full or reconfigured.
        self._groups: dict[str, str] = {}

        def lockout(threshold: int) -> Lockout:
            return Lockout(threshold, cfg.lockout, cfg.lockout_max, cfg.failure_memory)

        self.login = lockout(cfg.login_failures)
        self.account = lockout(cfg.account_failures)
        self.account_total = lockout(cfg.account_failures_total)
        self.server_password = lockout(cfg.login_failures)
        self.oper = lockout(cfg.oper_failures)
        self.register_ip = RateLimiter(cfg.register_ip_burst, cfg.register_ip_interval)
        self.register_all = RateLimiter(cfg.register_burst, cfg.register_interval)
        self.connect = RateLimiter(cfg.connect_burst, _per_minute(cfg.connect_per_minute))

    def reconfigure(self, cfg: Throttle) -> None:
        """Take new settings (a reload), keeping what each table remembers."""
        self._groups = {}
        self.config = cfg
        for table, threshold in (
            (self.login, cfg.login_failures),
            (self.account, cfg.account_failures),
            (self.account_total, cfg.account_failures_total),
            (self.server_password, cfg.login_failures),
            (self.oper, cfg.oper_failures),
        ):
            table.threshold = threshold
            table.base, table.cap, table.memory = cfg.lockout, cfg.lockout_max, cfg.failure_memory
        self.register_ip.burst = float(cfg.register_ip_burst)
        self.register_ip.interval = cfg.register_ip_interval
        self.register_all.burst = float(cfg.register_burst)
        self.register_all.interval = cfg.register_interval
        self.connect.burst = float(cfg.connect_burst)
        self.connect.interval = _per_minute(cfg.connect_per_minute)

    def group(self, ip: str) -> str:
        """``ip``'s address group (:func:`ip_group` with the configured prefixes)."""
        group = self._groups.get(ip)
        if group is None:
            cfg = self.config
            group = ip_group(ip, ipv4_prefix=cfg.ipv4_prefix, ipv6_prefix=cfg.ipv6_prefix)
            if len(self._groups) >= _GROUPS_KEPT:
                self._groups.clear()
            self._groups[ip] = group
        return group

    def login_wait(self, group: str, account: str | None, now: float) -> float:
        """Seconds before a login from ``group`` (to ``account``, folded) may be tried."""
        wait = self.login.wait(group, now)
        if account is not None:
            wait = max(
                wait,
                self.account.wait((account, group), now),
                self.account_total.wait(account, now),
            )
        return wait

    def login_failed(self, group: str, account: str | None, now: float) -> None:
        """Count a failed login from ``group`` to ``account`` (folded)."""
        self.login.failure(group, now)
        if account is not None:
            self.account.failure((account, group), now)
            self.account_total.failure(account, now)

    def login_succeeded(self, group: str, account: str) -> None:
        """A login from ``group`` to ``account`` (folded) succeeded: forget its failures there."""
        self.account.success((account, group))

    def register_wait(self, group: str, now: float) -> float:
        """Seconds before ``group`` may register an account (``0.0``: now, and it was counted)."""
        wait = max(self.register_ip.wait(group, now), self.register_all.wait("*", now))
        if wait <= 0:
            self.register_ip.take(group, now)
            self.register_all.take("*", now)
        return wait
