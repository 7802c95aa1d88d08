"""The client subcommands: ``relaychat chat``, ``send``, ``tail``, ``send-file``, ``receive-files``,
``upload``.

All three are built on :class:`relaychat.client.Client` and share one way to start:

- Settings, lowest precedence first: built-in defaults, the client config file
  (``~/.config/relaychat/client.toml``, or ``--config`` / ``RELAYCHAT_CLIENT_CONFIG``),
  ``RELAYCHAT_HOST/PORT/NICK``, then the command line.
- The *first* connection is tried once: if it fails (refused, unreachable, TLS, wrong password)
  the command prints one line and exits with :data:`EXIT_CONNECT`. Once connected, ``chat``
  and ``tail`` reconnect forever; ``send`` tries a few times (``max_attempts``, default 5).
- A nick given with ``--nick`` is required: if it is taken the command fails. A nick from the
  config file, the environment or the login name falls back to ``nick_`` instead.
- ``chat`` with no host anywhere (argument, ``RELAYCHAT_HOST``, config file) tries
  127.0.0.1:6667; if nothing listens there it looks for servers announced on the local network
  (:func:`relaychat.discovery.find_hosts`) and takes the first that answers (:func:`pick_server`).
- ``chat --plain`` speaks raw text lines to any line-based TCP service
  (:class:`relaychat.client.plain.PlainClient`) instead of IRC; default port 12345.

Failures are one line on stderr (``relaychat: ...``), never a traceback.

Modules: this one wires the subcommands into argparse and runs them;
:mod:`.common` holds what they share (exit codes, parsing, settings, the first connection,
picking a server); :mod:`.chat`, :mod:`.send` and :mod:`.tail` hold one command each, and
:mod:`.files` the two DCC file commands, :mod:`.upload` the upload to the server's file host.
"""

from __future__ import annotations

import argparse
import asyncio
import textwrap
from typing import Any

from relaychat.cli_client.chat import plain_client, run_chat
from relaychat.cli_client.common import (
    EXIT_CONNECT,
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_USAGE,
    CannotConnect,
    fail,
    first_connection,
    host_given,
    load_config,
    parse_address,
    parse_target,
    pick_server,
    quiet_logging,
    tcp_listens,
)
from relaychat.cli_client.files import (
    add_dcc_arguments,
    nick_list,
    run_receive_files,
    run_send_file,
    size_arg,
)
from relaychat.cli_client.send import run_send
from relaychat.cli_client.tail import message_record, run_tail
from relaychat.cli_client.upload import PASSWORD_ENV, run_upload
from relaychat.client.config import client_config_path
from relaychat.errors import ConfigError

__all__ = [
    "EXIT_CONNECT",
    "EXIT_NOT_DELIVERED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CannotConnect",
    "add_client_commands",
    "first_connection",
    "host_given",
    "message_record",
    "parse_address",
    "parse_target",
    "pick_server",
    "run_client_command",
    "tcp_listens",
]

# The helpers' names from before the split into modules (tests reach for them by these).
_config = load_config
_plain_client = plain_client

_FILE_EXIT_CODES = """\
exit codes:
  0  done (send-file: the peer has the whole file; receive-files: stopped, or --count files
     received)
  1  the transfer failed or was declined, the peer did not answer, or (receive-files) fewer
     than --count files arrived within --timeout
  2  bad command line or configuration (e.g. the file to send does not exist)
  3  could not connect or register: connection refused, host unreachable, TLS failure,
     nick given with --nick in use, wrong server password
"""
_SEND_FILE_ABOUT = (
    "Offer the file at PATH to NICK by DCC, then send it directly to their client, and exit 0 "
    "only when the peer has all of it (every byte acknowledged). It listens for the peer on "
    "the address the IRC connection uses (--bind, --ports to choose); when it cannot listen, "
    "or with --passive, it makes a passive offer and the receiver listens instead. A receiver "
    "that asks to resume a partial copy gets only the rest. On success one JSON line goes to "
    "stdout: name, size, to, resumed_from, seconds, rate."
)
_RECEIVE_FILES_ABOUT = (
    "Accept DCC file offers from the nicks given with --from (from anyone without it) into "
    "DIR, and print one JSON line per finished file on stdout: name, path, size, sha256, from, "
    "resumed_from, seconds, rate. A partial NAME.part left by an interrupted transfer is "
    "continued when the same file is offered again; a file that exists is never overwritten "
    "(the new one gets a free name such as NAME-1). Runs until interrupted, until --count "
    "files have arrived, or for --timeout seconds."
)

