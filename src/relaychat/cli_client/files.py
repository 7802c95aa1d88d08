"""``relaychat send-file`` and ``relaychat receive-files``: DCC file transfer from scripts.

``send-file`` offers one file and exits 0 only once the peer has all of it (every byte
acknowledged; with ``--turbo``, the peer closed after the last byte). ``receive-files`` accepts
offers from the allowed nicks into a directory (continuing ``.part`` files it finds) and prints
one JSON line per finished file. Both print one line on stderr for a failure, and use the exit
codes of :mod:`relaychat.cli_client`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relaychat.cli_client.common import (
    EXIT_NOT_DELIVERED,
    EXIT_OK,
    EXIT_USAGE,
    check_nick,
    fail,
    first_connection,
    load_config,
)
from relaychat.client import Client
from relaychat.client.config import client_config_path, read_toml
from relaychat.client.dcc import DccManager
from relaychat.client.dccstate import (
    DccConfig,
    DccDone,
    DccFailed,
    DccOffered,
    DccProgress,
    DccRefused,
    Direction,
    Transfer,
    format_eta,
    format_rate,
    format_size,
    parse_port_range,
    parse_size,
)
from relaychat.client.errors import DccError

__all__ = [
    "add_dcc_arguments",
    "dcc_config",
    "nick_list",
    "run_receive_files",
    "run_send_file",
    "size_arg",
]


def add_dcc_arguments(parser: argparse.ArgumentParser) -> None:
    """The DCC settings every file command takes (they override the ``[dcc]`` table)."""
    group = parser.add_argument_group("DCC")
    group.add_argument(
        "--bind", metavar="ADDR", help="address to listen on (default: the one the IRC link uses)"
    )
    group.add_argument(
        "--advertise", metavar="ADDR", help="address to put in offers (behind NAT: the public one)"
    )
    group.add_argument(
        "--ports", type=parse_port_range, metavar="A-B", help="ports to listen on, e.g. 5000-5010"
    )
    group.add_argument(
        "--stall-timeout",
        type=float,
        metavar="S",
        help="give up when nothing moves for S seconds (default 60)",
    )
    group.add_argument("-q", "--quiet", action="store_true", help="no progress or news on stderr")


def dcc_config(args: argparse.Namespace, **overrides: Any) -> DccConfig:
    """The DCC settings: the config file's ``[dcc]`` table, then the command line.

    Raises:
        ConfigError: the table or a value is not usable.
    """
    path = args.config or client_config_path()
    table = read_toml(path, missing_ok=args.config is None).get("dcc", {})
    settings = dict(table) if isinstance(table, dict) else {}
    given = {
        "bind_host": getattr(args, "bind", None),
        "advertise_host": getattr(args, "advertise", None),
        "port_range": getattr(args, "ports", None),
        "stall_timeout": getattr(args, "stall_timeout", None),
        **overrides,
    }
    base = DccConfig.from_settings(settings)
    return DccConfig(
        **{
            **{k: getattr(base, k) for k in base.__dataclass_fields__},
            **{k: v for k, v in given.items() if v is not None},
        }
    )


class _Meter:
    """Progress on stderr: one line rewritten in place on a terminal, nothing otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.live = not quiet and sys.stderr.isatty()
        self.shown = False

    def show(self, t: Transfer, rate: float) -> None:
        if not self.live:
            return
        line = (
            f"\r{t.name}: {format_size(t.done)} of {format_size(t.size)} "
            f"({t.fraction * 100:.0f}%) {format_rate(rate)}, {format_eta(t.eta())} left "
        )
        print(line, end="", file=sys.stderr, flush=True)
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            print(file=sys.stderr)
            self.shown = False


def _record(t: Transfer) -> dict[str, Any]:
    took = (t.finished or 0.0) - (t.started or t.finished or 0.0)
    record: dict[str, Any] = {"name": t.name, "size": t.size}
    if t.direction is Direction.RECEIVE:
        record.update(path=str(t.path), sha256=t.sha256, **{"from": t.nick})
    else:
        record.update(to=t.nick)
    record.update(resumed_from=t.offset, seconds=round(took, 3), rate=round(t.rate()))
    return record


