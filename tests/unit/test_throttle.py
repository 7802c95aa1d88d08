"""The throttle module (pure, clock-injected) and the rate-limited log, in memory."""

from __future__ import annotations

import logging

import pytest

from relaychat.config import Throttle
from relaychat.ratelog import RateLimitedLog
from relaychat.server.throttle import Lockout, RateLimiter, Throttles, ip_group, seconds


class TestIpGroup:
    @pytest.mark.parametrize(
        ("ip", "v4", "v6", "group"),
        [
            ("192.0.2.7", 32, 64, "192.0.2.7"),
            ("192.0.2.7", 24, 64, "192.0.2.0/24"),
            ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"),
            ("2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6"),
            ("2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::/48"),
            ("::ffff:192.0.2.7", 32, 64, "192.0.2.7"),  # IPv4-mapped: counted as IPv4
            ("unknown", 32, 64, "unknown"),
        ],
    )
    def test_groups(self, ip: str, v4: int, v6: int, group: str) -> None:
        assert ip_group(ip, ipv4_prefix=v4, ipv6_prefix=v6) == group

    def test_one_ipv6_host_is_one_group(self) -> None:
        a = ip_group("2001:db8::1")
        assert a == ip_group("2001:db8::ffff:1") == ip_group("2001:db8::dead:beef")
        assert a != ip_group("2001:db8:0:1::1")


