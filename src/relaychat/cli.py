"""The ``relaychat`` command: ``serve`` runs the server, ``mkpasswd`` hashes an oper password.

Failures an operator can fix (bad config, address in use) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import sys
import typing
from collections.abc import Sequence
from typing import Any

from relaychat import __version__
from relaychat.config import Config, Limits, load_config, scalar_fields
from relaychat.errors import ConfigError, RelaychatError

__all__ = ["build_parser", "main"]

_TYPES: dict[Any, Any] = {int: int, float: float, str: str}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    general = parser.add_argument_group("server")
    for f in scalar_fields(Config):
        kind = typing.get_type_hints(Config)[f.name]
        general.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_TYPES[kind],
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {f.default!r}; env RELAYCHAT_{f.name.upper()})",
        )
    limits = parser.add_argument_group("limits")
    hints = typing.get_type_hints(Limits)
    for f in dataclasses.fields(Limits):
        limits.add_argument(
            "--" + f.name.replace("_", "-"),
            dest="limits." + f.name,
            type=_TYPES[hints[f.name]],
            default=None,
            metavar="N",
            help=f"{f.metadata['help']} (default: {f.default!r}; "
            f"env RELAYCHAT_LIMITS__{f.name.upper()})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="relaychat", description="relaychat: real-time chat over persistent TCP sockets (IRC)."
    )
    parser.add_argument("--version", action="version", version=f"relaychat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="run the IRC server",
        description="Run the relaychat IRC server. Settings come from, lowest first: defaults, "
        "the TOML file given with --config, RELAYCHAT_* environment variables, "
        "and these flags.",
    )
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    _add_config_flags(serve)
    mk = sub.add_parser(
        "mkpasswd",
        help="hash a password for an [[opers]] entry",
        description="Read a password (prompted, or one line of stdin) and print "
        "its argon2 hash for the config file.",
    )
    mk.add_argument("--stdin", action="store_true", help="read the password from stdin")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from relaychat.server.listeners import run

    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    try:
        config = load_config(file=args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        run(config)
    except RelaychatError as exc:
        print(f"relaychat: {exc}", file=sys.stderr)
        return 2
    return 0


def _mkpasswd(args: argparse.Namespace) -> int:
    from relaychat.passwords import hash_password

    if args.stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
    if not password:
        print("relaychat: an empty password cannot be hashed", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``relaychat`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "mkpasswd":
        return _mkpasswd(args)
    parser.print_help()
    return 2
