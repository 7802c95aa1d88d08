"""Accounts under attack, in memory: login lock-outs, registration limits, e-mail verification,
expiry of unconfirmed accounts (issue 17 items 4, 7, 10; issue 11 fixes 9, 11, 12)."""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import replace
from pathlib import Path

from relaychat.accounts.store import AccountStore
from relaychat.accounts.verification import MailError, code_hash, code_matches, send_code
from relaychat.config import Accounts, Throttle
from relaychat.protocol.message import parse
from tests.harness import CoreHarness
from tests.unit.accounts_support import (
    PASSWORD,
    add_account,
    b64,
    harness,
    plain,
    queue_harness,
    sasl_client,
)


def codes(lines: list[str]) -> list[str]:
    return [parse(line).command for line in lines]


def text_of(lines: list[str], code: str) -> str:
    return next(parse(line).params[-1] for line in lines if parse(line).command == code)


def plain_login(h: CoreHarness, name: str, response: str) -> list[str]:
    h.send(name, "AUTHENTICATE PLAIN")
    h.send(name, f"AUTHENTICATE {response}")
    return h.lines(name)


class TestLoginLockout:
    """Item 4: failures lock out the account and the address, with the seconds to wait."""

    def test_account_locked_for_the_address_that_failed(self) -> None:
        h, svc, worker = queue_harness(throttle=Throttle(account_failures=2))
        add_account(svc, "alice")
        sasl_client(h, "m")
        for _ in range(2):
            plain_login(h, "m", plain("alice", "guess"))
            worker.run_pending()
        h.lines("m")
        plain_login(h, "m", plain("alice"))  # even the right password: locked out, tarpit
        assert not worker.jobs and h.lines("m") == []
        h.advance(2)
        assert text_of(h.lines("m"), "904") == (
            "SASL authentication failed: too many failed logins; try again now"
        )
        sasl_client(h, "owner", nick="alice")  # the owner, from elsewhere: not locked out
        h.users["owner"].ip_group = "192.0.2.1"
        plain_login(h, "owner", plain("alice"))
        worker.run_pending()
        assert codes(h.lines("owner"))[-2:] == ["900", "903"]

    def test_account_locked_for_everyone_after_its_total(self) -> None:
        h, svc, worker = queue_harness(throttle=Throttle(account_failures_total=3))
        add_account(svc, "alice")
        for n in range(3):  # a distributed attack: one failure from each of three addresses
            sasl_client(h, f"m{n}")
            h.users[f"m{n}"].ip_group = f"198.51.100.{n}"
            plain_login(h, f"m{n}", plain("alice", "guess"))
            worker.run_pending()
        sasl_client(h, "owner", nick="alice")
        h.users["owner"].ip_group = "192.0.2.1"
        plain_login(h, "owner", plain("alice"))
        assert not worker.jobs
        h.advance(5)
        assert "too many failed logins" in text_of(h.lines("owner"), "904")

    def test_unknown_names_count_too(self) -> None:
        """Or the lock-out itself would tell which accounts exist."""
        h, _svc, worker = queue_harness(throttle=Throttle(account_failures=1))
        sasl_client(h, "m")
        plain_login(h, "m", plain("ghost", "guess"))
        worker.run_pending()
        h.lines("m")
        plain_login(h, "m", plain("ghost", "guess"))
        h.advance(5)
        assert "too many failed logins" in text_of(h.lines("m"), "904")

    def test_address_locked_after_its_failures(self) -> None:
        h, svc, worker = queue_harness(throttle=Throttle(login_failures=3))
        add_account(svc, "alice")
        for n in range(3):
            sasl_client(h, f"m{n}")
            plain_login(h, f"m{n}", plain(f"user{n}", "guess"))
            worker.run_pending()
        sasl_client(h, "m9")
        plain_login(h, "m9", plain("alice"))
        assert not worker.jobs
        h.advance(5)
        assert "too many failed logins" in text_of(h.lines("m9"), "904")
        sasl_client(h, "other")
        h.users["other"].ip_group = "198.51.100.7"
        plain_login(h, "other", plain("alice"))
        assert len(worker.jobs) == 1

    def test_scram_failures_count_and_lock_out(self) -> None:
        h, svc = harness(throttle=Throttle(account_failures=1))
        add_account(svc, "alice")
        sasl_client(h, "m")
        h.send("m", "AUTHENTICATE SCRAM-SHA-256")
        h.send("m", f"AUTHENTICATE {b64(b'n,,n=alice,r=abcdefgh')}")
        first = parse(h.lines("m")[-1]).params[0]
        import base64

        server_first = base64.b64decode(first).decode()
        nonce = server_first.split(",")[0][2:]
        h.send("m", f"AUTHENTICATE {b64(f'c=biws,r={nonce},p={b64(bytes(32))}'.encode())}")
        assert text_of(h.lines("m"), "904").endswith("invalid account name or password")
        h.send("m", "AUTHENTICATE SCRAM-SHA-256")
        h.send("m", f"AUTHENTICATE {b64(b'n,,n=alice,r=abcdefgh')}")
        h.advance(5)
        assert "too many failed logins" in text_of(h.lines("m"), "904")

    def test_busy_worker_says_how_long(self) -> None:
        h, svc, worker = queue_harness()
        worker.limit = 0
        add_account(svc, "alice")
        sasl_client(h, "c")
        assert plain_login(h, "c", plain("alice")) == ["AUTHENTICATE +"]  # refusal comes later
        h.advance(1)
        text = text_of(h.lines("c"), "904")
        assert text == "SASL authentication failed: the server is busy; try again in 1 seconds"