class TestRateLimiter:
    def test_burst_then_one_per_interval(self) -> None:
        bucket = RateLimiter(3, 10.0)
        assert [bucket.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
        assert bucket.take("k", 0.0) == pytest.approx(10.0)
        assert bucket.wait("k", 4.0) == pytest.approx(6.0)
        assert bucket.take("k", 10.0) == 0.0  # one earned back
        assert bucket.take("k", 10.0) > 0
        assert bucket.take("other", 10.0) == 0.0  # keys are separate

    def test_saves_up_to_the_burst_only(self) -> None:
        bucket = RateLimiter(2, 1.0)
        bucket.take("k", 0.0)
        assert [bucket.take("k", 1000.0) for _ in range(3)][:2] == [0.0, 0.0]
        assert bucket.take("k", 1000.0) > 0

    def test_interval_zero_is_no_limit(self) -> None:
        bucket = RateLimiter(1, 0.0)
        assert all(bucket.take("k", 0.0) == 0.0 for _ in range(100))

    def test_bounded_keys(self) -> None:
        bucket = RateLimiter(1, 60.0, max_keys=10)
        for n in range(50):
            bucket.take(n, 0.0)
        assert len(bucket) == 10


class TestLockout:
    def test_threshold_then_doubling_up_to_the_cap(self) -> None:
        lock = Lockout(3, 2.0, 10.0, 100.0)
        assert [lock.failure("ip", 0.0) for _ in range(2)] == [0.0, 0.0]
        assert lock.wait("ip", 0.0) == 0.0
        assert lock.failure("ip", 0.0) == 2.0  # the third
        assert lock.wait("ip", 1.0) == pytest.approx(1.0)
        assert lock.failure("ip", 2.0) == 4.0
        assert lock.failure("ip", 6.0) == 8.0
        assert lock.failure("ip", 14.0) == 10.0  # capped
        assert lock.wait("ip", 20.0) == pytest.approx(4.0)
        assert lock.failures("ip", 20.0) == 6

    def test_forgotten_after_its_memory_but_never_while_locked(self) -> None:
        lock = Lockout(1, 500.0, 500.0, 100.0)
        lock.failure("k", 0.0)
        assert lock.wait("k", 200.0) == pytest.approx(300.0)  # memory passed; still locked
        assert lock.wait("k", 500.0) == 0.0
        assert lock.failures("k", 500.0) == 0

    def test_success_clears(self) -> None:
        lock = Lockout(1, 5.0, 5.0, 100.0)
        lock.failure("k", 0.0)
        lock.success("k")
        assert lock.wait("k", 0.0) == 0.0 and lock.failures("k", 0.0) == 0

    def test_bounded_keys(self) -> None:
        lock = Lockout(1, 5.0, 5.0, 100.0, max_keys=5)
        for n in range(20):
            lock.failure(n, 0.0)
        assert len(lock) == 5


def test_throttles_from_config() -> None:
    thr = Throttles(
        Throttle(
            login_failures=2, account_failures=1, account_failures_total=2, register_ip_burst=1
        )
    )
    assert thr.group("2001:db8::5") == "2001:db8::/64"
    thr.login_failed("1.2.3.4", "alice", 0.0)
    assert thr.login_wait("1.2.3.4", "alice", 0.0) > 0  # locked out of alice from there
    assert thr.login_wait("5.6.7.8", "alice", 0.0) == 0.0  # not the owner elsewhere
    assert thr.login_wait("1.2.3.4", None, 0.0) == 0.0  # the address not yet
    thr.login_failed("9.9.9.9", "alice", 0.0)
    assert thr.login_wait("5.6.7.8", "alice", 0.0) > 0  # two addresses: alice for everyone
    thr.login_failed("1.2.3.4", None, 0.0)
    assert thr.login_wait("1.2.3.4", None, 0.0) > 0  # two failures from it: the address too
    assert thr.register_wait("1.2.3.4", 0.0) == 0.0
    assert thr.register_wait("1.2.3.4", 1.0) > 0
    assert thr.register_wait("5.6.7.8", 1.0) == 0.0


def test_groups_are_remembered_and_follow_a_reload() -> None:
    """Throttles.group remembers each address's group (a connect storm parses an address once)
    and forgets them when the prefixes change."""
    thr = Throttles(Throttle())
    assert thr.group("10.1.2.3") == "10.1.2.3"
    assert thr.group("10.1.2.3") == "10.1.2.3"
    thr.reconfigure(Throttle(ipv4_prefix=24))
    assert thr.group("10.1.2.3") == "10.1.2.0/24"
    for n in range(5000):  # bounded: past the limit the memory starts again
        thr.group(f"10.0.{n // 256}.{n % 256}")
    assert len(thr._groups) <= 4096
    assert thr.group("10.1.2.3") == "10.1.2.0/24"


def test_seconds_rounds_up() -> None:
    assert [seconds(0.01), seconds(1.0), seconds(1.2)] == [1, 1, 2]


class TestRateLimitedLog:
    def test_one_line_per_cause_per_interval_with_a_count(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        logger = logging.getLogger("relaychat.test.ratelog")
        rl = RateLimitedLog(logger, 10.0)
        with caplog.at_level(logging.INFO, logger=logger.name):
            written = [
                rl.warning("refused", "refused %s", f"10.0.0.{n}", now=n * 0.001)
                for n in range(2000)
            ]
            rl.info("other cause", "something else", now=1.0)
            assert sum(written) == 1
            assert rl.flush(5.0) == 0  # not yet: the interval has not passed
            assert rl.flush(11.0) == 1
            rl.warning("refused", "refused %s", "10.0.0.9", now=30.0)
        texts = [r.getMessage() for r in caplog.records]
        assert texts == [
            "refused 10.0.0.0",
            "something else",
            "refused: 1999 more in the last 11 s",
            "refused 10.0.0.9",
        ]

    def test_later_line_carries_the_count(self, caplog: pytest.LogCaptureFixture) -> None:
        logger = logging.getLogger("relaychat.test.ratelog2")
        rl = RateLimitedLog(logger, 10.0)
        with caplog.at_level(logging.INFO, logger=logger.name):
            for n in range(5):
                rl.info("busy", "worker busy", now=float(n))
            rl.info("busy", "worker busy", now=12.0)
        assert [r.getMessage() for r in caplog.records] == [
            "worker busy",
            "worker busy (and 4 more like it in the last 12 s)",
        ]
