"""Splitting to fit one line, the bounded outbox, pacing, and the client config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaychat.client import ClientConfig, OutboxFull
from relaychat.client.events import Outgoing
from relaychat.client.outbox import Outbox
from relaychat.errors import ConfigError
from relaychat.protocol.bucket import TokenBucket
from relaychat.protocol.message import MAX_BODY_BYTES, Message
from relaychat.protocol.text import split_text, text_budget


class TestSplit:
    def test_short_text_is_one_line(self) -> None:
        assert split_text("hello", 100) == ["hello"]

    def test_prefers_spaces(self) -> None:
        assert split_text("aaaa bbbb cccc", 10) == ["aaaa bbbb", "cccc"]

    def test_cuts_a_long_word(self) -> None:
        assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]

    def test_never_splits_a_character(self) -> None:
        text = "é" * 7  # 2 bytes each
        assert split_text(text, 5) == ["éé", "éé", "éé", "é"]
        assert split_text("🎉🎉", 7) == ["🎉", "🎉"]

    def test_line_breaks_and_nul(self) -> None:
        assert split_text("one\r\ntwo\rthree\n\nfo\0ur", 100) == ["one", "two", "three", "four"]

    def test_nothing_to_send(self) -> None:
        assert split_text("\n\n", 100) == []

    @given(st.text(min_size=1, max_size=3000), st.integers(min_value=4, max_value=450))
    def test_every_piece_fits_and_nothing_is_lost(self, text: str, budget: int) -> None:
        pieces = split_text(text, budget)
        assert all(0 < len(p.encode()) <= budget for p in pieces)
        kept = "".join(text.replace("\0", "").split())
        assert "".join("".join(pieces).split()) == kept

    def test_budget_accounts_for_the_prefix_the_server_adds(self) -> None:
        nick, user, host, target = "n" * 12, "~u" + "u" * 9, "h" * 63, "#channel"
        budget = text_budget("PRIVMSG", target, nick_len=12, user_len=11, host_len=63)
        for piece in split_text("word " * 400, budget):
            relayed = Message("PRIVMSG", (target, piece), f"{nick}!{user}@{host}").serialize()
            assert len(relayed.encode()) <= MAX_BODY_BYTES


def _lines(n: int, start: int = 1) -> tuple[Outgoing, ...]:
    return tuple(Outgoing(i, "PRIVMSG", "#c", f"line {i}") for i in range(start, start + n))


class TestOutbox:
    def test_bounded_all_or_nothing(self) -> None:
        box = Outbox(3)
        box.put(_lines(2))
        with pytest.raises(OutboxFull) as info:
            box.put(_lines(2, 3))
        assert info.value.unsent == _lines(2, 3) and info.value.limit == 3
        assert len(box) == 2

    def test_push_front_keeps_order(self) -> None:
        box = Outbox(10)
        box.put(_lines(2, 3))
        box.push_front(_lines(2))
        assert box.drain() == _lines(4)
        assert len(box) == 0


class TestTokenBucket:
    def test_burst_then_rate(self) -> None:
        b = TokenBucket(rate=2.0, burst=3, now=0.0)
        for _ in range(3):
            assert b.ready(0.0)
            b.take(0.0)
        assert not b.ready(0.0)
        assert b.wait(0.0) == pytest.approx(0.5)
        assert b.ready(0.5)

    def test_urgent_lines_borrow(self) -> None:
        b = TokenBucket(rate=1.0, burst=1, now=0.0)
        b.take(0.0)
        b.take(0.0)  # below zero
        assert b.wait(0.0) == pytest.approx(2.0)

    def test_zero_rate_means_no_pacing(self) -> None:
        b = TokenBucket(rate=0.0, burst=1, now=0.0)
        for _ in range(100):
            b.take(0.0)
        assert b.ready(0.0) and b.wait(0.0) == 0.0


class TestConfig:
    def test_from_env(self) -> None:
        env = {"RELAYCHAT_HOST": "10.1.2.3", "RELAYCHAT_PORT": "7000", "RELAYCHAT_NICK": "envbot"}
        cfg = ClientConfig.from_env(env)
        assert (cfg.host, cfg.port, cfg.nick, cfg.username) == (
            "10.1.2.3",
            7000,
            "envbot",
            "envbot",
        )

    def test_arguments_win(self) -> None:
        env = {"RELAYCHAT_HOST": "10.1.2.3", "RELAYCHAT_NICK": "envbot"}
        cfg = ClientConfig.from_env(env, host="127.0.0.2", nick="argbot", port=None)
        assert (cfg.host, cfg.port, cfg.nick) == ("127.0.0.2", 6667, "argbot")

    def test_server_listen_addresses_become_loopback(self) -> None:
        cfg = ClientConfig.from_env({"RELAYCHAT_HOST": "0.0.0.0,::", "RELAYCHAT_NICK": "b"})
        assert cfg.host == "127.0.0.1"

    def test_tls_default_port(self) -> None:
        assert ClientConfig.from_env({}, nick="b", tls=True).port == 6697

    @pytest.mark.parametrize(
        ("env", "settings", "key"),
        [
            ({}, {}, "nick"),
            ({"RELAYCHAT_PORT": "x", "RELAYCHAT_NICK": "b"}, {}, "RELAYCHAT_PORT"),
            ({}, {"nick": "b", "ping_timeout": 0}, "ping_timeout"),
            ({}, {"nick": "b", "bogus": 1}, "bogus"),
            ({}, {"nick": "has space"}, "nick"),
        ],
    )
    def test_errors_name_the_key(
        self, env: dict[str, str], settings: dict[str, object], key: str
    ) -> None:
        with pytest.raises(ConfigError) as info:
            ClientConfig.from_env(env, **settings)
        assert info.value.key == key