class TestSaslLength:
    """Issue 11 fix 9: 905 is for one chunk over 400 bytes; a response over the limit is 904."""

    def test_total_over_the_limit_is_904(self) -> None:
        h, _svc = harness()
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        for _ in range(20):  # 400-byte chunks, each fine: 8,000 bytes
            h.send("c", "AUTHENTICATE " + "A" * 400)
        assert h.lines("c") == []
        h.send("c", "AUTHENTICATE " + "A" * 400)
        lines = h.lines("c")
        assert codes(lines) == ["904"]
        assert "at most 8192 bytes" in text_of(lines, "904")


class TestRegisterLimits:
    """Item 7: registrations per address and for the whole server."""

    def test_per_address(self) -> None:
        h, _svc = harness(throttle=Throttle(register_ip_burst=1, register_ip_interval=600.0))
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        assert codes(h.lines("alice")) == ["REGISTER", "900"]
        h.connect("bob")
        h.send("bob", f"REGISTER * * {PASSWORD}")
        line = h.lines("bob")[0]
        assert line.endswith(
            "FAIL REGISTER TEMPORARILY_UNAVAILABLE bob :Too many accounts were registered just "
            "now; try again in 600 seconds"
        )
        h.connect("carol", ip="192.0.2.5")  # another address: its own allowance
        h.send("carol", f"REGISTER * * {PASSWORD}")
        assert codes(h.lines("carol")) == ["REGISTER", "900"]

    def test_for_the_whole_server(self) -> None:
        h, _svc = harness(throttle=Throttle(register_burst=1, register_interval=5.0))
        h.connect("alice", ip="192.0.2.1")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.connect("bob", ip="192.0.2.2")
        h.send("bob", f"REGISTER * * {PASSWORD}")
        assert "try again in 5 seconds" in h.lines("bob")[0]

    def test_malformed_attempts_cost_nothing(self) -> None:
        h, _svc = harness(throttle=Throttle(register_ip_burst=1))
        h.connect("alice")
        h.send("alice", "REGISTER * * short")
        assert "WEAK_PASSWORD" in h.lines("alice")[0]
        h.send("alice", f"REGISTER * * {PASSWORD}")
        assert codes(h.lines("alice")) == ["REGISTER", "900"]


