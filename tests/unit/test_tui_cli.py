"""The client commands' pure parts: addresses, targets, the client config file, JSON records."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
from pathlib import Path
from typing import Any

import pytest

from relaychat.cli import build_parser
from relaychat.cli_client import (
    CannotConnect,
    host_given,
    message_record,
    parse_address,
    parse_target,
    pick_server,
    tcp_listens,
)
from relaychat.client import ClientConfig, Message
from relaychat.client.config import client_config_path, login_nick, read_client_file
from relaychat.discovery import DiscoveryError, NoServersFound
from relaychat.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("irc.example.org", ("irc.example.org", None)),
        ("irc.example.org:6697", ("irc.example.org", 6697)),
        ("127.0.0.1:6667", ("127.0.0.1", 6667)),
        ("::1", ("::1", None)),
        ("[::1]:7000", ("::1", 7000)),
        ("[fe80::1]", ("fe80::1", None)),
    ],
)
def test_parse_address(text: str, want: tuple[str, int | None]) -> None:
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["host:0", "host:99999", "host:http", ":6667", "[]:1"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_address(text)


def test_parse_target() -> None:
    assert parse_target("#chan") == "#chan" and parse_target("bob") == "bob"
    for bad in ("", "#a,#b", "two words", ":colon", "bad\r\nline"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_target(bad)


class TestConfigFile:
    def test_fields_and_types(self, tmp_path: Path) -> None:
        path = tmp_path / "client.toml"
        path.write_text(
            'host = "irc.example.org"\nport = 7000\nnick = "alice"\ntls = true\n'
            'channels = ["#a", "#b"]\nsasl = ["alice", "pw"]\nping_interval = 15\n'
            "max_attempts = 3\n"
        )
        settings = read_client_file(path)
        assert settings == {
            "host": "irc.example.org",
            "port": 7000,
            "nick": "alice",
            "tls": True,
            "channels": ("#a", "#b"),
            "sasl": ("alice", "pw"),
            "ping_interval": 15,
            "max_attempts": 3,
        }
        config = ClientConfig.from_env({}, file_settings=settings)
        assert (config.host, config.port, config.channels) == (
            "irc.example.org",
            7000,
            ("#a", "#b"),
        )

    @pytest.mark.parametrize(
        ("toml", "message"),
        [
            ("colour = 1", r"colour: unknown setting"),
            ("port = '6667'", r"port: must be int"),
            ("tls = 1", r"tls: must be"),
            ("reconnect = 'yes'", r"reconnect: must be bool"),
            ("port = true", r"port: must be int"),
            ("channels = '#a'", r"channels: must be"),
            ("sasl = ['only-one']", r"sasl: a list is not allowed"),
            ("channels = [1]", r"channels: must be a list of strings"),
            ("nick = ", r"not valid TOML"),
        ],
    )
    def test_mistakes_name_the_key(self, tmp_path: Path, toml: str, message: str) -> None:
        path = tmp_path / "client.toml"
        path.write_text(toml + "\n")
        with pytest.raises(ConfigError, match=message):
            read_client_file(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        assert read_client_file(tmp_path / "none.toml", missing_ok=True) == {}
        with pytest.raises(ConfigError, match="no such file"):
            read_client_file(tmp_path / "none.toml")

    def test_precedence_file_then_environment_then_arguments(self) -> None:
        from_file = {"host": "file.example", "port": 1111, "nick": "filenick"}
        env = {"RELAYCHAT_PORT": "2222", "RELAYCHAT_NICK": "envnick"}
        config = ClientConfig.from_env(env, file_settings=from_file, nick="argnick")
        assert (config.host, config.port, config.nick) == ("file.example", 2222, "argnick")

    def test_where_the_file_is(self, tmp_path: Path) -> None:
        mine = tmp_path / "mine.toml"
        assert client_config_path({"RELAYCHAT_CLIENT_CONFIG": str(mine)}) == mine
        default = client_config_path({})
        assert default.name == "client.toml" and default.parent.name == "relaychat"

    def test_login_nick(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(getpass, "getuser", lambda: "J. Doe-2")
        assert login_nick() == "JDoe-2"
        monkeypatch.setattr(getpass, "getuser", lambda: "1234")
        assert login_nick() == "guest"


def test_channels_chat_joins_and_send_ignores(tmp_path: Path) -> None:
    from relaychat import cli_client

    path = tmp_path / "client.toml"
    path.write_text('nick = "alice"\nchannels = ["#lobby", "#dev"]\n')
    parser = build_parser()
    chat = parser.parse_args(["chat", "--config", str(path), "--join", "#DEV,#new"])
    config = cli_client._config(chat, join=("#DEV", "#new"))
    assert config.channels == ("#lobby", "#DEV", "#new") and config.nick == "alice"
    assert config.pace_burst == 16  # room for registration, the JOIN and CHATHISTORY at once
    send = parser.parse_args(["send", "--config", str(path), "h:1", "#t", "x"])
    assert cli_client._config(send, channels=()).channels == ()


def test_json_records() -> None:
    msg = Message("bob", "#c", "hi", msgid="abc", time="2024-05-01T12:00:00.000Z")
    assert message_record(msg) == {
        "time": "2024-05-01T12:00:00.000Z",
        "msgid": "abc",
        "nick": "bob",
        "target": "#c",
        "text": "hi",
        "kind": "message",
    }
    action = message_record(Message("bob", "#c", "\x01ACTION waves\x01"))
    assert "msgid" not in action and (action["text"], action["kind"]) == ("waves", "action")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", action["time"])
    assert message_record(Message("bob", "#c", "n", notice=True))["kind"] == "notice"


def test_help_documents_the_commands_and_exit_codes() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("chat", "send", "tail"):
        text = sub.choices[name].format_help()
        assert "exit codes:" in text and "RELAYCHAT_CLIENT_CONFIG" in text, name
    assert "--json" in sub.choices["tail"].format_help()
    assert "exits at once (code 3)" in sub.choices["send"].format_help()


# --- `chat` with no host: 127.0.0.1:6667, else the first server found on the local network ---


class FakeNetwork:
    """What listens where, and what browsing finds; records what was asked."""

    def __init__(
        self, listening: set[tuple[str, int]], found: list[tuple[str, int]] | Exception
    ) -> None:
        self.listening = listening
        self.found = found
        self.probed: list[tuple[str, int]] = []
        self.browsed = 0

    async def listens(self, host: str, port: int) -> bool:
        self.probed.append((host, port))
        return (host, port) in self.listening

    async def browse(self) -> list[tuple[str, int]]:
        self.browsed += 1
        if isinstance(self.found, Exception):
            raise self.found
        return self.found


LOCAL = ("127.0.0.1", 6667)


async def test_a_server_on_the_default_address_is_used_without_browsing() -> None:
    net = FakeNetwork({LOCAL}, [("10.0.0.5", 6667)])
    assert await pick_server(LOCAL, listens=net.listens, browse=net.browse) == (LOCAL, "")
    assert net.browsed == 0


async def test_otherwise_the_first_server_found_that_answers_is_used() -> None:
    net = FakeNetwork({("10.0.0.6", 6667)}, [("10.0.0.5", 6667), ("10.0.0.6", 6667)])
    address, note = await pick_server(LOCAL, listens=net.listens, browse=net.browse)
    assert address == ("10.0.0.6", 6667)
    assert note == (
        "no server on 127.0.0.1:6667; connecting to 10.0.0.6:6667, found on the local network "
        "(of 2 found)"
    )
    assert net.probed == [LOCAL, ("10.0.0.5", 6667), ("10.0.0.6", 6667)]


async def test_ipv6_addresses_are_bracketed_in_the_note() -> None:
    net = FakeNetwork({("fe80::1", 6667)}, [("fe80::1", 6667)])
    _, note = await pick_server(LOCAL, listens=net.listens, browse=net.browse)
    assert note.endswith("connecting to [fe80::1]:6667, found on the local network")


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (
            NoServersFound(2.0),
            r"^no server on 127\.0\.0\.1:6667, and no IRC servers found on the local network "
            r"in 2 s \(DNS-SD",
        ),
        (
            DiscoveryError("no multicast"),
            r"^no server on 127\.0\.0\.1:6667, and local network discovery failed: no multicast$",
        ),
        (
            [("10.0.0.5", 6667)],
            r"^no server on 127\.0\.0\.1:6667, and none of those found answers: 10\.0\.0\.5:6667$",
        ),
    ],
)
async def test_when_nothing_is_found_one_clear_line(found: Any, message: str) -> None:
    net = FakeNetwork(set(), found)
    with pytest.raises(CannotConnect, match=message) as failed:
        await pick_server(LOCAL, listens=net.listens, browse=net.browse)
    assert "\n" not in failed.value.reason


def test_host_given_by_argument_environment_or_file(tmp_path: Path) -> None:
    parser = build_parser()
    empty = tmp_path / "empty.toml"
    empty.write_text('nick = "alice"\n')
    with_host = tmp_path / "host.toml"
    with_host.write_text('host = "irc.example.org"\n')
    assert not host_given(parser.parse_args(["chat", "--config", str(empty)]), {})
    assert host_given(parser.parse_args(["chat", "--config", str(empty), "h:1"]), {})
    assert host_given(parser.parse_args(["chat", "--config", str(empty)]), {"RELAYCHAT_HOST": "h"})
    assert host_given(parser.parse_args(["chat", "--config", str(with_host)]), {})
    # No --config: the default file, which does not exist here.
    env = {"RELAYCHAT_CLIENT_CONFIG": str(tmp_path / "none.toml")}
    assert not host_given(parser.parse_args(["chat"]), env)


async def test_tcp_listens_on_loopback() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert await tcp_listens("127.0.0.1", port)
    server.close()
    await server.wait_closed()
    assert not await tcp_listens("127.0.0.1", port)


# --- `chat --plain` ------------------------------------------------------------------------------


def test_chat_plain_parses_and_defaults_to_the_tutorial_port(tmp_path: Path) -> None:
    from relaychat import cli_client

    path = tmp_path / "client.toml"
    path.write_text('host = "irc.example.org"\ntls = true\nnick = "alice"\nbackoff_max = 7\n')
    parser = build_parser()
    args = parser.parse_args(["chat", "--plain", "--config", str(path)])
    link = cli_client._plain_client(args)
    # Not the IRC server of the file, not its TLS: the plain port on this machine.
    assert (link.config.host, link.config.port, link.config.tls) == ("127.0.0.1", 12345, False)
    assert link.config.backoff_max == 7  # the reconnect settings are the IRC client's
    args = parser.parse_args(["chat", "--plain", "example.org:7000", "--config", str(path)])
    link = cli_client._plain_client(args)
    assert (link.peer, link.config.tls) == ("example.org:7000", False)
    args = parser.parse_args(["chat", "--plain", "[::1]", "--tls", "--config", str(path)])
    assert (cli_client._plain_client(args).peer, args.tls) == ("[::1]:12345", True)
