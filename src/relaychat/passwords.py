"""Password hashing for opers and the server password: argon2id via argon2-cffi."""

from __future__ import annotations

import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "verify_nothing", "verify_password"]

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Hash ``password`` with argon2id; the result goes in the config file."""
    return _hasher.hash(password)


def verify_password(stored: str, given: str) -> bool:
    """Check ``given`` against ``stored``: an argon2 hash, or (for a server password) plain text.

    Plain text is compared in constant time. Never raises.
    """
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, given)
        except (VerificationError, InvalidHashError):
            return False
    return hmac.compare_digest(stored.encode(), given.encode())


_dummy_hash: str | None = None


def verify_nothing(given: str) -> bool:
    """Take as long as :func:`verify_password` against an argon2 hash, and fail.

    For a login to an account that does not exist, so that it cannot be told from a wrong
    password by the time the answer takes. Never raises; always ``False``.
    """
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _hasher.hash("relaychat: no such account")
    verify_password(_dummy_hash, given + "\0")
    return False