class TestRegisterNames:
    def test_nick_refused_because_an_account_holds_it_is_account_exists(self) -> None:
        """Issue 11 fix 11: NICK bob was refused (bob, an account, is online); REGISTER * is
        about bob: ACCOUNT_EXISTS, not NEED_NICK."""
        h, svc = harness()
        add_account(svc, "bob")
        h.connect("bob")
        h.open("c")
        h.send("c", "NICK bob")
        assert codes(h.lines("c")) == ["433"]
        h.send("c", f"REGISTER * * {PASSWORD}")
        (line,) = h.lines("c")
        assert " FAIL REGISTER ACCOUNT_EXISTS bob :" in line

    def test_need_nick_before_any_nick(self) -> None:
        h, _svc = harness()
        h.open("c")
        h.send("c", f"REGISTER * * {PASSWORD}")
        assert " FAIL REGISTER NEED_NICK * :" in h.lines("c")[0]

    def test_minimum_password_length_is_a_setting(self) -> None:
        """Issue 11 fix 12."""
        h, _svc = harness(accounts=replace(Accounts(), min_password_length=12))
        h.connect("alice")
        h.send("alice", "REGISTER * * elevenchars")
        assert h.lines("alice")[0].endswith(
            "FAIL REGISTER WEAK_PASSWORD alice :A password needs at least 12 characters"
        )

    def test_register_before_connect_is_a_setting(self) -> None:
        h, _svc = harness(accounts=replace(Accounts(), register_before_connect=False))
        assert "before-connect" not in h.core.offered_caps()["draft/account-registration"]
        h.open("c")
        h.send("c", "NICK carol")
        h.send("c", f"REGISTER * * {PASSWORD}")
        assert " FAIL REGISTER COMPLETE_CONNECTION_REQUIRED :Finish connecting" in h.lines("c")[0]


MAILER = """
import sys
if sys.argv[2] == "fail@example.org":
    sys.stderr.write("no route to fail@example.org\\n")
    sys.exit(3)
with open(sys.argv[1], "a") as out:
    out.write(" ".join(sys.argv[2:]) + "\\n")
"""


def mail_setup(tmp_path: Path, **accounts: object) -> tuple[CoreHarness, object, Path]:
    script = tmp_path / "mailer.py"
    script.write_text(MAILER)
    outbox = tmp_path / "outbox.txt"
    command = f"{sys.executable} {script} {outbox} {{email}} {{account}} {{code}}"
    cfg = replace(Accounts(), email_verification=True, mail_command=command, **accounts)  # type: ignore[arg-type]
    h, svc = harness(accounts=cfg)
    return h, svc, outbox


