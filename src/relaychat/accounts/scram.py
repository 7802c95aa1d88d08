"""SCRAM-SHA-256 for SASL (RFC 5802, RFC 7677), on the maintained ``scramp`` library.

The server never keeps a password, only what RFC 5802 §3 calls the salted keys:
``StoredKey = H(ClientKey)`` and ``ServerKey``, with the salt and iteration count. They let it
check a client's proof and prove itself in return, and cannot log anyone in if stolen (a thief
would still have to find the password by brute force, PBKDF2 slowing every guess).

One exchange (RFC 5802 §5)::

    C: n,,n=user,r=<client nonce>                              client-first-message
    S: r=<client nonce><server nonce>,s=<salt>,i=<iterations>   server-first-message
    C: c=biws,r=<both nonces>,p=<proof>                         client-final-message
    S: v=<server signature>                                     server-final-message

``scramp`` (https://codeberg.org/tlocke/scramp) does the parsing, SASLprep and the proof; it has
no type hints, so this module is its only user and gives the rest of relaychat typed values and
one exception, :class:`ScramError`, whose ``reason`` is fit to show the user. Channel binding
(``SCRAM-SHA-256-PLUS``) is not offered, and an authorization identity (``a=``) is refused.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

import scramp  # type: ignore[import-untyped]

__all__ = [
    "DEFAULT_ITERATIONS",
    "ScramCredentials",
    "ScramError",
    "ScramServer",
    "decoy_credentials",
    "derive_credentials",
]

#: PBKDF2 rounds for new accounts: RFC 7677 §4 asks for at least 4096.
DEFAULT_ITERATIONS = 4096

_MECHANISM = scramp.ScramMechanism("SCRAM-SHA-256")
# scramp names RFC 5802's server-error values (§7) on its exceptions' ``server_error``.
_REASONS = {
    "invalid-proof": "wrong password",
    "channel-binding-not-supported": "channel binding (SCRAM-SHA-256-PLUS) is not offered",
    "channel-bindings-dont-match": "channel binding data does not match",
}


class ScramError(ValueError):
    """A SCRAM exchange failed, or a password cannot be used with SCRAM.

    Attributes:
        reason: what went wrong, fit to show the user after "SASL authentication failed: ".
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _error(exc: Exception) -> ScramError:
    """A scramp exception as a :class:`ScramError` with a readable reason."""
    if isinstance(exc.__cause__, ScramError):
        return exc.__cause__  # our lookup refused the user; scramp wrapped its error
    reason = _REASONS.get(str(getattr(getattr(exc, "server_error", None), "value", "")))
    if reason is None:
        detail = str(exc.args[0]) if exc.args else str(exc)
        reason = f"malformed SCRAM message: {detail.rstrip('.')}"
    return ScramError(reason)


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """The keys a server keeps for SCRAM-SHA-256 instead of the password (RFC 5802 §3).

    Attributes:
        salt: the random salt.
        iterations: the PBKDF2 iteration count.
        stored_key: ``H(HMAC(SaltedPassword, "Client Key"))``.
        server_key: ``HMAC(SaltedPassword, "Server Key")``.
    """

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def derive_credentials(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredentials:
    """The SCRAM-SHA-256 keys for ``password`` (RFC 5802 §3). Takes a few milliseconds.

    Args:
        password: the password; SASLprep'd first.
        salt: the salt, at least 12 bytes (random when ``None``).
        iterations: the PBKDF2 iteration count.

    Returns:
        The credentials to store; the password itself is not kept.

    Raises:
        ScramError: SASLprep refuses the password (control characters, for example).
    """
    try:
        salt_out, stored, server, count = _MECHANISM.make_auth_info(
            password, iteration_count=iterations, salt=salt
        )
    except scramp.ScramException as exc:
        raise ScramError(str(exc.args[0]) if exc.args else "SASLprep refuses it") from None
    return ScramCredentials(bytes(salt_out), int(count), bytes(stored), bytes(server))


def decoy_credentials(
    name: str, secret: bytes, *, iterations: int = DEFAULT_ITERATIONS
) -> ScramCredentials:
    """Credentials for an account that does not exist, so that a SCRAM exchange for it looks
    like one for an account that does (and fails at the proof, like a wrong password).

    The salt is derived from ``name`` and the server's ``secret``: asking twice for the same
    name gives the same salt, as a real account would.
    """

    def derive(label: bytes) -> bytes:
        return hmac.new(secret, label + b"\0" + name.encode("utf-8"), hashlib.sha256).digest()

    return ScramCredentials(
        derive(b"salt")[:16], iterations, derive(b"stored-key"), derive(b"server-key")
    )


class ScramServer:
    """The server's side of one SCRAM-SHA-256 exchange; use each instance once.

    Args:
        lookup: the credentials of the account a user name names; raises :class:`ScramError`
            (e.g. "there is no account named x") to end the exchange.
        nonce: the server's nonce part (random when ``None``; tests pass RFC 7677's).
    """

    __slots__ = ("_server", "username")

    def __init__(self, lookup: Callable[[str], ScramCredentials], nonce: str | None = None) -> None:
        def auth(username: str) -> tuple[bytes, bytes, bytes, int]:
            self.username = username
            creds = lookup(username)
            return creds.salt, creds.stored_key, creds.server_key, creds.iterations

        self._server = _MECHANISM.make_server(auth, s_nonce=nonce)
        #: The authentication identity (``n=``), once the first message is in.
        self.username = ""

    def receive_first(self, data: bytes) -> bytes:
        """Take the client-first-message; look the account up.

        Returns:
            The server-first-message, to send to the client.

        Raises:
            ScramError: the message is malformed, asks for channel binding or an authorization
                identity, or ``lookup`` refused the user.
        """
        try:
            self._server.set_client_first(_text(data))
            return str(self._server.get_server_first()).encode("utf-8")
        except scramp.ScramException as exc:
            raise _error(exc) from None

    def receive_final(self, data: bytes) -> bytes:
        """Check the client-final-message's proof.

        Returns:
            The server-final-message (``v=<ServerSignature>``), to send to the client.

        Raises:
            ScramError: the message is malformed, the nonce or channel binding does not match,
                or the proof is wrong (``reason`` is "wrong password").
        """
        try:
            self._server.set_client_final(_text(data))
            return str(self._server.get_server_final()).encode("utf-8")
        except scramp.ScramException as exc:
            raise _error(exc) from None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("SCRAM message is not UTF-8") from None