_UPLOAD_ABOUT = (
    "Upload the file at PATH to the server's file host (the URL it announces as draft/FILEHOST) "
    "as an account, and print one JSON line on stdout: url, name, size, seconds, rate. With "
    "--to TARGET the link is also said there (a channel is joined first unless --no-join). The "
    "account is --account NAME with the password from $" + PASSWORD_ENV + " (or asked on the "
    "terminal), or the sasl setting of the client config file; the upload itself uses a "
    "one-use token from the IRC session (TOKEN GENERATE FILEHOST)."
)
_UPLOAD_EXIT_CODES = """\
exit codes:
  0  the file is stored (and, with --to, the link was said there)
  1  the server refused the upload (no account, too large, over quota, no file host...) or
     the link could not be said
  2  bad command line or configuration (the file does not exist, no password)
  3  could not connect, register or log in
"""

_EXIT_CODES = """\
exit codes:
  0  done (send: the server confirmed every message, each exactly once)
  1  the server refused or did not confirm a message, or may have got one twice (send
     --delivery at-least-once to a server that cannot tell), or refused to let us join
  2  bad command line or configuration
  3  could not connect or register: connection refused, host unreachable, TLS failure,
     nick given with --nick in use, wrong server password
"""
_SETTINGS = """\
settings come from, lowest first: built-in defaults, the client config file (%s,
or --config, or $RELAYCHAT_CLIENT_CONFIG), RELAYCHAT_HOST / RELAYCHAT_PORT / RELAYCHAT_NICK,
then the command line. The file holds client settings as TOML, e.g.
  nick = "alice"
  channels = ["#lobby"]
  password = "server password"
"""

_CHAT_ABOUT = (
    "A full-screen terminal chat client. Type /help inside for the commands; Ctrl+Q or /quit "
    "leaves. With no server given (argument, RELAYCHAT_HOST or config file) it connects to "
    "127.0.0.1:6667, or, when nothing listens there, to the first server announced on the local "
    "network (as `relaychat discover` lists them). With --plain it speaks raw text lines to any "
    "line-based TCP service (the sockets tutorial's server, netcat, relaychat's plain port; "
    "default 127.0.0.1:12345). If the first connection fails it exits at once (code 3); after "
    "that it reconnects forever."
)
_SEND_ABOUT = (
    "Post TEXT to TARGET (a channel or a nick), or, without TEXT, each line of stdin as one "
    "message as it comes. Exits 0 only when the server confirmed every message, each exactly "
    "once. A channel is joined first unless --no-join. If the first connection fails, send "
    "exits at once (code 3); if the link drops later, it reconnects up to max_attempts times "
    "(default 5) and then sends what was still waiting, and writes again, with the same "
    "idempotency key, what the server had not confirmed: a relaychat server relays each "
    "message once (--delivery; see docs/delivery.md)."
)
_TAIL_ABOUT = (
    "Print every message to TARGET (a #channel, or a nick's private messages to you) on stdout, "
    "one per line, until interrupted (exit 0). If the first connection fails, tail exits at "
    "once (code 3); after that it reconnects forever and, when the server keeps history "
    "(IRCv3 chathistory), prints what was said while it was away, without duplicates. Without "
    "server history, messages sent while it was disconnected are missed. Connection news goes "
    "to stderr."
)


# --- argparse -----------------------------------------------------------------------------------


def _wrap(text: str) -> str:
    return textwrap.fill(text, 79)


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument("--nick", help="your nick (default: from the config file, else login name)")
    group.add_argument(
        "--tls", action=argparse.BooleanOptionalAction, default=None, help="connect with TLS"
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="trust the certificates in FILE (PEM), e.g. a development server's self-signed "
        "one; implies --tls",
    )
    group.add_argument("--password", help="the server password (better kept in the config file)")
    group.add_argument("--config", metavar="FILE", help="client config file (TOML)")


def _delivery(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--delivery",
        choices=("auto", "exactly-once", "at-least-once", "at-most-once"),
        default=None,
        help="what a dropped connection may do to a message: exactly-once (refuse a server that "
        "cannot deduplicate), at-least-once (may arrive twice), at-most-once (may be lost, "
        "and is then reported); auto (default): exactly-once where the server offers it, "
        "else at-most-once",
    )