class TestEmailVerification:
    """Issue 11 fix 12: REGISTER sends a code through the mail command; VERIFY activates."""

    def test_register_sends_a_code_and_verify_logs_in(self, tmp_path: Path) -> None:
        h, svc, outbox = mail_setup(tmp_path)
        assert "email-required" in h.core.offered_caps()["draft/account-registration"]
        h.connect("alice")
        h.send("alice", f"REGISTER * alice@example.org {PASSWORD}")
        (line,) = h.lines("alice")
        assert " REGISTER VERIFICATION_REQUIRED alice :A code was sent to alice@example.org" in line
        assert h.users["alice"].account is None
        email, account, code = outbox.read_text().split()
        assert (email, account) == ("alice@example.org", "alice")
        h.send("alice", "VERIFY alice WRONGCODE")
        assert " FAIL VERIFY INVALID_CODE alice :" in h.lines("alice")[0]
        h.send("alice", f"VERIFY alice {code.lower()}")
        lines = h.lines("alice")
        assert codes(lines) == ["VERIFY", "900"] and " VERIFY SUCCESS alice :" in lines[0]
        stored = svc.store.get("alice")  # type: ignore[attr-defined]
        assert stored is not None and stored.verify_hash is None and stored.confirmed

    def test_unverified_account_cannot_log_in(self, tmp_path: Path) -> None:
        h, _svc, _outbox = mail_setup(tmp_path)
        h.connect("alice")
        h.send("alice", f"REGISTER * alice@example.org {PASSWORD}")
        sasl_client(h, "c")
        text = text_of(plain_login(h, "c", plain("alice")), "904")
        assert text.endswith("the account alice is not verified yet: send VERIFY alice <code>")

    def test_email_is_required(self, tmp_path: Path) -> None:
        h, _svc, _outbox = mail_setup(tmp_path)
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        assert " FAIL REGISTER INVALID_EMAIL alice :Give your e-mail address" in h.lines("alice")[0]

    def test_a_failing_mail_command_undoes_the_registration(self, tmp_path: Path) -> None:
        h, svc, _outbox = mail_setup(tmp_path)
        h.connect("alice")
        h.send("alice", f"REGISTER * fail@example.org {PASSWORD}")
        assert (
            " FAIL REGISTER TEMPORARILY_UNAVAILABLE alice :The verification e-mail"
            in (h.lines("alice")[0])
        )
        assert svc.store.get("alice") is None  # type: ignore[attr-defined]

    def test_required_but_no_mail_command_is_refused(self) -> None:
        h, svc = harness(accounts=replace(Accounts(), email_verification=True))
        h.connect("alice")
        h.send("alice", f"REGISTER * alice@example.org {PASSWORD}")
        line = h.lines("alice")[0]
        assert " FAIL REGISTER TEMPORARILY_UNAVAILABLE alice :" in line
        assert "no mail command is configured" in line
        assert svc.store.get("alice") is None

    def test_wrong_codes_are_throttled(self, tmp_path: Path) -> None:
        h, _svc, _outbox = mail_setup(tmp_path)
        h.core.throttles.account.threshold = 2
        h.connect("alice")
        h.send("alice", f"REGISTER * alice@example.org {PASSWORD}")
        h.lines("alice")
        for _ in range(2):
            h.send("alice", "VERIFY alice NOPE")
        h.lines("alice")
        h.send("alice", "VERIFY alice NOPE")
        h.advance(5)
        assert "TEMPORARILY_UNAVAILABLE alice :Too many wrong codes" in h.lines("alice")[0]

    def test_mail_command_errors(self, tmp_path: Path) -> None:
        with_error = f"{sys.executable} -c 'import sys; sys.exit(5)'"
        for command, reason in (
            (with_error, "exited with 5"),
            (str(tmp_path / "missing"), "cannot run"),
            ("'unbalanced", "cannot parse"),
        ):
            try:
                send_code(command, email="a@b.c", account="a", code="X")
            except MailError as exc:
                assert reason in exc.reason
            else:
                raise AssertionError(command)
        assert code_matches(code_hash(" abc "), "ABC")


class TestExpiry:
    """Item 7: accounts never verified nor logged in to again expire."""

    def test_unconfirmed_accounts_expire_unless_in_use(self) -> None:
        h, svc = harness(accounts=replace(Accounts(), unconfirmed_expiry_days=1.0))
        for nick in ("alice", "bob", "carol"):
            h.connect(nick)
            h.send(nick, f"REGISTER * * {PASSWORD}")
        h.send("alice", "QUIT")
        h.send("carol", "QUIT")
        sasl_client(h, "later", nick="carol2")  # carol logs in again: confirmed
        plain_login(h, "later", plain("carol"))
        h.advance(86400 + 61)
        assert svc.store.get("alice") is None  # never used again: gone, nick free
        assert svc.store.owner_of_nick("alice") is None
        assert svc.store.get("bob") is not None  # bob is still logged in to it
        assert svc.store.get("carol") is not None


def test_account_store_version_1_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "accounts.db"
    db = sqlite3.connect(path)
    db.executescript(
        """CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, nick TEXT NOT NULL,
        nick_key TEXT NOT NULL UNIQUE, email TEXT, password_hash TEXT NOT NULL,
        scram_salt BLOB NOT NULL, scram_iterations INTEGER NOT NULL,
        scram_stored_key BLOB NOT NULL, scram_server_key BLOB NOT NULL, created REAL NOT NULL);
        CREATE TABLE certfps (fp TEXT PRIMARY KEY, account_key TEXT NOT NULL, added REAL NOT NULL);
        INSERT INTO accounts VALUES ('old', 'Old', 'Old', 'old', NULL, 'h', x'00', 4096, x'01',
        x'02', 1.0);
        PRAGMA user_version = 1;"""
    )
    db.close()
    store = AccountStore.open(path)
    try:
        old = store.get("old")
        assert old is not None and old.confirmed and old.verify_hash is None
    finally:
        store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (3,)
    db.close()
