"""TOKEN (IRCv3 draft/authtoken) in memory, and the token table it keeps
(``server/authtokens.py``): one use, expiry, service and URL checks, bounds."""

from __future__ import annotations

from relaychat.server.authtokens import AuthTokens, Service, attach_tokens, tokens_of
from tests.harness import CoreHarness
from tests.unit.accounts_support import add_account, harness, plain, sasl_client

URL = "http://127.0.0.1:8080/upload"


def logged_in(with_filehost: bool = True) -> CoreHarness:
    """A core with accounts, alice logged in with SASL PLAIN, and (by default) FILEHOST."""
    h, svc = harness()
    add_account(svc, "alice")
    if with_filehost:
        tokens = attach_tokens(h.core, ttl=600.0)
        tokens.add_service(Service("FILEHOST", "file uploads", lambda user: URL))
    sasl_client(h, "alice")
    h.send("alice", "AUTHENTICATE PLAIN")
    h.send("alice", f"AUTHENTICATE {plain('alice')}")
    h.send("alice", "CAP END")
    assert h.users["alice"].account == "alice"
    h.lines("alice")
    return h


def test_generate_gives_a_token_for_the_filehost_url() -> None:
    h = logged_in()
    h.send("alice", "TOKEN GENERATE FILEHOST")
    (line,) = h.lines("alice")
    prefix = f":relaychat.local TOKEN GENERATE FILEHOST {URL} "
    assert line.startswith(prefix), line
    token = line[len(prefix) :].lstrip(":")
    assert len(token) == 43
    tokens = tokens_of(h.core)
    assert tokens is not None
    grant = tokens.take(token, h.now, service="FILEHOST")
    assert grant is not None and grant.account == "alice" and grant.url == URL
    assert tokens.take(token, h.now, service="FILEHOST") is None  # used up


def test_generate_needs_an_account_and_a_known_service() -> None:
    h = logged_in()
    h.connect("bob")
    h.send("bob", "TOKEN GENERATE FILEHOST")
    assert h.lines("bob") == [
        ":relaychat.local FAIL TOKEN ACCOUNT_REQUIRED :You must be logged into an account to "
        "generate a token for the FILEHOST service"
    ]
    h.send("alice", "TOKEN GENERATE QDB")
    assert h.lines("alice") == [
        ":relaychat.local FAIL TOKEN UNKNOWN_SERVICE QDB :No external service named QDB is defined"
    ]
    h.send("alice", "TOKEN FROB")
    assert h.lines("alice") == [
        ":relaychat.local FAIL TOKEN UNKNOWN_COMMAND FROB :No such subcommand TOKEN FROB"
    ]


def test_without_uploads_there_is_no_service() -> None:
    h = logged_in(with_filehost=False)
    h.send("alice", "TOKEN SERVICELIST")
    assert h.lines("alice") == [":relaychat.local NOTE TOKEN END_OF_LIST :End of service list"]
    h.send("alice", "TOKEN GENERATE FILEHOST")
    assert "UNKNOWN_SERVICE FILEHOST" in h.lines("alice")[0]


def test_servicelist_names_filehost() -> None:
    h = logged_in()
    h.send("alice", "TOKEN SERVICELIST")
    assert h.lines("alice") == [
        f":relaychat.local NOTE TOKEN SERVICE FILEHOST {URL} :file uploads",
        ":relaychat.local NOTE TOKEN END_OF_LIST :End of service list",
    ]


def test_validate_answers_claims_once_in_a_batch() -> None:
    h = logged_in()
    h.send("alice", "TOKEN GENERATE FILEHOST")
    token = h.lines("alice")[0].rsplit(" ", 1)[1].lstrip(":")
    h.open("svc")
    h.send("svc", f"TOKEN VALIDATE FILEHOST {URL} :{token}")  # before registration, no batch cap
    assert h.lines("svc") == [
        ":relaychat.local FAIL TOKEN NEED_CAPABILITY batch :You must have the batch capability "
        "before using this command"
    ]
    h.send("svc", "CAP REQ batch")
    h.lines("svc")
    h.send("svc", f"TOKEN VALIDATE FILEHOST http://elsewhere/upload :{token}")
    assert "FAIL TOKEN INVALID_TOKEN" in h.lines("svc")[0]  # another URL: refused, and used up
    h.send("alice", "TOKEN GENERATE FILEHOST")
    token = h.lines("alice")[0].rsplit(" ", 1)[1].lstrip(":")
    h.send("svc", f"TOKEN VALIDATE FILEHOST {URL} :{token}")
    lines = h.lines("svc")
    assert lines[0].startswith(":relaychat.local BATCH +")
    assert lines[0].endswith(f" draft/authtoken FILEHOST {URL}")
    ref = lines[0].split()[2][1:]
    assert lines[1:] == [
        f"@batch={ref} :relaychat.local TOKEN CLAIM account alice",
        f"@batch={ref} :relaychat.local TOKEN CLAIM name alice",
        f":relaychat.local BATCH -{ref}",
    ]
    h.send("svc", f"TOKEN VALIDATE FILEHOST {URL} :{token}")
    assert "FAIL TOKEN INVALID_TOKEN" in h.lines("svc")[0]


def test_tokens_expire_and_are_swept_by_the_tick() -> None:
    h = logged_in()
    tokens = tokens_of(h.core)
    assert tokens is not None
    h.send("alice", "TOKEN GENERATE FILEHOST")
    token = h.lines("alice")[0].rsplit(" ", 1)[1].lstrip(":")
    assert len(tokens) == 1
    h.advance(601)
    assert len(tokens) == 0
    assert tokens.take(token, h.now, service="FILEHOST") is None


def test_token_table_is_bounded_and_checks_service() -> None:
    tokens = AuthTokens(ttl=10.0, per_account=3, max_tokens=5)
    first = [tokens.issue("alice", "alice", "FILEHOST", URL, 0.0) for _ in range(4)]
    assert len(tokens) == 3  # per account: the oldest was forgotten
    assert tokens.take(first[0], 1.0, service="FILEHOST") is None
    assert tokens.take(first[1], 1.0, service="QDB") is None  # another service: refused, used
    assert tokens.take(first[1], 1.0, service="FILEHOST") is None
    grant = tokens.take(first[2], 1.0, service="filehost")
    assert grant is not None and grant.account == "alice"
    for n in range(10):
        tokens.issue(f"user{n}", "x", "FILEHOST", URL, 2.0)
    assert len(tokens) == 5  # in all: the oldest went first
    assert tokens.take(first[3], 3.0, service="FILEHOST") is None
    assert tokens.take("nonsense", 3.0, service="FILEHOST") is None
    tokens.sweep(12.5)
    assert len(tokens) == 0
