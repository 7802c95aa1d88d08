"""The slash commands of the terminal client, in one table.

Each command is an async function ``(ui, args) -> None`` registered with :func:`command`, with
its syntax and one line of help (``/help`` prints them). Commands talk to the server only
through :class:`relaychat.client.Client` (``ui.client``) and record what the user should see in
the model (``ui.state``); the app redraws afterwards. A command that is used wrongly raises
:class:`Usage`; :func:`run_input` turns that, and the client's errors, into one error line.

In plain mode (a :class:`~relaychat.client.plain.PlainClient`, no IRC) :func:`run_plain_input`
takes the input instead: text goes to the service as it is, and only the commands of
:data:`PLAIN_COMMANDS` run; the others are refused with one line saying why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from relaychat.client import Client, ClientError, Delivery
from relaychat.client.plain import PlainClient
from relaychat.client.requests import is_error
from relaychat.errors import ProtocolError
from relaychat.protocol.message import Message as IrcMessage
from relaychat.protocol.message import parse
from relaychat.tui.model import SERVER, BufferKind, ChatState, Kind

__all__ = [
    "COMMANDS",
    "PLAIN_COMMANDS",
    "ChatUI",
    "Command",
    "PlainUI",
    "Usage",
    "command",
    "describe",
    "run_input",
    "run_plain_input",
]

#: Replies that only end a list; they are not worth a line.
_END_MARKERS = frozenset({"315", "318", "366", "368", "369", "374", "376"})


class PlainUI(Protocol):
    """What plain mode needs from the app."""

    state: ChatState

    def redraw(self) -> None:
        """Draw what changed in the model."""

    def track_delivery(self, delivery: Delivery, target: str) -> None:
        """Report in ``target``'s buffer (else the one on screen) if ``delivery`` fails."""

    async def quit(self, reason: str) -> None:
        """Close the connection and end the app."""


class ChatUI(Protocol):
    """What the commands need from the app."""

    state: ChatState

    @property
    def client(self) -> Client:
        """The IRC client."""

    def redraw(self) -> None:
        """Draw what changed in the model."""

    def show(self, name: str) -> None:
        """Put the buffer of ``name`` on screen."""

    def switch_on_join(self, channel: str) -> None:
        """Put ``channel`` on screen as soon as the server confirms the join."""

    def track_delivery(self, delivery: Delivery, target: str) -> None:
        """Report in ``target``'s buffer if ``delivery`` fails."""

    async def quit(self, reason: str) -> None:
        """Say goodbye to the server and end the app."""


class Usage(Exception):
    """A command was used wrongly; the message says how to use it."""


