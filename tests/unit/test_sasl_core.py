"""SASL in the core, in memory: PLAIN, SCRAM-SHA-256 and EXTERNAL, success and every failure.

IRCv3 sasl-3.1 (https://ircv3.net/specs/extensions/sasl-3.1) and sasl-3.2: numerics 900, 903,
904, 905, 906, 907 and 908; 400-byte chunks; registration waits for a login being checked.
"""

from __future__ import annotations

import base64

import pytest

from relaychat.protocol.message import parse
from tests.harness import CoreHarness
from tests.unit.accounts_support import (
    FP,
    PASSWORD,
    add_account,
    b64,
    harness,
    plain,
    queue_harness,
    sasl_client,
    scram_client_final,
)
from tests.unit.core_support import SERVER


def codes(lines: list[str]) -> list[str]:
    return [parse(line).command for line in lines]


def text_of(lines: list[str], code: str) -> str:
    return next(parse(line).params[-1] for line in lines if parse(line).command == code)


class TestCapability:
    def test_sasl_value_lists_mechanisms(self) -> None:
        h, _ = harness(external=False)
        h.open("c")
        h.send("c", "CAP LS 302")
        words = " ".join(parse(line).params[-1] for line in h.lines("c"))
        assert " sasl=PLAIN,SCRAM-SHA-256 " in f" {words} "

    def test_external_is_listed_with_tls_client_certificates(self) -> None:
        h, _ = harness(external=True)
        h.open("c")
        h.send("c", "CAP LS 302")
        words = " ".join(parse(line).params[-1] for line in h.lines("c"))
        assert " sasl=PLAIN,SCRAM-SHA-256,EXTERNAL " in f" {words} "

    def test_no_accounts_no_sasl(self) -> None:
        h = CoreHarness()
        h.open("c")
        h.send("c", "CAP LS 302")
        assert "sasl" not in h.lines("c")[0]
        h.send("c", "CAP REQ sasl")
        assert " NAK " in h.lines("c")[0]


