"""SCRAM-SHA-256, the server side: RFC 7677's test vector, an independent client, failures."""

from __future__ import annotations

import base64

import pytest

from relaychat.accounts.scram import (
    ScramCredentials,
    ScramError,
    ScramServer,
    derive_credentials,
)
from tests.unit.accounts_support import scram_client_final

# RFC 7677 §3: user "user", password "pencil".
CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
PENCIL = derive_credentials("pencil", salt=SALT, iterations=4096)


def lookup_pencil(name: str) -> ScramCredentials:
    if name != "user":
        raise ScramError(f"there is no account named {name}")
    return PENCIL


def vector_server() -> ScramServer:
    server = ScramServer(lookup_pencil, nonce=SERVER_NONCE)
    assert server.receive_first(CLIENT_FIRST) == SERVER_FIRST
    assert server.username == "user"
    return server


class TestRFC7677Vector:
    """RFC 7677 §3: the SCRAM-SHA-256 example exchange, byte for byte."""

    def test_exchange(self) -> None:
        assert vector_server().receive_final(CLIENT_FINAL) == SERVER_FINAL

    def test_wrong_proof_is_refused(self) -> None:
        final = CLIENT_FINAL.replace(b"p=dHzb", b"p=dHzc")
        with pytest.raises(ScramError) as err:
            vector_server().receive_final(final)
        assert err.value.reason == "wrong password"


def test_independent_client_gets_the_server_signature() -> None:
    creds = derive_credentials("s3cret ü")
    server = ScramServer(lambda name: creds)
    bare = "n=al=2Cice=3D,r=clientnonce123"
    first = server.receive_first(f"y,,{bare}".encode()).decode()
    assert server.username == "al,ice="
    final, expected = scram_client_final("s3cret ü", bare, first, gs2="y,,")
    assert server.receive_final(final.encode()) == b"v=" + base64.b64encode(expected)


def test_wrong_password() -> None:
    creds = derive_credentials("pencil")
    server = ScramServer(lambda name: creds)
    bare = "n=user,r=abcdef"
    first = server.receive_first(f"n,,{bare}".encode()).decode()
    final, _ = scram_client_final("pencils", bare, first)
    with pytest.raises(ScramError, match=r"^wrong password$"):
        server.receive_final(final.encode())


def test_lookup_refusal_ends_the_exchange() -> None:
    with pytest.raises(ScramError, match=r"^there is no account named ghost$"):
        ScramServer(lookup_pencil).receive_first(b"n,,n=ghost,r=abc")


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"p=tls-unique,,n=user,r=abc", "channel binding .* not offered"),
        (b"n,a=bob,n=user,r=abc", "authzid must be empty"),
        (b"n,,r=abc,n=user", "malformed"),
        (b"n,,n=user", "malformed"),
        (b"garbage", "malformed"),
        (b"\xff,,n=user,r=abc", "not UTF-8"),
    ],
)
def test_bad_client_first(message: bytes, reason: str) -> None:
    with pytest.raises(ScramError, match=reason):
        ScramServer(lookup_pencil).receive_first(message)


@pytest.mark.parametrize(
    ("final", "reason"),
    [
        (CLIENT_FINAL.replace(b"c=biws", b"c=eSws"), "channel binding data does not match"),
        (CLIENT_FINAL.replace(b"r=rOpr", b"r=XOpr"), "nonce"),
        (CLIENT_FINAL.replace(b",p=", b",q="), "malformed"),
        (b"c=biws,p=abc", "malformed"),
    ],
)
def test_bad_client_final(final: bytes, reason: str) -> None:
    with pytest.raises(ScramError, match=reason):
        vector_server().receive_final(final)


def test_final_before_first() -> None:
    with pytest.raises(ScramError, match="malformed"):
        ScramServer(lookup_pencil).receive_final(CLIENT_FINAL)


def test_credentials_keep_no_password() -> None:
    creds = derive_credentials("pencil")
    assert len(creds.salt) >= 12 and creds.iterations == 4096
    assert b"pencil" not in creds.stored_key + creds.server_key + creds.salt
    assert derive_credentials("pencil", salt=creds.salt) == creds


def test_saslprep() -> None:
    """RFC 4013 §3: SOFT HYPHEN maps to nothing, so "I\\u00adX" is the password "IX"."""
    assert derive_credentials("I\u00adX", salt=SALT) == derive_credentials("IX", salt=SALT)
    with pytest.raises(ScramError, match="control characters"):
        derive_credentials("bell\u0007")
