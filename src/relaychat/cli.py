"""The ``relaychat`` command: ``serve`` runs the server, ``mkpasswd`` hashes an oper password.

Failures an operator can fix (bad config, address in use) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
import typing
from collections.abc import Sequence
from typing import Any

from relaychat import __version__, admin_cli, cli_client, discovery, doctor
from relaychat.cluster import status as cluster_status
from relaychat.config import SECTIONS, Config, load_config, scalar_fields
from relaychat.errors import ConfigError, RelaychatError
from relaychat.web import hooks_cli

__all__ = ["build_parser", "main"]

_TYPES: dict[Any, Any] = {int: int, float: float, str: str, bool: bool}


def _flag(
    group: argparse._ArgumentGroup,
    name: str,
    dest: str,
    kind: Any,
    default: Any,
    help_text: str,
    env: str,
) -> None:
    text = f"{help_text} (default: {default!r}; env {env})"
    if kind is bool:
        group.add_argument(
            "--" + name, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text
        )
    else:
        group.add_argument(
            "--" + name,
            dest=dest,
            type=_TYPES[kind],
            default=None,
            metavar="TEXT" if kind is str else "N",
            help=text,
        )


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    general = parser.add_argument_group("server")
    hints = typing.get_type_hints(Config)
    for f in scalar_fields(Config):
        _flag(
            general,
            f.name.replace("_", "-"),
            f.name,
            hints[f.name],
            f.default,
            f.metadata["help"],
            f"RELAYCHAT_{f.name.upper()}",
        )
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(section)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            # Limits keep their bare names (--sendq); other sections are prefixed (--history-...).
            name = f.name if section == "limits" else f"{section}_{f.name}"
            _flag(
                group,
                name.replace("_", "-"),
                f"{section}.{f.name}",
                hints[f.name],
                f.default,
                f.metadata["help"],
                f"RELAYCHAT_{section.upper()}__{f.name.upper()}",
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
    serve.add_argument(
        "--cluster",
        dest="cluster.url",
        metavar="URLS",
        default=None,
        help="join a cluster: the NATS URLs, comma-separated (short for --cluster-url; "
        "see docs/cluster.md)",
    )
    mk = sub.add_parser(
        "mkpasswd",
        help="hash a password for an [[opers]] entry",
        description="Read a password (prompted, or one line of stdin) and print "
        "its argon2 hash for the config file.",
    )
    mk.add_argument("--stdin", action="store_true", help="read the password from stdin")
    # Network tools: each module adds its subcommand and sets `handler` (dispatched in main).
    discovery.add_parser(sub)
    doctor.add_parser(sub)
    cli_client.add_client_commands(sub)  # chat, send, tail
    hooks_cli.add_parser(sub)  # incoming webhooks of the HTTP port
    cluster_status.add_parser(sub)  # relaychat cluster status
    admin_cli.add_parsers(sub)  # admin, reload
    return parser


def _serve(args: argparse.Namespace) -> int:
    from relaychat.logs import configure as configure_logging
    from relaychat.server.listeners import run
    from relaychat.server.reload import ConfigSource

    overrides = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    try:
        config = load_config(file=args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.log_level, config.log_format)
    try:
        run(config, source=ConfigSource(args.config, overrides))
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
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    parser.print_help()
    return 2