def add_client_commands(sub: Any) -> None:
    """Add the ``chat``, ``send``, ``tail``, ``send-file`` and ``receive-files`` subcommands.

    Each sets ``handler`` to :func:`run_client_command`, which ``relaychat.cli.main`` calls.
    """
    path = client_config_path()
    settings = _SETTINGS % path
    fmt = argparse.RawDescriptionHelpFormatter
    chat = sub.add_parser(
        "chat",
        help="chat in a full-screen terminal client",
        description=_wrap(_CHAT_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    chat.add_argument(
        "host", nargs="?", type=parse_address, metavar="HOST[:PORT]", help="the server"
    )
    chat.add_argument(
        "--plain",
        action="store_true",
        help="speak raw text lines, not IRC, to any line-based TCP service (port 12345 by "
        "default): each line typed is sent as it is",
    )
    chat.add_argument(
        "--join",
        metavar="'#a,#b'",
        help="channels to join (comma-separated), besides those of the config file",
    )
    _delivery(chat)
    _common(chat)

    send = sub.add_parser(
        "send",
        help="post a message (or each line of stdin) and confirm delivery",
        description=_wrap(_SEND_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    send.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    send.add_argument("target", type=parse_target, metavar="TARGET", help="a #channel or a nick")
    send.add_argument("text", nargs="?", metavar="TEXT", help="the message (default: stdin)")
    send.add_argument("--notice", action="store_true", help="send NOTICEs instead of PRIVMSGs")
    send.add_argument("--no-join", action="store_true", help="do not join the channel first")
    send.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds to wait for the server to confirm the messages once the input has "
        "ended (default 30)",
    )
    _delivery(send)
    _common(send)

    tail = sub.add_parser(
        "tail",
        help="stream a channel's messages to stdout",
        description=_wrap(_TAIL_ABOUT),
        epilog=settings + "\n" + _EXIT_CODES,
        formatter_class=fmt,
    )
    tail.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    tail.add_argument("target", type=parse_target, metavar="TARGET", help="a #channel or a nick")
    tail.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line: time, msgid (when the server gave one), nick, target, "
        "text, kind (message, action or notice)",
    )
    tail.add_argument("-q", "--quiet", action="store_true", help="no connection news on stderr")
    _common(tail)

    send_file = sub.add_parser(
        "send-file",
        help="send a file to someone by DCC and confirm they have it",
        description=_wrap(_SEND_FILE_ABOUT),
        epilog=settings + "\n" + _FILE_EXIT_CODES,
        formatter_class=fmt,
    )
    send_file.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    send_file.add_argument("target", type=parse_target, metavar="NICK", help="who gets the file")
    send_file.add_argument("path", metavar="PATH", help="the file to send")
    send_file.add_argument("--name", help="the file name to offer (default: PATH's own)")
    send_file.add_argument(
        "--passive",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="make a passive offer (the receiver listens); --no-passive: listen or fail "
        "(default: listen when possible, else passive)",
    )
    send_file.add_argument(
        "--turbo",
        action="store_true",
        help="do not wait for acknowledgements: done when the peer closes after the last byte",
    )
    send_file.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="seconds the peer has to accept the offer (default 300)",
    )
    _common(send_file)
    add_dcc_arguments(send_file)

    receive = sub.add_parser(
        "receive-files",
        help="receive files sent by DCC into a directory",
        description=_wrap(_RECEIVE_FILES_ABOUT),
        epilog=settings + "\n" + _FILE_EXIT_CODES,
        formatter_class=fmt,
    )
    receive.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    receive.add_argument(
        "--dir", default=".", metavar="DIR", help="where to save files (default: here)"
    )
    receive.add_argument(
        "--from",
        dest="allow",
        action="append",
        type=nick_list,
        metavar="NICK",
        help="accept offers from this nick (repeat it, or a,b,c); default: from anyone",
    )
    receive.add_argument(
        "--count", type=int, metavar="N", help="exit once N files have been received"
    )
    receive.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds (exit 1 if --count files had not arrived by then)",
    )
    receive.add_argument(
        "--max-size",
        type=size_arg,
        metavar="SIZE",
        help="refuse offers bigger than this (e.g. 2G; default 16G)",
    )
    _common(receive)
    add_dcc_arguments(receive)

    up = sub.add_parser(
        "upload",
        help="upload a file to the server and print its link",
        description=_wrap(_UPLOAD_ABOUT),
        epilog=settings + "\n" + _UPLOAD_EXIT_CODES,
        formatter_class=fmt,
    )
    up.add_argument("host", type=parse_address, metavar="HOST[:PORT]", help="the server")
    up.add_argument("path", metavar="PATH", help="the file to upload")
    up.add_argument("--account", metavar="NAME", help="the account to upload as (SASL)")
    up.add_argument("--name", help="the file name to give (default: PATH's own)")
    up.add_argument("--to", type=parse_target, metavar="TARGET", help="say the link there too")
    up.add_argument("--no-join", action="store_true", help="do not join the --to channel")
    up.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    _common(up)
    for parser in (chat, send, tail, send_file, receive, up):
        parser.set_defaults(handler=run_client_command)


def run_client_command(args: argparse.Namespace) -> int:
    """Run the client command ``args.command``; returns the exit code."""
    runner = {
        "chat": run_chat,
        "send": run_send,
        "tail": run_tail,
        "send-file": run_send_file,
        "receive-files": run_receive_files,
        "upload": run_upload,
    }[args.command]
    quiet_logging()
    try:
        return asyncio.run(runner(args))
    except ConfigError as exc:
        return fail(f"configuration error: {exc}", EXIT_USAGE)
    except CannotConnect as exc:
        return fail(exc.reason, EXIT_CONNECT)
    except KeyboardInterrupt:
        return 130
