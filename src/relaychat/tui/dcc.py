"""File transfer in the terminal client: ``/dcc``, offers in conversations, the transfers buffer.

Rules:
1. The transfers themselves are :class:`relaychat.client.dcc.DccManager`'s; this module only
   turns its events into lines (:func:`apply_dcc`), draws the transfers buffer as a table with
   progress bars (:func:`transfer_rows`), and runs ``/dcc``.
2. An offer is never accepted by itself: it shows in the conversation with the sender, with the
   command that accepts it (``/dcc get NICK``) and the one that declines it.
3. The transfers buffer is a view of the manager's list, drawn afresh (twice a second while a
   transfer is under way); it holds no lines of its own.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from relaychat.client.dcc import DccManager
from relaychat.client.dccstate import (
    DccDone,
    DccFailed,
    DccOffered,
    DccRefused,
    Direction,
    State,
    Transfer,
    format_eta,
    format_rate,
    format_size,
)
from relaychat.client.errors import DccError
from relaychat.client.events import Event
from relaychat.tui.commands import ChatUI, Usage, command
from relaychat.tui.model import BufferKind, ChatState, Kind

__all__ = ["TRANSFERS", "apply_dcc", "busy", "progress_bar", "show_transfers", "transfer_rows"]

#: The key and name of the transfers buffer (with a space: no nick or channel is called that).
TRANSFERS = "file transfers"
_BAR = 24
_STYLES = {
    State.OFFERED: "bold magenta",
    State.WAITING: "yellow",
    State.CONNECTING: "yellow",
    State.ACTIVE: "bold cyan",
    State.DONE: "bold green",
    State.FAILED: "bold red",
    State.CANCELLED: "dim",
}


# --- what the manager says, as lines -----------------------------------------------------------


def apply_dcc(state: ChatState, event: Event, download_dir: Path) -> None:
    """Record a DCC event as a line in the conversation with the peer (rule 2).

    Args:
        state: the model.
        event: a :class:`DccOffered`, :class:`DccDone`, :class:`DccFailed` or
            :class:`DccRefused` (others are ignored: progress shows in the transfers buffer).
        download_dir: where ``/dcc get`` saves by default (said in the offer line).
    """
    if isinstance(event, DccOffered):
        t = event.transfer
        renamed = f" (offered as {t.offered_name!r})" if t.offered_name != t.name else ""
        text = (
            f"{t.nick} offers the file {t.name}{renamed}, {format_size(t.size)}: "
            f"/dcc get {t.nick} saves it in {download_dir}, /dcc close {t.id} declines"
        )
        state.add_line(state.add_buffer(t.nick, BufferKind.QUERY), Kind.OFFER, text, highlight=True)
    elif isinstance(event, DccDone):
        t = event.transfer
        took = (t.finished or 0.0) - (t.started or 0.0)
        speed = f" in {took:.1f} s ({format_rate(t.rate())})" if took > 0 else ""
        if t.direction is Direction.RECEIVE:
            text = (
                f"received {t.name} from {t.nick}: {format_size(t.size)}{speed}, saved as "
                f"{t.path} (sha256 {t.sha256})"
            )
        else:
            text = f"sent {t.name} to {t.nick}: {format_size(t.size)}{speed}"
        state.add_line(state.add_buffer(t.nick, BufferKind.QUERY), Kind.INFO, text)
    elif isinstance(event, DccFailed):
        t = event.transfer
        way = "from" if t.direction is Direction.RECEIVE else "to"
        kind = Kind.INFO if t.state is State.CANCELLED else Kind.ERROR
        text = f"file transfer #{t.id} ({t.name} {way} {t.nick}) {t.state.value}: {event.reason}"
        state.add_line(state.add_buffer(t.nick, BufferKind.QUERY), kind, text)
    elif isinstance(event, DccRefused):
        text = f"refused a file offer from {event.nick}: {event.reason}"
        state.add_line(state.add_buffer(event.nick, BufferKind.QUERY), Kind.ERROR, text)


# --- the transfers buffer ---------------------------------------------------------------------


def progress_bar(fraction: float, width: int = _BAR) -> str:
    """``[##########----------]`` for ``fraction`` (0 to 1) of ``width`` cells inside."""
    filled = int(max(0.0, min(1.0, fraction)) * width + 1e-9)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def transfer_rows(transfers: list[Transfer]) -> list[Text]:
    """The transfers buffer: two lines per transfer, newest first (rule 3).

    ``#3 <- report.pdf from bob  active`` then
    ``   [##########--------------]  42%  8.4 MiB of 20.0 MiB  12.3 MiB/s  1 s left``.
    """
    if not transfers:
        return [Text("no file transfers yet: /dcc send NICK PATH offers one", style="dim")]
    rows = [Text("file transfers (/dcc get, /dcc close ID; /help dcc)", style="bold")]
    for t in reversed(transfers):
        arrow, way = ("<-", "from") if t.direction is Direction.RECEIVE else ("->", "to")
        head = Text(f"#{t.id} {arrow} ", style="bold")
        head.append(t.name)
        head.append(f" {way} {t.nick}  ")
        head.append(t.state.value, style=_STYLES[t.state])
        if t.passive:
            head.append(" (passive)", style="dim")
        rows.append(head)
        detail = Text("   ")
        detail.append(progress_bar(t.fraction), style=_STYLES[t.state])
        detail.append(f" {t.fraction * 100:3.0f}%  {format_size(t.done)} of {format_size(t.size)}")
        if t.state is State.ACTIVE:
            detail.append(f"  {format_rate(t.rate())}  {format_eta(t.eta())} left")
        elif t.state is State.DONE:
            detail.append(f"  {format_rate(t.rate())}")
            if t.path is not None and t.direction is Direction.RECEIVE:
                detail.append(f"  {t.path}", style="dim")
        elif t.error:
            detail.append(f"  {t.error}", style=_STYLES[t.state])
        rows.append(detail)
    return rows


# --- /dcc ---------------------------------------------------------------------------------------


def _manager(ui: ChatUI) -> DccManager:
    dcc = getattr(ui, "dcc", None)
    if not isinstance(dcc, DccManager):
        raise Usage("file transfer is not available here")
    return dcc


def _download_dir(ui: ChatUI) -> Path:
    return _manager(ui).config.download_path()


def _pick(ui: ChatUI, who: str, states: tuple[State, ...]) -> Transfer:
    """The transfer ``#ID`` (or ``ID``), or the latest one with nick ``who`` in ``states``."""
    dcc = _manager(ui)
    if who.lstrip("#").isdigit():
        found = dcc.get(int(who.lstrip("#")))
        if found is None or found.state not in states:
            raise Usage(f"no transfer #{who.lstrip('#')} to do that with")
        return found
    nick = who or _query_nick(ui)
    candidates = [t for t in dcc.transfers if t.state in states]
    if nick:
        candidates = [t for t in candidates if ui.state.key(t.nick) == ui.state.key(nick)]
    if not candidates:
        raise Usage(f"no file offered by {nick}" if nick else "no file offered")
    return candidates[-1]


def _query_nick(ui: ChatUI) -> str:
    buf = ui.state.current_buffer
    return buf.name if buf.kind is BufferKind.QUERY else ""


async def _get(ui: ChatUI, args: str, *, resume: bool | None) -> None:
    who, _, folder = args.partition(" ")
    offer = _pick(ui, who, (State.OFFERED,))
    target = Path(folder.strip()).expanduser() if folder.strip() else _download_dir(ui)
    t = await _manager(ui).accept(offer, target, resume=resume)
    more = f", resuming at {format_size(t.offset)}" if t.offset else ""
    ui.state.info(f"receiving {t.name} from {t.nick} into {t.path}{more}")


async def _send(ui: ChatUI, args: str) -> None:
    nick, _, path = args.partition(" ")
    path = path.strip().strip('"')
    if not nick or not path:
        raise Usage("usage: /dcc send NICK PATH")
    t = await _manager(ui).send(nick, Path(path).expanduser())
    buf = ui.state.add_buffer(nick, BufferKind.QUERY)
    ui.state.info(f"offering {t.name} ({format_size(t.size)}) to {nick} (#{t.id})", buf)


async def _close(ui: ChatUI, args: str) -> None:
    live = (State.OFFERED, State.WAITING, State.CONNECTING, State.ACTIVE)
    t = _pick(ui, args.strip(), live)
    await _manager(ui).cancel(t, "declined" if t.state is State.OFFERED else "cancelled")


def show_transfers(ui: ChatUI) -> None:
    """Open the transfers buffer and put it on screen."""
    ui.state.add_buffer(TRANSFERS, BufferKind.TRANSFERS)
    ui.show(TRANSFERS)


@command(
    "dcc",
    "send <nick> <path> | list | get [nick|#id] [dir] | resume [nick|#id] [dir] | close [#id|nick]",
    "send and receive files directly (DCC); offers are never accepted unless you say so",
)
async def _dcc(ui: ChatUI, args: str) -> None:
    sub, _, rest = args.strip().partition(" ")
    sub, rest = sub.lower(), rest.strip()
    try:
        if sub == "send":
            await _send(ui, rest)
        elif sub == "list":
            show_transfers(ui)
        elif sub == "get":
            await _get(ui, rest, resume=None)
        elif sub == "resume":
            await _get(ui, rest, resume=True)
        elif sub in ("close", "reject", "cancel"):
            await _close(ui, rest)
        else:
            raise Usage("")
    except DccError as exc:
        raise Usage(exc.reason) from None


def busy(transfers: list[Transfer]) -> bool:
    """Whether the transfers buffer needs drawing again soon (something is under way)."""
    return any(t.state in (State.ACTIVE, State.CONNECTING, State.WAITING) for t in transfers)
