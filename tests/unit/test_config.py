"""Configuration layers: defaults < TOML < RELAYCHAT_* env < CLI flags, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaychat.config import Config, load_config
from relaychat.errors import ConfigError
from relaychat.passwords import hash_password


def test_defaults() -> None:
    cfg = load_config(environ={})
    assert cfg == Config()
    assert cfg.host == "127.0.0.1" and cfg.port == 6667
    assert cfg.ping_interval == 90.0


def test_precedence(tmp_path: Path) -> None:
    f = tmp_path / "relaychat.toml"
    f.write_text(
        'port = 7000\nnetwork = "FromFile"\nserver_name = "file.example"\n'
        "[limits]\nnicklen = 20\nsendq = 9000\n"
    )
    env = {"RELAYCHAT_PORT": "7001", "RELAYCHAT_LIMITS__NICKLEN": "25", "RELAYCHAT_NICK": "x"}
    cfg = load_config(file=f, environ=env, overrides={"port": 7002, "network": None})
    assert cfg.port == 7002  # flag beats env beats file
    assert cfg.network == "FromFile"  # a flag left unset does not override
    assert cfg.server_name == "file.example"
    assert cfg.limits.nicklen == 25  # env beats file
    assert cfg.limits.sendq == 9000


def test_overrides_reach_limits() -> None:
    cfg = load_config(environ={}, overrides={"limits.max_clients": 5})
    assert cfg.limits.max_clients == 5


def test_opers_from_file(tmp_path: Path) -> None:
    h = hash_password("secret")
    f = tmp_path / "c.toml"
    f.write_text(f'[[opers]]\nname = "root"\npassword_hash = "{h}"\n')
    cfg = load_config(file=f, environ={})
    assert cfg.opers[0].name == "root"


@pytest.mark.parametrize(
    ("content", "env", "key"),
    [
        ("port = 70000\n", {}, "port"),
        ('port = "abc"\n', {}, "port"),
        ("bogus = 1\n", {}, "bogus"),
        ("[limits]\nnicklen = 3\n", {}, "limits.nicklen"),
        ("[limits]\nwhat = 3\n", {}, "limits.what"),
        ('server_name = "no dots"\n', {}, "server_name"),
        ('host = "not-an-ip"\n', {}, "host"),
        ("ping_timeout = 0\n", {}, "ping_timeout"),
        ('[[opers]]\nname = "x"\npassword_hash = "plain"\n', {}, "opers[0].password_hash"),
        ("", {"RELAYCHAT_PORT": "x"}, "RELAYCHAT_PORT"),
        ("", {"RELAYCHAT_LIMITS__NOPE": "1"}, "RELAYCHAT_LIMITS__NOPE"),
        ('motd_file = "/nonexistent/motd"\n', {}, "motd_file"),
        ("port = [\n", {}, "config"),
    ],
)
def test_bad_values_name_their_key(
    tmp_path: Path, content: str, env: dict[str, str], key: str
) -> None:
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(file=f, environ=env)
    assert info.value.key == key
    assert str(info.value).startswith(key)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(file="/nonexistent/relaychat.toml", environ={})


def test_motd_file(tmp_path: Path) -> None:
    m = tmp_path / "motd.txt"
    m.write_text("hello\nworld\n")
    cfg = load_config(environ={"RELAYCHAT_MOTD_FILE": str(m)})
    assert cfg.motd_lines() == ["hello", "world"]
    assert load_config(environ={}).motd_lines() is None