Runner = Callable[[ChatUI, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    """One slash command.

    Attributes:
        name: without the slash.
        syntax: the arguments, as ``/help`` shows them.
        help: one line saying what it does.
        run: the implementation.
        aliases: other names for it.
    """

    name: str
    syntax: str
    help: str
    run: Runner
    aliases: tuple[str, ...] = ()


#: Every command by name and alias.
COMMANDS: dict[str, Command] = {}


def command(
    name: str, syntax: str, help_text: str, *, aliases: tuple[str, ...] = ()
) -> Callable[[Runner], Runner]:
    """Register the decorated coroutine function as ``/name``."""

    def register(fn: Runner) -> Runner:
        cmd = Command(name, syntax, help_text, fn, aliases)
        for key in (name, *aliases):
            COMMANDS[key] = cmd
        return fn

    return register


async def run_input(ui: ChatUI, text: str) -> None:
    """Act on one submitted input line: a ``/command``, or a message to the buffer on screen.

    ``//text`` sends ``/text`` as a message. Errors become an error line in the buffer on
    screen; nothing raises out of here except cancellation.
    """
    state = ui.state
    try:
        if text.startswith("/") and not text.startswith("//"):
            name, _, args = text[1:].partition(" ")
            cmd = COMMANDS.get(name.lower())
            if cmd is None:
                raise Usage(f"unknown command /{name} (try /help)")
            try:
                await cmd.run(ui, args.strip())
            except Usage as exc:
                raise Usage(str(exc) or f"usage: /{cmd.name} {cmd.syntax}".rstrip()) from None
        elif text.strip():
            buf = state.current_buffer
            if buf.kind is BufferKind.SERVER:
                raise Usage("this is the server buffer: /join a channel or /query a nick first")
            await say(ui, buf.name, text[1:] if text.startswith("//") else text)
    except Usage as exc:
        state.info(str(exc), kind=Kind.ERROR)
    except (ClientError, ValueError) as exc:
        state.info(str(exc), kind=Kind.ERROR)
    ui.redraw()


#: The commands that work in plain mode (the rest are IRC commands).
PLAIN_COMMANDS = frozenset({"quit", "help"})


async def run_plain_input(ui: PlainUI, link: PlainClient, text: str) -> None:
    """Act on one input line in plain mode: send it to the service as it is, or run a command.

    ``//text`` sends ``/text``. Only :data:`PLAIN_COMMANDS` run; an IRC command gets one error
    line saying why. Errors become an error line; nothing raises out of here but cancellation.
    """
    state = ui.state
    try:
        if text.startswith("/") and not text.startswith("//"):
            name, _, args = text[1:].partition(" ")
            cmd = COMMANDS.get(name.lower())
            if cmd is None:
                raise Usage(f"unknown command /{name} (try /help)")
            if cmd.name not in PLAIN_COMMANDS:
                raise Usage(
                    f"/{cmd.name} is an IRC command, and {link.peer} is a plain-text service: "
                    "type text to send it as a line (//text sends one that starts with /)"
                )
            if cmd.name == "quit":
                await ui.quit(args.strip() or "Leaving")
            else:
                _plain_help(state, link)
        elif text.strip():
            line = text[1:] if text.startswith("//") else text
            delivery = await link.send(line)
            buf = state.buffers[SERVER]
            state.add_line(buf, Kind.MESSAGE, line, nick=state.nick, own=True)
            ui.track_delivery(delivery, link.peer)
    except Usage as exc:
        state.info(str(exc), kind=Kind.ERROR)
    except (ClientError, ValueError) as exc:
        state.info(str(exc), kind=Kind.ERROR)
    ui.redraw()


def _plain_help(state: ChatState, link: PlainClient) -> None:
    state.info(f"plain text with {link.peer}: each line you type is sent as it is;")
    state.info("what the service sends is shown as it arrives. Commands (Ctrl+Q also quits):")
    for name in sorted(PLAIN_COMMANDS):
        cmd = COMMANDS[name]
        state.info(f"  /{cmd.name} - {cmd.help}")
    state.info("  //text - send a line that starts with a slash")


async def say(ui: ChatUI, target: str, text: str, *, action: bool = False) -> None:
    """Send ``text`` to ``target``, show it in its buffer, and watch its delivery."""
    payload = f"\x01ACTION {text}\x01" if action else text
    delivery = await ui.client.send(target, payload)
    ui.state.own_message(target, text, action=action)
    ui.track_delivery(delivery, target)


#: How to word the replies people read most (WHOIS, AWAY); ``{0}`` is the first parameter
#: after our nick, ``{-1}`` the last. Other numerics: ``<middle params>: <text>``.
_WORDING = {
    "301": "{0} is away: {-1}",
    "311": "{0} is {1}@{2} ({-1})",
    "312": "{0} is on {1} ({-1})",
    "313": "{0} is an IRC operator",
    "317": "{0} has been idle {1} s",
    "319": "{0} is in {-1}",
    "330": "{0} is logged in as {1}",
    "338": "{0} is connecting from {1}",
    "671": "{0} is using a secure connection",
}


def describe(msg: IrcMessage) -> str:
    """A server reply as one readable line (numerics without our own nick)."""
    if msg.command in ("FAIL", "WARN", "NOTE") and msg.params:  # IRCv3 standard replies
        return f"{msg.command} {' '.join(msg.params[:-1])}: {msg.params[-1]}"
    if not msg.command.isdigit():
        return msg.serialize()
    params = msg.params[1:]
    wording = _WORDING.get(msg.command)
    if wording is not None and params:
        try:
            return wording.replace("{-1}", "{last}").format(*params, last=params[-1])
        except IndexError:
            pass
    if len(params) > 1:
        return f"{' '.join(params[:-1])}: {params[-1]}"
    return params[0] if params else msg.command


def _show_reply(ui: ChatUI, messages: tuple[IrcMessage, ...], *, errors_only: bool = False) -> None:
    for msg in messages:
        if msg.command in _END_MARKERS:
            continue
        error = is_error(msg)
        if error or not errors_only:
            ui.state.info(describe(msg), kind=Kind.ERROR if error else Kind.INFO)


def _channel_arg(ui: ChatUI, args: str) -> tuple[str, str]:
    """Split ``[#channel] rest``, defaulting to the channel on screen."""
    first, _, rest = args.partition(" ")
    if first and ui.client.is_channel(first):
        return first, rest
    buf = ui.state.current_buffer
    if buf.kind is not BufferKind.CHANNEL:
        raise Usage("")
    return buf.name, args


@command("join", "<#channel>[,<#channel>...] [key]", "join channels", aliases=("j",))
async def _join(ui: ChatUI, args: str) -> None:
    names, _, key = args.partition(" ")
    if not names:
        raise Usage("")
    channels = [n if ui.client.is_channel(n) else "#" + n for n in names.split(",") if n]
    ui.switch_on_join(channels[0])
    for channel in channels:
        try:
            await ui.client.join(channel, key.strip())
        except ClientError as exc:
            ui.state.info(f"cannot join {channel}: {_reason(exc)}", kind=Kind.ERROR)


def _reason(exc: ClientError) -> str:
    reply = getattr(exc, "reply", None)
    if reply is not None and reply.error is not None:
        return describe(reply.error)
    return str(exc)


@command("part", "[#channel] [reason]", "leave a channel (the one on screen by default)")
async def _part(ui: ChatUI, args: str) -> None:
    channel, reason = _channel_arg(ui, args)
    await ui.client.part(channel, reason)


@command("msg", "<nick|#channel> <text>", "send a message without switching buffers")
async def _msg(ui: ChatUI, args: str) -> None:
    target, _, text = args.partition(" ")
    if not target or not text.strip():
        raise Usage("")
    await say(ui, target, text)


@command("query", "<nick> [text]", "open a private conversation (and send text)", aliases=("q",))
async def _query(ui: ChatUI, args: str) -> None:
    nick, _, text = args.partition(" ")
    if not nick or ui.client.is_channel(nick):
        raise Usage("")
    ui.state.add_buffer(nick, BufferKind.QUERY)
    ui.show(nick)
    if text.strip():
        await say(ui, nick, text)


@command("me", "<action>", "say what you are doing (/me waves)")
async def _me(ui: ChatUI, args: str) -> None:
    buf = ui.state.current_buffer
    if not args or buf.kind is BufferKind.SERVER:
        raise Usage("")
    await say(ui, buf.name, args, action=True)


@command("nick", "<newnick>", "change your nick")
async def _nick(ui: ChatUI, args: str) -> None:
    if not args or " " in args:
        raise Usage("")
    reply = await ui.client.request("NICK", args)
    _show_reply(ui, reply.messages, errors_only=True)


@command("topic", "[#channel] [new topic]", "show or set a channel's topic")
async def _topic(ui: ChatUI, args: str) -> None:
    channel, text = _channel_arg(ui, args)
    if text:
        reply = await ui.client.request("TOPIC", channel, text)
        _show_reply(ui, reply.messages, errors_only=True)
        return
    reply = await ui.client.request("TOPIC", channel)
    # 332 also arrives as a Topic event (shown by the model); show the rest (331, 333, errors).
    _show_reply(ui, tuple(m for m in reply.messages if m.command != "332"))


@command("names", "[#channel]", "list who is in a channel")
async def _names(ui: ChatUI, args: str) -> None:
    channel, _ = _channel_arg(ui, args)
    reply = await ui.client.request("NAMES", channel)
    entries = [e for m in reply.messages if m.command == "353" for e in m.params[-1].split()]
    if ui.state.get(channel) is not None:
        ui.state.set_names(channel, entries)
    _show_reply(ui, tuple(m for m in reply.messages if m.command != "353"), errors_only=True)
    if entries:
        ui.state.info(f"{len(entries)} in {channel}: {' '.join(entries)}")


@command("whois", "<nick>", "show who someone is")
async def _whois(ui: ChatUI, args: str) -> None:
    if not args:
        raise Usage("")
    reply = await ui.client.request("WHOIS", args.split()[0])
    _show_reply(ui, reply.messages)


@command("away", "[message]", "mark yourself away (no message: back)")
async def _away(ui: ChatUI, args: str) -> None:
    reply = await ui.client.request("AWAY", *((args,) if args else ()))
    _show_reply(ui, reply.messages)


@command("close", "[name]", "close a buffer (leaving the channel)", aliases=("wc",))
async def _close(ui: ChatUI, args: str) -> None:
    state = ui.state
    buf = state.get(args) if args else state.current_buffer
    if buf is None or buf.kind is BufferKind.SERVER:
        raise Usage("the server buffer stays open; /quit to leave" if buf else "no such buffer")
    if buf.kind is BufferKind.CHANNEL and ui.client.is_channel(buf.name):
        await ui.client.part(buf.name)
    state.close_buffer(buf.name)
    ui.show(state.current_buffer.name)


@command("quit", "[reason]", "disconnect and leave relaychat", aliases=("exit",))
async def _quit(ui: ChatUI, args: str) -> None:
    await ui.quit(args or "Leaving")


@command("quote", "<raw IRC line>", "send a raw line (e.g. /quote MODE #c +m)", aliases=("raw",))
async def _quote(ui: ChatUI, args: str) -> None:
    if not args:
        raise Usage("")
    try:
        msg = parse(args)
    except ProtocolError as exc:
        raise Usage(f"not an IRC line: {exc}") from None
    if msg.command == "QUIT":
        await ui.quit(msg.param(0, "Leaving"))
        return
    reply = await ui.client.request(msg.command, *msg.params)
    _show_reply(ui, reply.messages)


@command("help", "[command]", "list the commands, or explain one", aliases=("h",))
async def _help(ui: ChatUI, args: str) -> None:
    state = ui.state
    if args:
        cmd = COMMANDS.get(args.lstrip("/").lower())
        if cmd is None:
            raise Usage(f"no command /{args.lstrip('/')}")
        state.info(f"/{cmd.name} {cmd.syntax} - {cmd.help}")
        return
    state.info("commands (Tab completes; Ctrl+N/Ctrl+P switch buffers; Ctrl+Q quits):")
    for cmd in sorted({c.name: c for c in COMMANDS.values()}.values(), key=lambda c: c.name):
        state.info(f"  /{cmd.name} {cmd.syntax} - {cmd.help}")
