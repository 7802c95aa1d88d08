"""Accounts in the core, in memory: REGISTER/VERIFY, PASS login, nick protection, CERT, WHOIS.

REGISTER and VERIFY follow https://ircv3.net/specs/extensions/account-registration; nick
protection runs on the core's tick with the harness's clock (CoreHarness.advance).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from relaychat.config import Accounts
from relaychat.protocol.message import parse
from relaychat.server.accounts import AccountService
from tests.harness import CoreHarness
from tests.unit.accounts_support import FP, PASSWORD, add_account, harness, plain, queue_harness
from tests.unit.core_support import SERVER


def codes(lines: list[str]) -> list[str]:
    return [parse(line).command for line in lines]


def notices(lines: list[str]) -> list[str]:
    return [parse(line).params[-1] for line in lines if parse(line).command == "NOTICE"]


class TestRegister:
    def test_success_logs_in(self) -> None:
        h, svc = harness()
        h.connect("alice")
        h.connect("bob")
        h.send("bob", "CAP REQ account-notify")
        h.send("alice", "JOIN #a")
        h.send("bob", "JOIN #a")
        h.clear()
        h.send("alice", f"REGISTER * alice@example.org :{PASSWORD}")
        lines = h.lines("alice")
        assert codes(lines) == ["REGISTER", "900"]
        assert lines[0].startswith(f":{SERVER} REGISTER SUCCESS alice :Account alice registered")
        assert "sends no verification email" in lines[0]
        assert h.users["alice"].account == "alice"
        assert h.lines("bob") == [":alice!~alice@127.0.0.1 ACCOUNT alice"]
        account = svc.store.get("alice")
        assert account is not None and account.email == "alice@example.org"
        assert account.password_hash.startswith("$argon2id$") and account.nick == "alice"

    def test_custom_account_name_before_connecting(self) -> None:
        h, _svc = harness()
        h.open("c")
        h.send("c", "NICK carol")
        h.send("c", f"REGISTER Carol2 * {PASSWORD}")
        lines = h.lines("c")
        assert codes(lines) == ["REGISTER", "900"]
        h.send("c", "USER c 0 * :c")
        assert "001" in codes(h.lines("c"))
        assert h.users["c"].account == "Carol2"

    def test_registration_with_a_client_certificate_adds_it(self) -> None:
        h, svc = harness()
        h.open("c")
        h.users["c"].certfp = FP
        h.send("c", "NICK dave")
        h.send("c", f"REGISTER * * {PASSWORD}")
        assert "logs in to it too (SASL EXTERNAL)" in h.lines("c")[0]
        account = svc.store.by_certfp(FP)
        assert account is not None and account.name == "dave"

    def test_waits_for_the_hash(self) -> None:
        h, _svc, worker = queue_harness()
        h.open("c")
        h.send("c", "NICK erin")
        h.send("c", f"REGISTER * * {PASSWORD}")
        h.send("c", "USER c 0 * :c")
        assert h.lines("c") == [] and not h.users["c"].registered
        worker.run_pending()
        assert codes(h.lines("c"))[:3] == ["REGISTER", "900", "001"]

    def test_someone_else_registered_it_meanwhile(self) -> None:
        h, svc, worker = queue_harness()
        h.connect("frank")
        h.send("frank", f"REGISTER * * {PASSWORD}")
        add_account(svc, "frank")
        worker.run_pending()
        (line,) = h.lines("frank")
        assert line.startswith(f":{SERVER} FAIL REGISTER ACCOUNT_EXISTS frank :")
        assert h.users["frank"].account is None

    @pytest.mark.parametrize(
        ("line", "code", "text"),
        [
            ("REGISTER alice * " + PASSWORD, "ACCOUNT_EXISTS", "registered already"),
            ("REGISTER 9lives * " + PASSWORD, "BAD_ACCOUNT_NAME", "An account name is a nick"),
            ("REGISTER Guest123 * " + PASSWORD, "BAD_ACCOUNT_NAME", "kept for renamed users"),
            ("REGISTER bob * " + PASSWORD, "BAD_ACCOUNT_NAME", "in use by someone else"),
            ("REGISTER * not-an-email " + PASSWORD, "INVALID_EMAIL", "is not an email address"),
            ("REGISTER * * short", "WEAK_PASSWORD", "at least 8 characters"),
            ("REGISTER * * :" + "x" * 301, "UNACCEPTABLE_PASSWORD", "at most 300 bytes"),
            ("REGISTER zed * ZEDZEDZED", "BAD_ACCOUNT_NAME", "in use"),
            ("REGISTER * * CAROLINE1", "WEAK_PASSWORD", "must not be the account name"),
            ("REGISTER * * pass\x07word12", "UNACCEPTABLE_PASSWORD", "cannot be used"),
        ],
    )
    def test_errors_say_why(self, line: str, code: str, text: str) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        h.connect("caroline1")
        h.connect("bob")
        h.connect("zed")
        h.send("caroline1", line)
        (reply,) = h.lines("caroline1")
        msg = parse(reply)
        assert msg.command == "FAIL" and msg.params[:2] == ("REGISTER", code), reply
        assert text in msg.params[-1], reply
        assert h.users["caroline1"].account is None

    def test_already_logged_in(self) -> None:
        h, _svc = harness()
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.lines("alice")
        h.send("alice", f"REGISTER other * {PASSWORD}")
        assert h.lines("alice") == [
            f":{SERVER} FAIL REGISTER ALREADY_AUTHENTICATED alice :You are already logged in "
            "to the account alice"
        ]

    def test_need_nick(self) -> None:
        h, _ = harness()
        h.open("c")
        h.send("c", f"REGISTER * * {PASSWORD}")
        assert h.lines("c") == [
            f":{SERVER} FAIL REGISTER NEED_NICK * :Send NICK first, or give the account name "
            "instead of *"
        ]

    def test_turned_off(self) -> None:
        h, _ = harness(accounts=_accounts(registration=False))
        h.open("c")
        h.send("c", "CAP LS 302")
        assert "account-registration" not in h.lines("c")[0]
        h.send("c", f"REGISTER alice * {PASSWORD}")
        h.send("c", "VERIFY alice 1234")
        assert [parse(x).params[:3] for x in h.lines("c")] == [
            ("REGISTER", "TEMPORARILY_UNAVAILABLE", "alice"),
            ("VERIFY", "TEMPORARILY_UNAVAILABLE", "alice"),
        ]

    def test_server_password_must_come_first(self) -> None:
        h, _ = harness(password="letmein")
        h.open("c")
        h.send("c", "CAP LS 302")
        assert "draft/account-registration=custom-account-name" in h.lines("c")[0]
        h.send("c", "NICK carol")
        h.send("c", f"REGISTER * * {PASSWORD}")
        (line,) = h.lines("c")
        assert " FAIL REGISTER COMPLETE_CONNECTION_REQUIRED :" in line

    def test_not_enough_parameters(self) -> None:
        h, _ = harness()
        h.connect("alice")
        h.send("alice", "REGISTER alice *")
        assert codes(h.lines("alice")) == ["461"]


def _accounts(**kw: Any) -> Accounts:
    return replace(Accounts(), **kw)


class TestVerify:
    def test_nothing_to_verify(self) -> None:
        h, _ = harness()
        h.connect("alice")
        h.send("alice", "VERIFY alice 123456")
        (line,) = h.lines("alice")
        assert line.startswith(f":{SERVER} FAIL VERIFY INVALID_CODE alice :There is nothing to")
        assert "active as soon as REGISTER succeeds" in line

    def test_already_logged_in(self) -> None:
        h, _ = harness()
        h.connect("alice")
        h.send("alice", f"REGISTER * * {PASSWORD}")
        h.lines("alice")
        h.send("alice", "VERIFY alice 123456")
        assert " FAIL VERIFY ALREADY_AUTHENTICATED alice :" in h.lines("alice")[0]


class TestPassLogin:
    def connect_with_pass(self, h: CoreHarness, nick: str, password: str) -> list[str]:
        h.open(nick)
        h.send(nick, f"PASS {password}")
        h.send(nick, f"NICK {nick}")
        h.send(nick, f"USER {nick} 0 * :{nick}")
        assert h.users[nick].registered
        return h.lines(nick)

    def test_account_and_password(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        lines = self.connect_with_pass(h, "al", f"alice:{PASSWORD}")
        assert codes(lines)[:2] == ["900", "001"]
        assert h.users["al"].account == "alice"

    def test_password_alone_logs_in_to_the_nick(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        lines = self.connect_with_pass(h, "alice", f":{PASSWORD}")
        assert codes(lines)[:2] == ["900", "001"]
        assert not notices(lines)  # its own nick: not protected from it

    def test_wrong_password_and_no_such_account_look_the_same(self) -> None:
        """Issue 17 item 10: the reply must not tell which accounts exist."""
        h, svc = harness()
        add_account(svc, "alice")
        wrong = notices(self.connect_with_pass(h, "al", "alice:nope"))
        ghost = notices(self.connect_with_pass(h, "gh", "ghost:whatever"))
        text = (
            "Login failed: invalid account name or password; you are connected without an account"
        )
        assert wrong[0] == ghost[0] == text
        assert h.users["al"].account is None and h.users["gh"].account is None

    def test_server_password_is_not_a_login(self) -> None:
        h, svc = harness(password="letmein")
        add_account(svc, "alice")
        lines = self.connect_with_pass(h, "al", "letmein")
        assert "900" not in codes(lines) and not notices(lines)

    def test_waits_for_the_check(self) -> None:
        h, svc, worker = queue_harness()
        add_account(svc, "alice")
        h.open("c")
        h.send("c", f"PASS alice:{PASSWORD}")
        h.send("c", "NICK c")
        h.send("c", "USER c 0 * :c")
        assert not h.users["c"].registered
        worker.run_pending()
        assert codes(h.lines("c"))[:2] == ["900", "001"]


class TestNickProtection:
    def registered(self) -> tuple[CoreHarness, AccountService]:
        h, svc = harness(accounts=_accounts(nick_grace=30.0))
        add_account(svc, "alice")
        return h, svc

    def test_stranger_is_warned_then_renamed(self) -> None:
        h, _ = self.registered()
        h.connect("bob")
        h.connect("watcher")
        h.send("bob", "JOIN #a")
        h.send("watcher", "JOIN #a")
        h.clear()
        h.send("bob", "NICK alice")
        lines = h.lines("bob")
        assert codes(lines) == ["NICK", "NOTICE"]
        assert notices(lines)[0].startswith(
            "The nick alice is registered to the account alice. Log in to it within 30 seconds"
        )
        assert h.lines("watcher") == [":bob!~bob@127.0.0.1 NICK alice"]  # no warning for them
        h.advance(29)
        assert h.lines("bob") == [] and h.users["bob"].nick == "alice"
        h.advance(5)  # past the grace period, at the next tick
        lines = h.lines("bob")
        guest = h.users["bob"].nick
        assert re.fullmatch(r"Guest\d{5}", guest)
        assert lines[0] == f":alice!~bob@127.0.0.1 NICK {guest}"
        assert "the nick alice is registered to the account alice" in notices(lines)[0]
        assert h.lines("watcher") == [f":alice!~bob@127.0.0.1 NICK {guest}"]

    def test_registering_with_the_nick_is_warned(self) -> None:
        h, _ = self.registered()
        h.open("c")
        h.send("c", "NICK alice")
        h.send("c", "USER c 0 * :c")
        lines = h.lines("c")
        assert "001" in codes(lines)
        assert notices(lines)[-1].startswith("The nick alice is registered")
        h.advance(31)
        assert h.users["c"].nick.startswith("Guest")

    def test_logging_in_cancels_the_rename(self) -> None:
        h, _ = self.registered()
        h.connect("bob")
        h.send("bob", "NICK alice")
        h.send("bob", "CAP REQ sasl")
        h.advance(10)
        h.send("bob", "AUTHENTICATE PLAIN")
        h.send("bob", f"AUTHENTICATE {plain('alice')}")
        h.advance(60)
        assert h.users["bob"].nick == "alice"

    def test_changing_nick_cancels_the_rename(self) -> None:
        h, svc = self.registered()
        h.connect("bob")
        h.send("bob", "NICK alice")
        h.send("bob", "NICK bobby")
        h.advance(60)
        assert h.users["bob"].nick == "bobby"
        assert svc.guards == {}

    def test_owner_is_not_warned(self) -> None:
        h, _ = self.registered()
        h.open("c")
        h.send("c", f"PASS alice:{PASSWORD}")
        h.send("c", "NICK alice")
        h.send("c", "USER c 0 * :c")
        assert not notices(h.lines("c"))
        h.advance(60)
        assert h.users["c"].nick == "alice"

    def test_other_account_does_not_count(self) -> None:
        h, svc = self.registered()
        add_account(svc, "bob")
        h.open("c")
        h.send("c", f"PASS bob:{PASSWORD}")
        h.send("c", "NICK alice")
        h.send("c", "USER c 0 * :c")
        assert notices(h.lines("c"))[-1].startswith("The nick alice is registered")
        h.advance(31)
        assert h.users["c"].nick.startswith("Guest")

    def test_gone_before_the_deadline(self) -> None:
        h, svc = self.registered()
        h.connect("bob")
        h.send("bob", "NICK alice")
        h.send("bob", "QUIT")
        h.advance(60)
        assert svc.guards == {}

    def test_guest_nicks_fit_a_short_nicklen(self) -> None:
        _h, svc = harness(limits={"nicklen": 9})
        assert re.fullmatch(r"Guest\d{4}", svc.guest_nick())


class TestCert:
    def logged_in(self) -> tuple[CoreHarness, AccountService]:
        h, svc = harness()
        add_account(svc, "alice")
        add_account(svc, "bob", certfps=("cd" * 32,))
        h.open("alice")
        h.users["alice"].certfp = FP
        h.send("alice", f"PASS alice:{PASSWORD}")
        h.send("alice", "NICK alice")
        h.send("alice", "USER alice 0 * :alice")
        h.lines("alice")
        return h, svc

    def test_add_list_del(self) -> None:
        h, svc = self.logged_in()
        h.send("alice", "CERT LIST")
        assert notices(h.lines("alice")) == [
            "The account alice has no client certificates (CERT ADD adds one)"
        ]
        h.send("alice", "CERT ADD")
        assert notices(h.lines("alice"))[0].startswith(f"Added client certificate {FP} to")
        h.send("alice", "CERT ADD " + ":".join(["EF"] * 32))
        h.send("alice", "CERT ADD")
        assert "already" in notices(h.lines("alice"))[-1]
        h.send("alice", "cert list")
        assert notices(h.lines("alice")) == [
            f"Client certificate of alice: {FP}",
            f"Client certificate of alice: {'ef' * 32}",
        ]
        h.send("alice", f"CERT DEL {FP}")
        assert notices(h.lines("alice"))[0].startswith(f"Removed client certificate {FP}")
        account = svc.store.get("alice")
        assert account is not None and account.certfps == ("ef" * 32,)

    @pytest.mark.parametrize(
        ("line", "code"),
        [
            ("CERT ADD nothex", "INVALID_FINGERPRINT"),
            ("CERT ADD " + "cd" * 32, "FINGERPRINT_IN_USE"),
            ("CERT DEL " + "ee" * 32, "NOT_FOUND"),
            ("CERT DEL", "NEED_FINGERPRINT"),
            ("CERT FROB", "UNKNOWN_SUBCOMMAND"),
        ],
    )
    def test_errors(self, line: str, code: str) -> None:
        h, _ = self.logged_in()
        h.send("alice", line)
        msg = parse(h.lines("alice")[0])
        assert msg.command == "FAIL" and msg.params[:2] == ("CERT", code)

    def test_needs_a_login(self) -> None:
        h, _ = harness()
        h.connect("carol")
        h.send("carol", "CERT LIST")
        assert h.lines("carol") == [
            f":{SERVER} FAIL CERT ACCOUNT_REQUIRED :Log in to your account first"
        ]

    def test_add_without_a_certificate(self) -> None:
        h, _ = self.logged_in()
        h.users["alice"].certfp = None
        h.send("alice", "CERT ADD")
        assert " FAIL CERT NO_CERTIFICATE :" in h.lines("alice")[0]


class TestWhois:
    def test_account_and_certificate(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        h.open("alice")
        h.users["alice"].certfp = FP
        h.send("alice", f"PASS alice:{PASSWORD}")
        h.send("alice", "NICK alice")
        h.send("alice", "USER alice 0 * :alice")
        h.connect("bob")
        h.lines("alice")
        h.send("alice", "WHOIS alice")
        own = h.lines("alice")
        assert f":{SERVER} 330 alice alice alice :is logged in as" in own
        assert f":{SERVER} 276 alice alice :has client certificate fingerprint {FP}" in own
        h.send("bob", "WHOIS alice")
        other = h.lines("bob")
        assert f":{SERVER} 330 bob alice alice :is logged in as" in other
        assert "276" not in codes(other)  # only to the user and opers
        h.send("bob", "WHOIS bob")
        assert "330" not in codes(h.lines("bob"))
