"""Password hashing for opers and the server password: argon2id via argon2-cffi."""

from __future__ import annotations

import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["hash_password", "verify_password"]

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