class TestPlain:
    def test_success_before_registration(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c", nick="alice")
        h.send("c", "AUTHENTICATE PLAIN")
        assert h.lines("c") == ["AUTHENTICATE +"]
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        assert h.lines("c") == [
            f":{SERVER} 900 alice alice!~c@127.0.0.1 alice :You are now logged in as alice",
            f":{SERVER} 903 alice :SASL authentication successful",
        ]
        assert h.users["c"].account == "alice"
        h.send("c", "CAP END")
        assert "001" in codes(h.lines("c"))

    def test_account_name_in_any_case_and_authzid(self) -> None:
        h, svc = harness()
        add_account(svc, "Alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE plain")  # mechanism names are case-insensitive
        h.send("c", f"AUTHENTICATE {plain('ALICE', authzid='alice')}")
        assert codes(h.lines("c"))[-2:] == ["900", "903"]
        assert h.users["c"].account == "Alice"

    @pytest.mark.parametrize(
        ("response", "reason"),
        [
            # The same reason for both: nothing tells which accounts exist (issue 17 item 10).
            (plain("alice", "wrong password"), "invalid account name or password"),
            (plain("nobody"), "invalid account name or password"),
            (plain("alice", authzid="bob"), "you may only log in as yourself"),
            (b64(b"alice\0secret"), "authzid NUL authcid NUL password"),
            ("not-base64!", "not valid base64"),
        ],
    )
    def test_failures_say_why(self, response: str, reason: str) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        h.send("c", f"AUTHENTICATE {response}")
        lines = h.lines("c")
        assert codes(lines) == ["904"]
        text = text_of(lines, "904")
        assert text.startswith("SASL authentication failed: ") and reason in text, text
        assert h.users["c"].account is None
        # The client may retry from AUTHENTICATE <mechanism> (sasl-3.1).
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        assert codes(h.lines("c"))[-2:] == ["900", "903"]

    def test_response_in_400_byte_chunks(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        # A long wrong password: the response goes as 400 + 400 + a bit.
        response = plain("alice", "p" * 620)
        assert len(response) > 800
        for i in range(0, len(response), 400):
            h.send("c", f"AUTHENTICATE {response[i : i + 400]}")
        assert text_of(h.lines("c"), "904").endswith("invalid account name or password")

    def test_exactly_400_bytes_then_plus(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        password = PASSWORD + " " * (300 - len("\0alice\0") - len(PASSWORD))
        response = plain("alice", password)
        assert len(response) == 400
        h.send("c", f"AUTHENTICATE {response}")
        assert h.lines("c") == []  # waiting for the rest
        h.send("c", "AUTHENTICATE +")
        # trailing spaces count
        assert text_of(h.lines("c"), "904").endswith("invalid account name or password")

    def test_chunk_over_400_bytes_is_905(self) -> None:
        h, _ = harness()
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        h.send("c", "AUTHENTICATE " + "A" * 401)
        lines = h.lines("c")
        assert codes(lines) == ["905"]
        assert "at most 400 bytes" in text_of(lines, "905")

    def test_abort_is_906(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", "AUTHENTICATE *")
        assert codes(h.lines("c")) == ["AUTHENTICATE", "906"]
        h.send("c", f"AUTHENTICATE {plain('alice')}")  # no exchange now: read as a mechanism
        assert codes(h.lines("c")) == ["908", "904"]

    def test_already_logged_in_is_907(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        h.lines("c")
        h.send("c", "AUTHENTICATE PLAIN")
        assert h.lines("c") == [
            f":{SERVER} 907 c :You have already authenticated using SASL",
        ]

    def test_unknown_mechanism_lists_mechanisms(self) -> None:
        h, _ = harness()
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE DIGEST-MD5")
        assert h.lines("c") == [
            f":{SERVER} 908 c PLAIN,SCRAM-SHA-256 :are available SASL mechanisms",
            f":{SERVER} 904 c :SASL authentication failed: the mechanism DIGEST-MD5 is not "
            "supported",
        ]

    def test_needs_the_capability(self) -> None:
        h, _ = harness()
        h.open("c")
        h.send("c", "AUTHENTICATE PLAIN")
        assert "CAP REQ sasl" in text_of(h.lines("c"), "904")

    def test_without_accounts(self) -> None:
        h = CoreHarness()
        h.open("c")
        h.send("c", "AUTHENTICATE PLAIN")
        assert text_of(h.lines("c"), "904").endswith("this server has no accounts")

    def test_too_many_failures_disconnect(self) -> None:
        h, _ = harness()
        sasl_client(h, "c")
        for _ in range(5):
            h.send("c", "AUTHENTICATE PLAIN")
            h.send("c", f"AUTHENTICATE {plain('nobody')}")
        assert codes(h.lines("c")).count("904") == 5
        assert h.peers["c"].closed is not None
        assert "Too many SASL authentication failures" in h.peers["c"].closed

    def test_after_registration(self) -> None:
        """sasl-3.2: a registered client may authenticate; its channels see ACCOUNT."""
        h, svc = harness()
        add_account(svc, "alice")
        h.connect("alice")
        h.connect("bob")
        h.send("alice", "JOIN #a")
        h.send("bob", "CAP REQ account-notify")
        h.send("bob", "JOIN #a")
        h.send("alice", "CAP REQ sasl")
        h.clear()
        h.send("alice", "AUTHENTICATE PLAIN")
        h.send("alice", f"AUTHENTICATE {plain('alice')}")
        assert codes(h.lines("alice")) == ["AUTHENTICATE", "900", "903"]
        assert h.lines("bob") == [":alice!~alice@127.0.0.1 ACCOUNT alice"]


class TestWhileChecking:
    """argon2 runs in a worker: registration waits for the answer (QueueWorker holds it)."""

    def test_registration_waits_for_the_login(self) -> None:
        h, svc, worker = queue_harness()
        add_account(svc, "alice")
        sasl_client(h, "c", nick="alice")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        h.send("c", "CAP END")
        assert codes(h.lines("c")) == ["AUTHENTICATE"]
        assert not h.users["c"].registered
        h.send("c", "PING :after")  # held: answered after the login, in order (issue 11 fix 8)
        assert h.lines("c") == []
        assert worker.run_pending() == 1
        got = codes(h.lines("c"))
        assert got[:3] == ["900", "903", "001"]
        assert got[-1] == "PONG"
        assert h.users["c"].registered and h.users["c"].account == "alice"

    def test_cap_end_during_an_exchange_aborts_it(self) -> None:
        h, _, _ = queue_harness()
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.lines("c")
        h.send("c", "CAP END")
        lines = h.lines("c")
        assert codes(lines)[:2] == ["906", "001"]
        assert h.users["c"].account is None

    def test_labeled_reply_comes_with_the_answer(self) -> None:
        h, svc, worker = queue_harness()
        add_account(svc, "alice")
        h.connect("alice")
        h.send("alice", "CAP REQ :sasl labeled-response batch")
        h.send("alice", "AUTHENTICATE PLAIN")
        h.lines("alice")
        h.send("alice", f"@label=L1 AUTHENTICATE {plain('alice')}")
        assert h.lines("alice") == []  # no ACK: the answer is coming
        worker.run_pending()
        lines = h.lines("alice")
        assert lines[0].startswith("@label=L1 ") and "BATCH +" in lines[0]
        assert codes(lines) == ["BATCH", "900", "903", "BATCH"]

    def test_quit_while_checking(self) -> None:
        h, svc, worker = queue_harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        h.send("c", "QUIT")
        worker.run_pending()  # the answer finds no one; nothing is sent after close
        h.advance(1)
        assert svc.conns == {}

    def test_busy_worker(self) -> None:
        h, svc, worker = queue_harness()
        worker.limit = 0
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE PLAIN")
        h.send("c", f"AUTHENTICATE {plain('alice')}")
        h.advance(1)  # the refusal waits as long as it asks the client to wait
        assert "busy" in text_of(h.lines("c"), "904")


class TestScram:
    def start(self, h: CoreHarness, bare: str) -> str:
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE SCRAM-SHA-256")
        assert h.lines("c") == ["AUTHENTICATE +"]
        h.send("c", f"AUTHENTICATE {b64(('n,,' + bare).encode())}")
        (line,) = h.lines("c")
        msg = parse(line)
        assert msg.command == "AUTHENTICATE"
        return base64.b64decode(msg.params[0]).decode()

    def test_success(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL"
        first = self.start(h, bare)
        assert first.startswith("r=fyko+d2lbbFgONRv9qkxdawL") and ",i=4096" in first
        final, expected = scram_client_final(PASSWORD, bare, first)
        h.send("c", f"AUTHENTICATE {b64(final.encode())}")
        (line,) = h.lines("c")
        assert base64.b64decode(parse(line).params[0]) == b"v=" + base64.b64encode(expected)
        h.send("c", "AUTHENTICATE +")
        assert codes(h.lines("c")) == ["900", "903"]
        assert h.users["c"].account == "alice"

    def test_wrong_password(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        bare = "n=alice,r=abcdefgh"
        first = self.start(h, bare)
        final, _ = scram_client_final("not the password", bare, first)
        h.send("c", f"AUTHENTICATE {b64(final.encode())}")
        lines = h.lines("c")
        assert (
            text_of(lines, "904") == "SASL authentication failed: invalid account name or password"
        )

    def test_unknown_account_looks_like_a_wrong_password(self) -> None:
        """Issue 17 item 10: decoy credentials; the exchange fails at the proof, the same way."""
        h, _ = harness()
        bare = "n=ghost,r=abcdefgh"
        again = self.start(h, bare)
        first = self.start(h, bare)  # a new connection, asking again
        assert first.startswith("r=abcdefgh") and ",i=4096" in first
        assert again.split(",")[1] == first.split(",")[1]  # the same salt, as a real account
        final, _ = scram_client_final(PASSWORD, bare, first)
        h.send("c", f"AUTHENTICATE {b64(final.encode())}")
        assert text_of(h.lines("c"), "904") == (
            "SASL authentication failed: invalid account name or password"
        )

    def test_channel_binding_is_refused(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE SCRAM-SHA-256")
        h.send("c", f"AUTHENTICATE {b64(b'p=tls-unique,,n=alice,r=abc')}")
        assert "channel binding" in text_of(h.lines("c"), "904")

    def test_final_response_must_be_empty(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        bare = "n=alice,r=abcdefgh"
        first = self.start(h, bare)
        final, _ = scram_client_final(PASSWORD, bare, first)
        h.send("c", f"AUTHENTICATE {b64(final.encode())}")
        h.lines("c")
        h.send("c", f"AUTHENTICATE {b64(b'more')}")
        assert "expected an empty response" in text_of(h.lines("c"), "904")
        assert h.users["c"].account is None


class TestExternal:
    def test_success_with_a_registered_certificate(self) -> None:
        h, svc = harness()
        add_account(svc, "alice", certfps=(FP,))
        h.open("c")
        h.users["c"].certfp = FP  # what the TLS edge sets from the client certificate
        h.send("c", "CAP REQ sasl")
        h.send("c", "AUTHENTICATE EXTERNAL")
        assert h.lines("c")[-1] == "AUTHENTICATE +"
        h.send("c", "AUTHENTICATE +")
        assert codes(h.lines("c")) == ["900", "903"]

    def test_authzid_must_match(self) -> None:
        h, svc = harness()
        add_account(svc, "alice", certfps=(FP,))
        h.open("c")
        h.users["c"].certfp = FP
        h.send("c", "CAP REQ sasl")
        h.send("c", "AUTHENTICATE EXTERNAL")
        h.send("c", f"AUTHENTICATE {b64(b'bob')}")
        assert "log in as yourself" in text_of(h.lines("c"), "904")

    def test_unregistered_certificate(self) -> None:
        h, svc = harness()
        add_account(svc, "alice")
        h.open("c")
        h.users["c"].certfp = FP
        h.send("c", "CAP REQ sasl")
        h.send("c", "AUTHENTICATE EXTERNAL")
        h.send("c", "AUTHENTICATE +")
        assert f"your certificate {FP} is not registered" in text_of(h.lines("c"), "904")

    def test_no_certificate(self) -> None:
        h, _ = harness()
        sasl_client(h, "c")
        h.send("c", "AUTHENTICATE EXTERNAL")
        lines = h.lines("c")
        assert codes(lines) == ["908", "904"]
        assert "PLAIN,SCRAM-SHA-256" in lines[0]
        assert text_of(lines, "904").endswith("needs a TLS connection with a client certificate")

    def test_not_offered_without_tls(self) -> None:
        h, _ = harness(external=False)
        h.open("c")
        h.users["c"].certfp = FP
        h.send("c", "CAP REQ sasl")
        h.send("c", "AUTHENTICATE EXTERNAL")
        assert text_of(h.lines("c"), "904").endswith("EXTERNAL is not available on this server")
