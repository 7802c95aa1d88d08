"""``relaychat upload HOST PATH``: put a file on the server's file host (``draft/FILEHOST``),
print its link as one JSON line, and with ``--to TARGET`` say the link there.

The account: ``--account NAME`` with the password from ``$RELAYCHAT_ACCOUNT_PASSWORD`` (or asked
for on the terminal), else the ``sasl = ["name", "password"]`` of the client config file. The
session logs in with SASL and uploads with a ``TOKEN GENERATE FILEHOST`` token
(:func:`relaychat.client.upload.upload`), so the password goes only to the IRC login.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from relaychat.cli_client.common import (
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_USAGE,
    check_nick,
    fail,
    first_connection,
    join_or_fail,
    load_config,
)
from relaychat.client import Client
from relaychat.client.dccstate import format_rate, format_size
from relaychat.client.errors import UploadError
from relaychat.client.upload import upload
from relaychat.errors import ConfigError

__all__ = ["PASSWORD_ENV", "account_password", "run_upload"]

#: Where ``--account``'s password is read from (never from the command line: ``ps`` shows it).
PASSWORD_ENV = "RELAYCHAT_ACCOUNT_PASSWORD"


def account_password(account: str, environ: Mapping[str, str] | None = None) -> str:
    """The password of ``account``: ``$RELAYCHAT_ACCOUNT_PASSWORD``, else asked on the terminal.

    Raises:
        ConfigError: neither is there (no variable, and stdin is not a terminal).
    """
    env = os.environ if environ is None else environ
    given = env.get(PASSWORD_ENV)
    if given:
        return given
    if sys.stdin.isatty():
        return getpass.getpass(f"password of the account {account}: ")
    raise ConfigError(PASSWORD_ENV, f"set it to the password of the account {account}")


async def run_upload(args: argparse.Namespace) -> int:
    """Run ``upload``; returns the exit code (0 once the file is stored, and said with --to).

    Raises:
        CannotConnect: the first connection (or the SASL login) failed.
        ConfigError: the settings are not usable.
    """
    path = Path(args.path).expanduser()
    if not path.is_file():
        return fail(f"no such file: {path}", EXIT_USAGE)
    extra = {}
    if args.account:
        extra["sasl"] = (args.account, account_password(args.account))
    config = load_config(args, {"max_attempts": 5}, channels=(), **extra)
    client = Client(config=config)
    events = client.events()
    await first_connection(client, events)
    quiet = args.quiet

    def progress(sent: int, total: int) -> None:
        if not quiet and total:
            print(f"\r{100 * sent // total:3d}% of {format_size(total)}", end="", file=sys.stderr)

    try:
        await check_nick(client, args)
        try:
            done = await upload(client, path, name=args.name, progress=progress)
        except UploadError as exc:
            if not quiet:
                print(file=sys.stderr)
            return fail(str(exc), EXIT_NOT_DELIVERED)
        if not quiet:
            print(
                f"\ruploaded {done.name}, {format_size(done.size)}, {format_rate(done.rate)}",
                file=sys.stderr,
            )
        if args.to:
            if client.is_channel(args.to) and not args.no_join:
                refused = await join_or_fail(client, args.to)
                if refused is not None:
                    return refused
            delivery = await client.send(args.to, done.url)
            error = await delivery.settled()
            if error is not None:
                return fail(
                    f"the link was not said in {args.to}: {error.reason}", EXIT_NOT_DELIVERED
                )
        record = {
            "url": done.url,
            "name": done.name,
            "size": done.size,
            "seconds": round(done.seconds, 3),
            "rate": round(done.rate),
        }
        print(json.dumps(record), flush=True)
        return EXIT_OK
    finally:
        await client.close(timeout=2.0)
