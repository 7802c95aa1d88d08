"""Finding relaychat servers on the local network: DNS-SD over multicast DNS (RFC 6762, RFC 6763).

A server announces one service instance of type ``_irc._tcp.local.`` (the DNS-SD name registered
for IRC). Its SRV record carries the IRC port, its A/AAAA records the addresses it listens on,
and its TXT record these keys::

    txtvers=1  network=<NETWORK>  server=<server_name>  version=<relaychat version>
    tls=<TLS port>      (only when a TLS listener is configured)
    plain=<plain port>  (only when the plain-text listener is on)

Rules:
- Everything that touches zeroconf lives here, and zeroconf is imported only when a function
  needs it, so ``relaychat --help`` stays quick.
- What to announce is decided by a pure function, :func:`plan_announcement`; the
  :class:`Announcer` only carries the plan out.
- Announcing is best effort: a failure is logged and the server keeps serving.
- Browsing is bounded: every wait has a deadline, and every socket opened is closed.

The ``announce`` setting (``auto``, ``on``, ``off``): ``auto`` announces only when the server
listens on an address other machines can reach (not loopback), so a server on 127.0.0.1 (the
default, and every test) never multicasts; ``on`` also announces a loopback-only server, on the
loopback interface; ``off`` never announces.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from relaychat import __version__
from relaychat.errors import RelaychatError

if TYPE_CHECKING:
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = [
    "ANNOUNCE_MODES",
    "SERVICE_TYPE",
    "AnnouncePlan",
    "Announcer",
    "DiscoveryError",
    "FoundServer",
    "NoServersFound",
    "add_parser",
    "announce_mode",
    "browse",
    "find_hosts",
    "plan_announcement",
    "start_announcing",
]

log = logging.getLogger("relaychat.discovery")

#: The DNS-SD service type for IRC (RFC 6763 §7; registered with IANA as "irc").
SERVICE_TYPE = "_irc._tcp.local."
#: Values of the ``announce`` setting.
ANNOUNCE_MODES = ("auto", "on", "off")
#: How long browsing listens by default, in seconds.
DEFAULT_TIMEOUT = 2.0
#: The longest a DNS label may be, in bytes (RFC 1035 §2.3.4); instance names are one label.
_MAX_LABEL = 63
_ALIASES = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}


class DiscoveryError(RelaychatError):
    """Multicast DNS could not be used here (no interface, no multicast, socket refused)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"local network discovery failed: {reason}")
        self.reason = reason


class NoServersFound(RelaychatError):
    """Browsing ended without finding a server (that matched the filters given)."""

    def __init__(self, timeout: float, network: str | None = None, tls: bool = False) -> None:
        what = "IRC servers"
        if network:
            what += f" of network {network}"
        if tls:
            what += " with TLS"
        super().__init__(
            f"no {what} found on the local network in {timeout:g} s (DNS-SD {SERVICE_TYPE} "
            "over mDNS); is the server announcing (announce = on, or listening beyond loopback)?"
        )
        self.timeout = timeout
        self.network = network
        self.tls = tls


# --- what to announce (pure) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncePlan:
    """One service instance to announce, fully decided.

    Attributes:
        instance: the instance name (one DNS label, at most 63 bytes).
        host: the SRV target, a ``.local.`` host name unique to this server.
        port: the IRC port.
        addresses: the addresses to publish, IPv4 first.
        interfaces: the IPv4 addresses of the interfaces to multicast on; empty means all.
        txt: the TXT record's keys and values.
    """

    instance: str
    host: str
    port: int
    addresses: tuple[str, ...]
    interfaces: tuple[str, ...]
    txt: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The full service instance name, ``<instance>._irc._tcp.local.``."""
        return f"{self.instance}.{SERVICE_TYPE}"


def announce_mode(config: Any) -> str:
    """The ``announce`` setting of ``config`` as one of :data:`ANNOUNCE_MODES`.

    Booleans and yes/no spellings are accepted too.

    Raises:
        ValueError: the value is none of them.
    """
    raw = config.announce
    if isinstance(raw, bool):
        return "on" if raw else "off"
    text = str(raw).strip().lower()
    text = _ALIASES.get(text, text)
    if text not in ANNOUNCE_MODES:
        raise ValueError(f"announce must be auto, on or off, not {raw!r}")
    return text


def _local_ipv4_addresses() -> list[str]:
    """Every IPv4 address of this machine's interfaces (loopback included)."""
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if ip.is_IPv4 and isinstance(ip.ip, str):
                out.append(ip.ip)
    return out


