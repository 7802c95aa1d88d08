"""``relaychat admin ...`` (the local admin socket) and ``relaychat reload`` (SIGHUP, pid file).

Both find the server through its data directory: ``--data-dir``, else the ``data_dir`` of
``--config FILE`` or ``RELAYCHAT_DATA_DIR``, else the default one.

Exit codes: 0 done; 1 the server refused (no such nick, a bad mask, a configuration it would not
load); 2 bad command line or settings; 3 no server is running there (or its socket refused us).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from relaychat.config import load_config
from relaychat.errors import ConfigError

__all__ = ["add_parsers", "request"]

#: Seconds to wait for the admin socket's answer (a reload reads files and certificates).
TIMEOUT = 30.0


def _data_dir(args: argparse.Namespace) -> Path:
    config = load_config(file=args.config, overrides={"data_dir": args.data_dir})
    return config.data_path()


def request(data_dir: Path, payload: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
    """Send one request to the admin socket under ``data_dir``; return the reply object.

    Raises:
        OSError: no server listens there, or the socket refused us (permissions).
        ValueError: the answer was not a JSON object.
    """
    path = data_dir / "admin.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(payload).encode() + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = json.loads(b"".join(chunks) or b"null")
    if not isinstance(reply, dict):
        raise ValueError("the admin socket answered something that is not a JSON object")
    return reply


def _print_result(command: str, result: Any) -> None:
    if command == "status":
        for key, value in result.items():
            if isinstance(value, list):
                value = ", ".join(value)
            print(f"{key:12} {value}")
    elif command == "users":
        print(f"{'nick':16} {'user@host':32} {'idle':>6}  channels")
        for u in result:
            flag = "*" if u["oper"] else ""
            who = f"{u['user']}@{u['host']}"
            print(f"{u['nick'] + flag:16} {who:32} {u['idle']:>6}  {' '.join(u['channels'])}")
        print(f"{len(result)} user(s)")
    else:
        print(result)


def _admin(args: argparse.Namespace) -> int:
    try:
        data = _data_dir(args)
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    payload: dict[str, Any] = {"command": args.admin_command}
    for key in ("nick", "mask", "reason", "duration"):
        value = getattr(args, key, None)
        if value is not None:
            payload[key] = value
    try:
        reply = request(data, payload)
    except FileNotFoundError:
        print(f"relaychat: no server running with data directory {data}", file=sys.stderr)
        return 3
    except ConnectionRefusedError:
        print(f"relaychat: no server answers on {data / 'admin.sock'}", file=sys.stderr)
        return 3
    except PermissionError:
        print(
            f"relaychat: permission denied on {data / 'admin.sock'} (run as the server's user)",
            file=sys.stderr,
        )
        return 3
    except (OSError, ValueError) as exc:
        print(f"relaychat: admin socket {data / 'admin.sock'}: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(reply, indent=2))
    if not reply.get("ok"):
        print(f"relaychat: {reply.get('error', 'refused')}", file=sys.stderr)
        return 3 if "permission denied" in str(reply.get("error")) else 1
    if not args.json:
        _print_result(args.admin_command, reply.get("result"))
    return 0


def _reload(args: argparse.Namespace) -> int:
    from relaychat.server.operations import PID_FILE, read_pid

    try:
        data = _data_dir(args)
    except ConfigError as exc:
        print(f"relaychat: configuration error: {exc}", file=sys.stderr)
        return 2
    pid = read_pid(data)
    if pid is None:
        print(
            f"relaychat: no running server found (no live pid in {data / PID_FILE})",
            file=sys.stderr,
        )
        return 3
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError:
        print(f"relaychat: not allowed to signal the server (pid {pid})", file=sys.stderr)
        return 3
    print(f"relaychat: asked the server (pid {pid}) to reload; its log says how it went")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="the server's data directory")
    p.add_argument("--config", metavar="FILE", help="the server's TOML file (for its data_dir)")


def add_parsers(sub: Any) -> None:
    """Add ``admin`` and ``reload`` to the ``relaychat`` subcommands."""
    admin = sub.add_parser(
        "admin",
        help="administer a running server over its local socket",
        description="Talk to the running server over admin.sock in its data directory "
        "(owner only). Exit 0 done, 1 refused, 2 bad usage, 3 no server.",
    )
    _common(admin)
    admin.add_argument("--json", action="store_true", help="print the raw JSON reply")
    verbs = admin.add_subparsers(dest="admin_command", metavar="COMMAND", required=True)
    verbs.add_parser("status", help="uptime, users, channels, bans, listeners")
    verbs.add_parser("users", help="every registered user")
    kill = verbs.add_parser("kill", help="disconnect a user")
    kill.add_argument("nick")
    kill.add_argument("--reason")
    for name, what in (("kline", "user@host mask"), ("dline", "IP address or CIDR network")):
        ban = verbs.add_parser(name, help=f"ban a {what}")
        ban.add_argument("mask", help=what)
        ban.add_argument("--duration", help="how long: 30m, 2h, 1d, 1w (default: permanent)")
        ban.add_argument("--reason")
        unban = verbs.add_parser("un" + name, help=f"lift a ban on a {what}")
        unban.add_argument("mask")
    verbs.add_parser("reload", help="read the configuration again (reports the result)")
    admin.set_defaults(handler=_admin)

    reload = sub.add_parser(
        "reload",
        help="make the running server read its configuration again (SIGHUP)",
        description="Send SIGHUP to the server whose pid file is in the data directory.",
    )
    _common(reload)
    reload.set_defaults(handler=_reload)
