"""Shared helpers for the in-memory account tests (not itself a test module).

Hashing a password with argon2 takes a fifth of a second here, so accounts that tests only log
in to are made once, from :data:`HASH` and :data:`CREDS`, straight into the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from relaychat.accounts.scram import ScramCredentials, derive_credentials
from relaychat.accounts.store import Account, AccountStore
from relaychat.accounts.worker import InlineWorker, QueueWorker, Worker
from relaychat.passwords import hash_password
from relaychat.server.accounts import AccountService
from tests.harness import CoreHarness, free_config

__all__ = [
    "CREDS",
    "FP",
    "HASH",
    "PASSWORD",
    "add_account",
    "b64",
    "harness",
    "plain",
    "sasl_client",
    "scram_client_final",
]

PASSWORD = "correct-horse-battery"
HASH = hash_password(PASSWORD)
CREDS = derive_credentials(PASSWORD)
#: A certificate fingerprint (any 64 hex digits will do in memory).
FP = "ab" * 32


def harness(
    *, worker: Worker | None = None, external: bool = True, **config: Any
) -> tuple[CoreHarness, AccountService]:
    """An in-memory server with accounts in a ``:memory:`` store.

    Args:
        worker: where hashing runs (an :class:`InlineWorker` on the harness clock by default).
        external: offer SASL EXTERNAL, as a server with TLS client certificates does.
        config: passed to ``free_config``.
    """
    h = CoreHarness(free_config(**config))
    svc = AccountService(
        h.core,
        AccountStore.open(":memory:"),
        worker or InlineWorker(lambda: h.now),
        external=external,
    )
    svc.attach()
    return h, svc


def queue_harness(**config: Any) -> tuple[CoreHarness, AccountService, QueueWorker]:
    """Like :func:`harness`, with a worker that runs jobs only when the test says so."""
    box: list[CoreHarness] = []
    worker = QueueWorker(lambda: box[0].now)
    h, svc = harness(worker=worker, **config)
    box.append(h)
    return h, svc, worker


def add_account(
    svc: AccountService,
    name: str,
    *,
    certfps: tuple[str, ...] = (),
    creds: ScramCredentials = CREDS,
) -> Account:
    """Put an account with :data:`PASSWORD` in the store, without hashing again."""
    account = Account(
        name=name, nick=name, password_hash=HASH, scram=creds, created=1.0, certfps=certfps
    )
    assert svc.store.create(account)
    return account


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(account: str, password: str = PASSWORD, authzid: str = "") -> str:
    """The AUTHENTICATE parameter of a PLAIN login."""
    return b64(f"{authzid}\0{account}\0{password}".encode())


def sasl_client(h: CoreHarness, name: str, nick: str | None = None) -> None:
    """Open ``name``, negotiate ``sasl`` and send NICK/USER, leaving registration pending."""
    h.open(name)
    h.send(name, "CAP LS 302")
    h.send(name, "CAP REQ sasl")
    h.send(name, f"NICK {nick or name}")
    h.send(name, f"USER {name} 0 * :{name}")
    h.lines(name)


def scram_client_final(
    password: str, client_first_bare: str, server_first: str, gs2: str = "n,,"
) -> tuple[str, bytes]:
    """What a SCRAM-SHA-256 client sends last (RFC 5802 §3), and the server signature it expects.

    Written from the RFC, independently of ``relaychat.accounts.scram``.
    """
    attrs = dict(part.split("=", 1) for part in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"])
    )
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c={b64(gs2.encode())},r={attrs['r']}"
    auth = f"{client_first_bare},{server_first},{without_proof}".encode()
    signature = hmac.new(stored_key, auth, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    expected = hmac.new(server_key, auth, "sha256").digest()
    return f"{without_proof},p={b64(proof)}", expected