def _is_loopback(addr: str) -> bool:
    return ipaddress.ip_address(addr).is_loopback


def _label(text: str, limit: int = _MAX_LABEL) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").strip()


def _host_label(hostname: str, port: int) -> str:
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in hostname)
    return _label(f"{safe.strip('-') or 'relaychat'}-irc-{port}")


def plan_announcement(
    config: Any,
    bound: Sequence[tuple[str, int]],
    *,
    hostname: str | None = None,
    local_addresses: Callable[[], list[str]] = _local_ipv4_addresses,
) -> AnnouncePlan | None:
    """Decide what the server at ``bound`` announces, from its config; no I/O but the lookups.

    Args:
        config: the server's :class:`~relaychat.config.Config`.
        bound: the (address, port) of every listening socket, as bound (ports resolved).
        hostname: this machine's name (default: :func:`socket.gethostname`).
        local_addresses: the machine's IPv4 addresses, used when a listener is a wildcard.

    Returns:
        The plan, or ``None`` when nothing is to be announced (``off``; ``auto`` with only
        loopback listeners; no IRC listener).

    Raises:
        ValueError: the ``announce`` setting is not a known mode.
    """
    mode = announce_mode(config)
    if mode == "off":
        return None
    others = {p for p in (getattr(config, "tls_port", 0), getattr(config, "plain_port", 0)) if p}
    port = int(config.port) or next((p for _, p in bound if p not in others), 0)
    if not port:
        return None
    wildcard = False
    found: list[str] = []
    for addr, p in bound:
        if p != port:
            continue
        if ipaddress.ip_address(addr).is_unspecified:
            wildcard = True
            found.extend(local_addresses())
        else:
            found.append(addr)
    unique = list(dict.fromkeys(found))
    reachable = [a for a in unique if not _is_loopback(a)]
    if not reachable:
        if mode == "auto":
            return None
        reachable = [a for a in unique if _is_loopback(a)] or ["127.0.0.1"]
    reachable.sort(key=lambda a: ipaddress.ip_address(a).version)
    v4 = tuple(a for a in reachable if ipaddress.ip_address(a).version == 4)
    txt = {
        "txtvers": "1",
        "network": str(config.network),
        "server": str(config.server_name),
        "version": __version__,
    }
    if getattr(config, "tls_port", 0):
        txt["tls"] = str(config.tls_port)
    if getattr(config, "plain_port", 0):
        txt["plain"] = str(config.plain_port)
    host = hostname if hostname is not None else socket.gethostname()
    return AnnouncePlan(
        instance=_label(f"{config.server_name} on {host}:{port}"),
        host=f"{_host_label(host, port)}.local.",
        port=port,
        addresses=tuple(reachable),
        interfaces=() if wildcard or not v4 else v4,
        txt=txt,
    )


# --- announcing ---------------------------------------------------------------------------------


