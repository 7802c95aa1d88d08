"""Server bans, pure model (server/bans.py): masks, CIDR edges v4/v6, expiry, the file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from relaychat.server.bans import (
    Ban,
    BanError,
    BanList,
    BanStoreError,
    load_bans,
    normalize_dline,
    normalize_kline,
    parse_duration,
    save_bans,
)

NOW = 1_000_000.0


def kline(mask: str, expires: float | None = None) -> Ban:
    return Ban("K", normalize_kline(mask), "go away", "op", NOW, expires)


def dline(mask: str, expires: float | None = None) -> Ban:
    return Ban("D", normalize_dline(mask), "go away", "op", NOW, expires)


class TestDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30", 1800), ("1", 60), ("90s", 90), ("2h30m", 9000), ("1w", 604_800), ("1d", 86_400)],
    )
    def test_valid(self, text: str, seconds: int) -> None:
        assert parse_duration(text) == seconds

    @pytest.mark.parametrize("text", ["", "abc", "*@host", "1x", "h", "10.0.0.1", "12345678"])
    def test_not_a_duration(self, text: str) -> None:
        assert parse_duration(text) is None


class TestKlineMasks:
    @pytest.mark.parametrize(
        ("mask", "normal"),
        [
            ("alice@Host.Example", "alice@host.example"),
            ("bad.host", "*@bad.host"),
            ("@x.y", "*@x.y"),
            ("*@10.1.2.3/8", "*@10.0.0.0/8"),
            ("*@2001:db8::1/32", "*@2001:db8::/32"),
        ],
    )
    def test_normalised(self, mask: str, normal: str) -> None:
        assert normalize_kline(mask) == normal

    @pytest.mark.parametrize("mask", ["*@*", "*@*.*", "u@", "", "a b@c", "*@10.0.0.0/7", "x@::/8"])
    def test_refused(self, mask: str) -> None:
        with pytest.raises(BanError):
            normalize_kline(mask)

    def test_matches_exactly(self) -> None:
        bans = BanList([kline("~bad@*.evil.example"), kline("*@10.0.0.0/8")])
        assert bans.kline_for("~bad", "a.evil.example", "192.0.2.1", NOW)
        assert bans.kline_for("~bad", "A.EVIL.example", "192.0.2.1", NOW)  # hosts fold
        assert not bans.kline_for("~good", "a.evil.example", "192.0.2.1", NOW)
        assert not bans.kline_for("~bad", "evil.example", "192.0.2.1", NOW)
        assert bans.kline_for("~x", "h", "10.255.255.255", NOW)
        assert not bans.kline_for("~x", "h", "11.0.0.0", NOW)

    def test_host_mask_also_matches_the_ip(self) -> None:
        bans = BanList([kline("*@192.0.2.*")])
        assert bans.kline_for("~x", "cloaked.example", "192.0.2.77", NOW)

    def test_ipv6_host(self) -> None:
        bans = BanList([kline("*@2001:db8::/64")])
        assert bans.kline_for("~x", "02001:db8::1", "2001:db8::ffff", NOW)
        assert not bans.kline_for("~x", "h", "2001:db8:0:1::1", NOW)


class TestDlines:
    def test_ipv4_cidr_edges(self) -> None:
        bans = BanList([dline("192.0.2.0/24")])
        assert bans.dline_for("192.0.2.0", NOW)
        assert bans.dline_for("192.0.2.255", NOW)
        assert not bans.dline_for("192.0.1.255", NOW)
        assert not bans.dline_for("192.0.3.0", NOW)

    def test_single_address(self) -> None:
        bans = BanList([dline("198.51.100.7")])
        assert bans.dline_for("198.51.100.7", NOW)
        assert not bans.dline_for("198.51.100.8", NOW)
        assert not bans.dline_for("::ffff:198.51.100.8", NOW)

    def test_ipv4_mapped_ipv6_matches_ipv4(self) -> None:
        bans = BanList([dline("198.51.100.0/24")])
        assert bans.dline_for("::ffff:198.51.100.9", NOW)

    def test_ipv6_cidr_edges(self) -> None:
        bans = BanList([dline("2001:db8:1::/48")])
        assert bans.dline_for("2001:db8:1::", NOW)
        assert bans.dline_for("2001:db8:1:ffff:ffff:ffff:ffff:ffff", NOW)
        assert not bans.dline_for("2001:db8:2::", NOW)
        assert not bans.dline_for("2001:db8:0:ffff:ffff:ffff:ffff:ffff", NOW)
        assert not bans.dline_for("192.0.2.1", NOW)  # another family never matches

    def test_ipv6_with_scope_and_garbage(self) -> None:
        bans = BanList([dline("fe80::/16")])
        assert bans.dline_for("fe80::1%eth0", NOW)
        assert not bans.dline_for("unknown", NOW)

    @pytest.mark.parametrize("mask", ["0.0.0.0/0", "10.0.0.0/7", "::/0", "2001::/15", "x", ""])
    def test_refused(self, mask: str) -> None:
        with pytest.raises(BanError):
            normalize_dline(mask)

    def test_narrowest_allowed(self) -> None:
        assert normalize_dline("10.9.9.9/8") == "10.0.0.0/8"
        assert normalize_dline("2001:db8::/16") == "2001::/16"


class TestExpiry:
    def test_expired_matches_nothing_and_is_dropped(self) -> None:
        changes: list[int] = []
        bans = BanList([dline("192.0.2.1", NOW + 60), kline("*@x.y", NOW + 120)])
        bans.on_change = lambda b: changes.append(len(b))
        assert bans.dline_for("192.0.2.1", NOW + 59.9)
        assert not bans.dline_for("192.0.2.1", NOW + 60)
        assert [b.mask for b in bans.expire(NOW + 60)] == ["192.0.2.1/32"]
        assert changes == [1]
        assert bans.kline_for("~u", "x.y", "1.2.3.4", NOW + 119)
        bans.expire(NOW + 120)
        assert len(bans) == 0

    def test_remove_by_any_spelling(self) -> None:
        bans = BanList([dline("10.1.0.0/16"), kline("Bad@Host.Example")])
        assert bans.remove("D", "10.1.2.3/16") is not None
        assert bans.remove("K", "bad@host.example") is not None
        assert bans.remove("K", "bad@host.example") is None


class TestFile:
    def test_round_trip_atomic_and_private(self, tmp_path: Path) -> None:
        path = tmp_path / "data" / "bans.json"
        bans = BanList([dline("2001:db8::/32"), kline("*@bad.example", NOW + 5)])
        save_bans(path, bans)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert [p.name for p in path.parent.iterdir()] == ["bans.json"]  # no temporary left
        again = load_bans(path)
        assert sorted(b.mask for b in again.all()) == ["*@bad.example", "2001:db8::/32"]
        assert again.klines["*@bad.example"].expires == NOW + 5
        assert again.dline_for("2001:db8::5", NOW)

    def test_missing_file_is_empty(self, tmp_path: Path) -> None:
        assert len(load_bans(tmp_path / "none.json")) == 0

    @pytest.mark.parametrize(
        "content", ["not json", "[]", '{"version": 2, "bans": []}', '{"version": 1, "bans": [{}]}']
    )
    def test_bad_file_is_one_clear_error(self, tmp_path: Path, content: str) -> None:
        path = tmp_path / "bans.json"
        path.write_text(content)
        with pytest.raises(BanStoreError, match="cannot read the ban file"):
            load_bans(path)

    def test_unknown_kind_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "bans.json"
        ban = {"kind": "X", "mask": "a", "reason": "", "set_by": "", "set_at": 0, "expires": None}
        path.write_text(json.dumps({"version": 1, "bans": [ban]}))
        with pytest.raises(BanStoreError, match="unknown ban kind"):
            load_bans(path)