def _print_json(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


async def run_send_file(args: argparse.Namespace) -> int:
    """Run ``send-file``; returns the exit code (0 only when the peer has the whole file).

    Raises:
        CannotConnect: the first connection failed, or the ``--nick`` given is in use.
        ConfigError: the settings are not usable.
    """
    path = Path(args.path).expanduser()
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        return fail(f"{path} {what}", EXIT_USAGE)
    cfg = dcc_config(args, offer_timeout=args.timeout, turbo=args.turbo or None)
    client = Client(config=load_config(args, {"max_attempts": 5}, channels=()))
    events = client.events()
    await first_connection(client, events)
    meter = _Meter(args.quiet)
    try:
        await check_nick(client, args)
        async with DccManager(client, cfg) as dcc:
            watch = dcc.events(DccProgress)
            try:
                transfer = await dcc.send(args.target, path, name=args.name, passive=args.passive)
            except DccError as exc:
                return fail(exc.reason, EXIT_USAGE)

            async def progress() -> None:
                async for event in watch:
                    assert isinstance(event, DccProgress)
                    meter.show(event.transfer, event.rate)

            shower = asyncio.get_running_loop().create_task(progress())
            try:
                await dcc.wait(transfer)
            except DccError as exc:
                meter.clear()
                return fail(
                    f"{path.name} not sent to {args.target}: {exc.reason}", EXIT_NOT_DELIVERED
                )
            finally:
                shower.cancel()
            meter.clear()
            _print_json(_record(transfer))
            return EXIT_OK
    finally:
        await client.close(timeout=2.0)


async def run_receive_files(args: argparse.Namespace) -> int:
    """Run ``receive-files`` until interrupted, ``--count`` files, or ``--timeout``.

    Returns:
        0 when stopped (or all ``--count`` files arrived), 1 when ``--timeout`` came first.

    Raises:
        CannotConnect: the first connection failed, or the ``--nick`` given is in use.
        ConfigError: the settings are not usable.
    """
    folder = Path(args.dir).expanduser()
    if not folder.is_dir():
        return fail(f"{folder} is not a directory", EXIT_USAGE)
    allowed = [n for item in args.allow or () for n in item.split(",") if n]
    overrides: dict[str, Any] = {"allow_from": tuple(allowed) if allowed else None}
    if args.max_size is not None:
        overrides["max_size"] = args.max_size
    cfg = dcc_config(args, **overrides)
    client = Client(config=load_config(args, channels=()))
    events = client.events()
    await first_connection(client, events)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    news: Callable[[str], None] = (
        (lambda _: None) if args.quiet else (lambda s: print(f"relaychat: {s}", file=sys.stderr))
    )
    meter = _Meter(args.quiet)
    received = 0
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        await check_nick(client, args)
        async with DccManager(client, cfg) as dcc:
            stream = dcc.events()
            who = ", ".join(allowed) if allowed else "anyone"
            news(f"{client.nick} waiting for files from {who} into {folder}")
            while not stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                getter = asyncio.ensure_future(anext(stream))
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=left, return_when=asyncio.FIRST_COMPLETED
                )
                stopper.cancel()
                if getter not in done:
                    getter.cancel()
                    continue
                event = getter.result()
                if isinstance(event, DccOffered):
                    t = event.transfer
                    try:
                        await dcc.accept(t, folder)
                    except DccError as exc:
                        news(f"cannot accept {t.name} from {t.nick}: {exc.reason}")
                        await dcc.reject(t)
                        continue
                    more = f", resuming at {format_size(t.offset)}" if t.offset else ""
                    news(f"receiving {t.name} ({format_size(t.size)}) from {t.nick}{more}")
                elif isinstance(event, DccProgress):
                    meter.show(event.transfer, event.rate)
                elif isinstance(event, DccDone) and event.transfer.direction is Direction.RECEIVE:
                    meter.clear()
                    _print_json(_record(event.transfer))
                    received += 1
                    if args.count is not None and received >= args.count:
                        return EXIT_OK
                elif isinstance(event, DccFailed):
                    meter.clear()
                    t = event.transfer
                    news(f"{t.name} from {t.nick}: {event.reason}")
                elif isinstance(event, DccRefused):
                    news(f"refused a DCC offer from {event.nick}: {event.reason}")
    finally:
        meter.clear()
        await client.close(timeout=2.0)
    if args.count is not None and not stop.is_set():
        return fail(
            f"received {received} of {args.count} files within {args.timeout:g} s",
            EXIT_NOT_DELIVERED,
        )
    return EXIT_OK


def nick_list(text: str) -> str:
    """Check ``--from``: nicks separated by commas.

    Raises:
        argparse.ArgumentTypeError: a nick holds a space or is empty.
    """
    nicks = [n for n in text.split(",") if n]
    if not nicks or any(" " in n or n[0] in "#&:" for n in nicks):
        raise argparse.ArgumentTypeError(f"{text!r} is not a nick or a list of nicks")
    return text


def size_arg(text: str) -> int:
    """Check a size argument (``500M``, ``2G``).

    Raises:
        argparse.ArgumentTypeError: not a size.
    """
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