class Announcer:
    """Carries out an :class:`AnnouncePlan`: registers the service, and withdraws it on stop.

    Use :func:`start_announcing`; the registration (probing, then announcements, about a second)
    runs as a task, so the server's start is not delayed.
    """

    def __init__(self, plan: AnnouncePlan) -> None:
        self.plan = plan
        self._zc: AsyncZeroconf | None = None
        self._task: asyncio.Task[None] | None = None
        self.registered_name: str | None = None

    def start(self) -> None:
        """Open the mDNS sockets and begin registering. Needs a running event loop.

        Raises:
            OSError: the multicast sockets could not be opened.
        """
        from zeroconf import InterfaceChoice, IPVersion
        from zeroconf.asyncio import AsyncZeroconf

        plan = self.plan
        interfaces: Any = list(plan.interfaces) if plan.interfaces else InterfaceChoice.All
        self._zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        self._task = asyncio.get_running_loop().create_task(self._register())

    async def _register(self) -> None:
        from zeroconf import ServiceInfo

        assert self._zc is not None
        plan = self.plan
        info = ServiceInfo(
            SERVICE_TYPE,
            plan.name,
            port=plan.port,
            properties=dict(plan.txt),
            server=plan.host,
            parsed_addresses=list(plan.addresses),
        )
        try:
            done = await self._zc.async_register_service(info, allow_name_change=True)
            await done
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not announce on the local network (mDNS): %s", exc or repr(exc))
            return
        self.registered_name = info.name
        log.info(
            "announced %r (%s) at %s port %d",
            info.name,
            SERVICE_TYPE,
            ", ".join(plan.addresses),
            plan.port,
        )

    async def wait_announced(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) for the registration; return whether it is done."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
        return self.registered_name is not None

    async def stop(self, timeout: float = 2.0) -> None:
        """Send the goodbye packets and close the mDNS sockets, within ``timeout`` seconds."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            await asyncio.wait_for(zc.async_close(), timeout)
        except Exception as exc:  # best effort: the process is going away anyway
            log.warning("mDNS shutdown incomplete: %s", exc or repr(exc))


def start_announcing(config: Any, bound: Sequence[tuple[str, int]]) -> Announcer | None:
    """Announce the server on the local network, if its ``announce`` setting says so.

    Called by :meth:`relaychat.server.listeners.Server.start` once the listeners are open; the
    caller keeps the result and awaits ``stop()`` on it when shutting down.

    Args:
        config: the server's config.
        bound: the (address, port) of every listening socket.

    Returns:
        The running :class:`Announcer`, or ``None`` when nothing is announced (by the setting,
        or because multicast could not be set up; that is logged as a warning).
    """
    try:
        plan = plan_announcement(config, bound)
    except (ValueError, OSError) as exc:
        log.warning("not announcing on the local network: %s", exc)
        return None
    if plan is None:
        return None
    announcer = Announcer(plan)
    try:
        announcer.start()
    except Exception as exc:  # zeroconf raises OSError and RuntimeError for unusable interfaces
        log.warning("not announcing on the local network (mDNS): %s", exc or repr(exc))
        return None
    return announcer


# --- browsing -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FoundServer:
    """One IRC server found by browsing.

    Attributes:
        name: the instance name (without ``._irc._tcp.local.``).
        host: the SRV target host name.
        addresses: where it listens, IPv4 first.
        port: its IRC port.
        txt: its TXT record (decoded; empty values as ``""``).
    """

    name: str
    host: str
    addresses: tuple[str, ...]
    port: int
    txt: dict[str, str] = field(default_factory=dict)

    @property
    def network(self) -> str:
        """The network name it announced, or ``""``."""
        return self.txt.get("network", "")

    @property
    def tls_port(self) -> int | None:
        """Its TLS port, when it announced one."""
        value = self.txt.get("tls", "")
        return int(value) if value.isdigit() and 0 < int(value) < 65536 else None

    def endpoints(self, *, tls: bool = False) -> list[tuple[str, int]]:
        """(address, port) pairs to connect to, best first; with ``tls``, the TLS port's."""
        port = self.tls_port if tls else self.port
        if port is None:
            return []
        return [(addr, port) for addr in self.addresses]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields, with network, server, version and tls_port."""
        return {
            "name": self.name,
            "host": self.host,
            "addresses": list(self.addresses),
            "port": self.port,
            "network": self.network,
            "server": self.txt.get("server", ""),
            "version": self.txt.get("version", ""),
            "tls_port": self.tls_port,
            "txt": dict(self.txt),
        }


def _found(info: AsyncServiceInfo) -> FoundServer | None:
    addresses = sorted(
        dict.fromkeys(info.parsed_scoped_addresses()),
        key=lambda a: (":" in a, a),
    )
    if not info.port or not addresses:
        return None
    instance = (
        info.name[: -len(SERVICE_TYPE) - 1] if info.name.endswith(SERVICE_TYPE) else info.name
    )
    txt = {k: v or "" for k, v in info.decoded_properties.items()}
    return FoundServer(
        name=instance, host=info.server or "", addresses=tuple(addresses), port=info.port, txt=txt
    )


async def browse(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    interfaces: Sequence[str] = (),
    stop_after: int | None = None,
) -> list[FoundServer]:
    """Listen for IRC servers announced on the local network.

    The first query asks for unicast answers (RFC 6762 §5.4), the next ones, from about a
    second later, for multicast answers. On the machine of the announcing server itself the
    unicast answer may reach the server's own socket (port 5353 is shared), so there the
    answer comes with the second query: keep ``timeout`` at 2 seconds or more.

    Args:
        timeout: how long to listen, in seconds (answers resolving at the deadline get at most
            one more second).
        interfaces: IPv4 addresses of the interfaces to query on; empty means every interface.
        stop_after: return as soon as this many servers are resolved.

    Returns:
        The servers found, sorted by network, name and port (empty when none answered).

    Raises:
        DiscoveryError: multicast DNS cannot be used (no interface, sockets refused).
    """
    from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    choice: Any = list(interfaces) if interfaces else InterfaceChoice.All
    try:
        zc = AsyncZeroconf(interfaces=choice, ip_version=IPVersion.V4Only)
    except (OSError, RuntimeError, ValueError) as exc:
        raise DiscoveryError(str(exc) or type(exc).__name__) from None
    found: dict[str, FoundServer] = {}
    pending: set[asyncio.Task[None]] = set()
    enough = asyncio.Event()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        wait_ms = max(200.0, (deadline - loop.time()) * 1000)
        if await info.async_request(zc.zeroconf, wait_ms):
            server = _found(info)
            if server is not None:
                found[name] = server
                if stop_after is not None and len(found) >= stop_after:
                    enough.set()

    def on_change(
        zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange
    ) -> None:
        if state_change is ServiceStateChange.Removed:
            found.pop(name, None)
            return
        task = loop.create_task(resolve(name))
        pending.add(task)
        task.add_done_callback(pending.discard)

    browser = AsyncServiceBrowser(zc.zeroconf, [SERVICE_TYPE], handlers=[on_change])
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), max(0.0, deadline - loop.time()))
        if pending and not enough.is_set():
            await asyncio.wait(set(pending), timeout=1.0)
    finally:
        for task in list(pending):
            task.cancel()
        await browser.async_cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(zc.async_close(), 2.0)
    return sorted(found.values(), key=lambda s: (s.network.casefold(), s.name.casefold(), s.port))


async def find_hosts(
    timeout: float = DEFAULT_TIMEOUT,
    *,
    network: str | None = None,
    tls: bool = False,
    interfaces: Sequence[str] = (),
) -> list[tuple[str, int]]:
    """The (address, port) list a client tries when it was given no host: what browsing found.

    For ``relaychat chat`` with no host: connect to the first pair, and fall back to the next
    ones in order.

    Args:
        timeout: how long to listen, in seconds.
        network: keep only servers announcing this network name (case-insensitive).
        tls: use the servers' TLS ports, keeping only servers that announce one.
        interfaces: IPv4 addresses of the interfaces to query on; empty means all.

    Returns:
        At least one (address, port), best first, without duplicates.

    Raises:
        NoServersFound: nothing matched.
        DiscoveryError: multicast DNS cannot be used here.
    """
    servers = await browse(timeout, interfaces=interfaces)
    if network:
        servers = [s for s in servers if s.network.casefold() == network.casefold()]
    hosts: list[tuple[str, int]] = []
    for server in servers:
        hosts.extend(server.endpoints(tls=tls))
    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise NoServersFound(timeout, network, tls)
    return hosts


# --- the `relaychat discover` command -----------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 600 seconds")
    return value


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 address") from None


def add_parser(sub: Any) -> None:
    """Add the ``discover`` subcommand to ``sub`` (the CLI's subparsers); it sets ``handler``."""
    p = sub.add_parser(
        "discover",
        help="list IRC servers announced on the local network (mDNS)",
        description=f"Listen for IRC servers announced with DNS-SD ({SERVICE_TYPE}) over "
        "multicast DNS and list them. Exit code 0 when at least one is found, 1 when none.",
    )
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to listen (default: {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.add_argument(
        "--interface",
        action="append",
        type=_ipv4,
        default=[],
        metavar="ADDR",
        help="query only on the interface with this IPv4 address (repeatable; default: all)",
    )
    p.set_defaults(handler=_discover_main)


def _endpoint(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _describe(server: FoundServer) -> str:
    extras = []
    if server.network:
        extras.append(f"network {server.network}")
    if server.txt.get("version"):
        extras.append(f"relaychat {server.txt['version']}")
    if server.tls_port:
        extras.append(f"TLS port {server.tls_port}")
    more = f" ({', '.join(extras)})" if extras else ""
    where = ", ".join(_endpoint(a, server.port) for a in server.addresses)
    return f"{where}  {server.name}{more}"


def _discover_main(args: argparse.Namespace) -> int:
    try:
        servers = asyncio.run(browse(args.timeout, interfaces=args.interface))
    except DiscoveryError as exc:
        print(f"relaychat: {exc}", file=sys.stderr)
        return 2
    try:
        if args.json:
            print(json.dumps([s.to_dict() for s in servers], indent=2))
        else:
            for server in servers:
                print(_describe(server))
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    if not servers:
        print(f"relaychat: {NoServersFound(args.timeout)}", file=sys.stderr)
        return 1
    return 0
