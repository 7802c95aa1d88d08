"""What a server announces (a pure decision), and how found servers become a host list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from relaychat import __version__, discovery
from relaychat.discovery import (
    FoundServer,
    NoServersFound,
    announce_mode,
    find_hosts,
    plan_announcement,
)


@dataclass
class FakeConfig:
    """The Config fields discovery reads (``announce`` is added by the lead)."""

    announce: Any = "auto"
    port: int = 6667
    tls_port: int = 0
    plain_port: int = 0
    network: str = "relaychat"
    server_name: str = "irc.example"


def plan(config: FakeConfig, bound: list[tuple[str, int]], local: list[str] | None = None) -> Any:
    return plan_announcement(
        config, bound, hostname="box", local_addresses=lambda: list(local or [])
    )


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        ("auto", "auto"),
        ("on", "on"),
        ("OFF", "off"),
        ("yes", "on"),
        ("0", "off"),
        (True, "on"),
        (False, "off"),
    ],
)
def test_announce_mode_spellings(value: Any, mode: str) -> None:
    assert announce_mode(FakeConfig(announce=value)) == mode


def test_announce_mode_defaults_to_auto_and_refuses_nonsense() -> None:
    assert announce_mode(FakeConfig()) == "auto"
    with pytest.raises(ValueError, match="auto, on or off"):
        announce_mode(FakeConfig(announce="sometimes"))


class TestPlan:
    def test_auto_stays_quiet_on_loopback(self) -> None:
        assert plan(FakeConfig(), [("127.0.0.1", 6667), ("::1", 6667)]) is None

    def test_off_never_announces(self) -> None:
        assert plan(FakeConfig(announce="off"), [("169.254.1.1", 6667)]) is None

    def test_on_announces_loopback_on_loopback(self) -> None:
        p = plan(FakeConfig(announce="on"), [("127.0.0.1", 6667)])
        assert p.addresses == ("127.0.0.1",)
        assert p.interfaces == ("127.0.0.1",)

    def test_auto_announces_reachable_addresses_only(self) -> None:
        p = plan(FakeConfig(), [("127.0.0.1", 6667), ("169.254.9.1", 6667), ("fe80::1", 6667)])
        assert p.addresses == ("169.254.9.1", "fe80::1")  # IPv4 first; loopback left out
        assert p.interfaces == ("169.254.9.1",)  # multicast only where the server listens
        assert p.port == 6667
        assert p.name == "irc.example on box:6667._irc._tcp.local."
        assert p.host == "box-irc-6667.local."

    def test_wildcard_announces_every_local_address_on_every_interface(self) -> None:
        p = plan(FakeConfig(), [("0.0.0.0", 6667)], local=["127.0.0.1", "169.254.3.4"])
        assert p.addresses == ("169.254.3.4",)
        assert p.interfaces == ()  # () = all interfaces

    def test_wildcard_with_only_loopback_stays_quiet_in_auto(self) -> None:
        assert plan(FakeConfig(), [("0.0.0.0", 6667)], local=["127.0.0.1"]) is None

    def test_ephemeral_port_is_read_from_the_irc_listener(self) -> None:
        config = FakeConfig(port=0, tls_port=6697, plain_port=12345)
        bound = [("169.254.1.1", 12345), ("169.254.1.1", 6697), ("169.254.1.1", 40001)]
        p = plan(config, bound)
        assert p.port == 40001
        assert p.addresses == ("169.254.1.1",)

    def test_txt_record(self) -> None:
        config = FakeConfig(tls_port=6697, plain_port=12345, network="Example")
        p = plan(config, [("169.254.1.1", 6667)])
        assert p.txt == {
            "txtvers": "1",
            "network": "Example",
            "server": "irc.example",
            "version": __version__,
            "tls": "6697",
            "plain": "12345",
        }
        assert "tls" not in plan(FakeConfig(), [("169.254.1.1", 6667)]).txt

    def test_instance_name_fits_one_dns_label(self) -> None:
        config = FakeConfig(server_name="é" * 40 + ".example")
        p = plan(config, [("169.254.1.1", 6667)])
        assert len(p.instance.encode()) <= 63
        p.instance.encode().decode()  # never cut inside a character


def _server(name: str, network: str, addresses: tuple[str, ...], tls: str = "") -> FoundServer:
    txt = {"network": network, "version": "0.1.0"}
    if tls:
        txt["tls"] = tls
    return FoundServer(name=name, host=f"{name}.local.", addresses=addresses, port=6667, txt=txt)


def test_found_server_endpoints_and_json() -> None:
    s = _server("a", "net", ("169.254.1.1", "fe80::1"), tls="6697")
    assert s.endpoints() == [("169.254.1.1", 6667), ("fe80::1", 6667)]
    assert s.endpoints(tls=True) == [("169.254.1.1", 6697), ("fe80::1", 6697)]
    assert s.to_dict()["tls_port"] == 6697
    assert _server("b", "net", ("169.254.1.2",), tls="junk").tls_port is None
    assert _server("b", "net", ("169.254.1.2",)).endpoints(tls=True) == []


async def test_find_hosts_filters_and_flattens(monkeypatch: pytest.MonkeyPatch) -> None:
    servers = [
        _server("a", "Alpha", ("169.254.1.1",)),
        _server("b", "beta", ("169.254.1.2", "169.254.1.3"), tls="6697"),
    ]

    async def fake_browse(timeout: float, *, interfaces: Any = ()) -> list[FoundServer]:
        return servers

    monkeypatch.setattr(discovery, "browse", fake_browse)
    assert await find_hosts(0.1) == [
        ("169.254.1.1", 6667),
        ("169.254.1.2", 6667),
        ("169.254.1.3", 6667),
    ]
    assert await find_hosts(0.1, network="ALPHA") == [("169.254.1.1", 6667)]
    assert await find_hosts(0.1, tls=True) == [("169.254.1.2", 6697), ("169.254.1.3", 6697)]
    with pytest.raises(NoServersFound, match="of network alpha with TLS"):
        await find_hosts(0.1, network="alpha", tls=True)
