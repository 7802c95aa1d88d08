"""E-mail verification for REGISTER: codes, and the operator's mail command that sends them.

relaychat sends no e-mail itself. When ``accounts.email_verification`` is on, REGISTER makes a
code, keeps only its SHA-256 (``Account.verify_hash``), and runs ``accounts.mail_command`` to
deliver it: the command line is split like a shell would (``shlex``) but run without a shell,
with ``{email}``, ``{account}`` and ``{code}`` replaced in each argument. It must exit 0 once the
mail is on its way. It runs in the worker (it may take seconds), at most
:data:`MAIL_TIMEOUT` seconds.

Example: ``mail_command = "/usr/local/bin/relaychat-mail {email} {account} {code}"``, a script
that pipes a short text to ``sendmail -t``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shlex
import subprocess

from relaychat.errors import RelaychatError

__all__ = ["MAIL_TIMEOUT", "MailError", "code_hash", "code_matches", "new_code", "send_code"]

#: Seconds the mail command may run.
MAIL_TIMEOUT = 30.0
#: Letters of a code: no 0/O, 1/I/L to misread.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_LENGTH = 10  # ~49 bits; guesses are throttled like passwords


class MailError(RelaychatError):
    """The mail command failed (could not start, timed out, or exited non-zero).

    Attributes:
        reason: what happened, for the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"mail command failed: {reason}")
        self.reason = reason


def new_code() -> str:
    """A fresh verification code (upper-case letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


def code_hash(code: str) -> str:
    """What is stored for ``code``: SHA-256, hex, of the code as typed (case and spaces ignored)."""
    return hashlib.sha256(code.strip().upper().encode("utf-8")).hexdigest()


def code_matches(stored: str, given: str) -> bool:
    """Whether ``given`` is the code whose hash is ``stored`` (constant time)."""
    return hmac.compare_digest(stored, code_hash(given))


def send_code(command: str, *, email: str, account: str, code: str) -> None:
    """Run the mail command for one code. Blocking: the worker's job.

    Raises:
        MailError: it could not run, took longer than :data:`MAIL_TIMEOUT`, or failed.
    """
    values = {"{email}": email, "{account}": account, "{code}": code}
    try:
        args = shlex.split(command)
    except ValueError as exc:
        raise MailError(f"cannot parse {command!r}: {exc}") from None
    if not args:
        raise MailError("no mail command is set")
    for i, arg in enumerate(args):
        for key, value in values.items():
            arg = arg.replace(key, value)
        args[i] = arg
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=MAIL_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MailError(f"{args[0]} took more than {MAIL_TIMEOUT:g} s") from None
    except OSError as exc:
        raise MailError(f"cannot run {args[0]}: {exc.strerror or exc}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise MailError(f"{args[0]} exited with {done.returncode}: {tail[0][:200]}")
