"""The full-screen terminal client: a Textual app drawn from the model, driven by the client.

Rules:
1. Every IRC decision is :mod:`relaychat.client`'s; every decision about what to show is
   :mod:`relaychat.tui.model`'s. This module moves events from the client into the model,
   input from the user into :mod:`relaychat.tui.commands`, and draws the model.
2. Nothing here blocks: commands, NAMES refreshes, lag probes and delivery watches run as
   tasks the app owns; they end with it.

Layout: the topic bar on top; the buffer list, the open buffer and its nick list in the middle;
the status line (connection state, lag) and the input line at the bottom.

Plain mode (``relaychat chat --plain``): the link is a :class:`~relaychat.client.plain.PlainClient`
to any line-based TCP service. There is one buffer (the server buffer, which is the service), the
input line sends raw text, and only /quit and /help work; the status line is the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.events import Key, Resize
from textual.widgets import Input, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from relaychat.client import (
    Client,
    ClientClosed,
    ClientError,
    Connected,
    Delivery,
    Disconnected,
    Event,
    GaveUp,
    Join,
    Reconnecting,
    SlowConsumer,
)
from relaychat.client.dcc import DccManager
from relaychat.client.dccstate import DccConfig, DccProgress
from relaychat.client.plain import PlainClient
from relaychat.protocol.casemap import irc_lower
from relaychat.tui import upload as _upload  # noqa: F401 (importing it registers /upload)
from relaychat.tui.commands import COMMANDS, PLAIN_COMMANDS, run_input, run_plain_input
from relaychat.tui.dcc import apply_dcc, busy, transfer_rows
from relaychat.tui.editing import Completer, InputHistory
from relaychat.tui.model import (
    SERVER,
    Buffer,
    BufferKind,
    ChatState,
    Kind,
    Line,
    LinkState,
    LinkStatus,
)
from relaychat.tui.render import buffer_label, line_renderable, nick_colour

__all__ = ["ChatApp", "ChatInput"]

log = logging.getLogger("relaychat.tui")
#: Seconds after connecting before the first lag probe (the pacing bucket has refilled by then).
LAG_FIRST_PROBE = 3.0
#: Columns of a buffer's log that are not text: the padding on both sides and the scrollbar.
LOG_CHROME = 3


class ChatInput(Input):
    """The input line: Enter submits, Up/Down recall history, Tab completes.

    These keys are handled in the widget's own key handler, not as bindings: a binding runs
    after the event has bubbled up, by which time keys typed right after it may already be in
    the line (a paste or a fast typist would see lines run together).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history = InputHistory()
        self.completer = Completer()

    async def _on_key(self, event: Key) -> None:
        keys: dict[str, Callable[[], None]] = {
            "enter": self.submit_line,
            "tab": self.complete_word,
            "up": lambda: self.recall(-1),
            "down": lambda: self.recall(1),
        }
        act = keys.get(event.key)
        if act is not None:
            event.stop()
            event.prevent_default()  # (Input's own handler does not run)
            act()

    def submit_line(self) -> None:
        """Enter: remember the line, clear the input, and post it to the app."""
        value = self.value
        self.history.add(value)
        self.value = ""
        self.post_message(self.Submitted(self, value))

    def complete_word(self) -> None:
        """Complete the word before the cursor (again: the next match)."""
        app = self.app
        if not isinstance(app, ChatApp):
            return
        # Every nick known: the members of every channel, and the open conversations.
        nicks = [n for b in app.state.buffers.values() for _, n in b.nicks()]
        nicks += [b.name for b in app.state.buffers.values() if b.kind is BufferKind.QUERY]
        done = self.completer.complete(
            self.value,
            self.cursor_position,
            nicks=nicks,
            channels=app.state.channels(),
            commands=sorted(PLAIN_COMMANDS if app.plain else {c.name for c in COMMANDS.values()}),
        )
        if done is not None:
            self.value, self.cursor_position = done

    def recall(self, step: int) -> None:
        """Up (-1) / Down (1): the previous or next submitted line."""
        self.value = self.history.previous(self.value) if step < 0 else self.history.next()
        self.cursor_position = len(self.value)


class LogArea(Container):
    """Holds one log per buffer; lines are wrapped to its width, so a resize redraws."""

    def on_resize(self, event: Resize) -> None:
        """Draw the buffer on screen again, wrapped to the new width."""
        app = self.app
        if isinstance(app, ChatApp):
            app.call_after_refresh(app.redraw)


class ChatApp(App[int]):
    """The chat client on screen.

    Args:
        client: the connection (started here unless it already is): an IRC
            :class:`~relaychat.client.Client`, or a :class:`PlainClient` for plain mode.
        events: the client's event stream, when the caller subscribed before starting it (so
            nothing from the start is missed); by default the app subscribes.
        lag_interval: seconds between two measurements of the round trip to the server.
        scrollback: lines kept per buffer.
        dcc: the file transfer settings (:class:`~relaychat.client.dccstate.DccConfig`).
    """

    TITLE = "relaychat"
    CSS = """
    #topic { height: 1; padding: 0 1; background: $primary-background; color: $text; }
    #main { height: 1fr; }
    #buffers { width: 22; height: 1fr; border: none; border-right: solid $primary-background; }
    #logs { width: 1fr; }
    #logs RichLog { background: $surface; padding: 0 1; scrollbar-size-vertical: 1; }
    #nicks { width: 20; height: 1fr; border: none; border-left: solid $primary-background; }
    #status { height: 1; padding: 0 1; background: $panel; }
    #input { height: 1; border: none; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "cycle(1)", "Next buffer", show=False, priority=True),
        Binding("ctrl+p", "cycle(-1)", "Previous buffer", show=False, priority=True),
        Binding("pageup", "scroll(-1)", "Scroll up", show=False, priority=True),
        Binding("pagedown", "scroll(1)", "Scroll down", show=False, priority=True),
    ]

    def __init__(
        self,
        client: Client | PlainClient,
        *,
        events: AsyncIterator[Event] | None = None,
        lag_interval: float = 15.0,
        scrollback: int = 2000,
        dcc: DccConfig | None = None,
    ) -> None:
        super().__init__()
        self.dcc_config = dcc or DccConfig()
        #: File transfers (``/dcc``); ``None`` in plain mode.
        self.dcc: DccManager | None = None
        #: The connection, IRC or plain (see :attr:`client` for the IRC one).
        self.link = client
        self.plain = isinstance(client, PlainClient)
        # The nick asked for (the Connected event then tells if a fallback was needed).
        self.state = ChatState(
            client.config.nick,
            is_channel=client.is_channel,
            scrollback=scrollback,
            plain=self.plain,
        )
        self.status = LinkStatus(LinkState.CONNECTED if client.connected else LinkState.CONNECTING)
        self._events = events
        self._lag_interval = lag_interval
        self._logs: dict[Buffer, RichLog] = {}
        self._written: dict[Buffer, Line] = {}  # the last line written to each log
        self._widths: dict[Buffer, int] = {}  # the width each log's lines were wrapped to
        self._tasks: set[asyncio.Task[Any]] = set()
        self._switch_to: str | None = None
        self._probing = False
        self._serial = 0
        self._log_handler = _BufferLog(self)

    @property
    def client(self) -> Client:
        """The IRC client (what the slash commands use).

        Raises:
            ClientClosed: in plain mode, where there is none.
        """
        if isinstance(self.link, PlainClient):
            raise ClientClosed("not an IRC connection (plain mode)")
        return self.link

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        """The widgets (see the module docstring)."""
        yield Static(id="topic")
        with Horizontal(id="main"):
            yield OptionList(id="buffers")
            yield LogArea(id="logs")
            yield OptionList(id="nicks")
        yield Static(id="status")
        yield ChatInput(id="input", placeholder="type a message, or /help", compact=True)

    async def on_mount(self) -> None:
        """Start the client and the background work, and draw."""
        for widget in self.query(OptionList):
            widget.can_focus = False
            widget.display = not self.plain  # plain mode: one buffer, no lists
        logging.getLogger("relaychat").addHandler(self._log_handler)
        if self._events is None:
            self._events = self.link.events()
        try:
            self.link.start()
        except ClientClosed as exc:
            self._set_status(LinkState.DISCONNECTED, exc.reason)
        self.spawn(self._consume(self._events))
        self.set_interval(1.0, self._draw_status)
        if isinstance(self.link, Client):
            self.dcc = DccManager(self.link, self.dcc_config)
            self.dcc.start()
            self.spawn(self._consume_dcc(self.dcc))
            self.set_interval(0.5, self._tick_transfers)
        if not self.plain:
            self.set_interval(self._lag_interval, self._probe_lag)
            if self.link.connected:
                self.set_timer(LAG_FIRST_PROBE, self._probe_lag)
        self.query_one(ChatInput).focus()
        self.redraw()

    def on_unmount(self) -> None:
        """Stop the background work."""
        logging.getLogger("relaychat").removeHandler(self._log_handler)
        for task in list(self._tasks):
            task.cancel()

    # --- what the commands use (relaychat.tui.commands.ChatUI) --------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as a task the app owns (cancelled when the app ends)."""
        task = asyncio.get_running_loop().create_task(self._guard(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: show it, keep the app alive
            log.exception("background task failed")
            self.state.info(f"internal error: {exc!r}", kind=Kind.ERROR)
            self.redraw()

    def show(self, name: str) -> None:
        """Put the buffer of ``name`` on screen."""
        self.state.switch(name)
        self.redraw()

    def switch_on_join(self, channel: str) -> None:
        """Show ``channel`` once the server confirms the join."""
        self._switch_to = self.state.key(channel)
        buf = self.state.get(channel)
        if buf is not None and buf.joined:
            self.show(channel)

    def track_delivery(self, delivery: Delivery, target: str) -> None:
        """Add an error line to ``target``'s buffer if ``delivery`` fails."""

        async def wait() -> None:
            error = await delivery.settled()
            if error is not None:
                buf = self.state.get(target)
                self.state.info(f"not delivered to {target}: {error}", buf, Kind.ERROR)
                self.redraw()

        self.spawn(wait())

    async def quit(self, reason: str) -> None:
        """Send QUIT, close the client and end the app (exit code 0)."""
        self._set_status(LinkState.DISCONNECTED, "you quit")
        if self.dcc is not None:
            await self.dcc.close()
        if isinstance(self.link, PlainClient):
            await self.link.close(timeout=2.0)  # a plain service gets no QUIT
        else:
            await self.link.close(reason, timeout=2.0)
        self.exit(0)

    # --- events -------------------------------------------------------------------------------

    async def _consume(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                self._on_event(event)
        except SlowConsumer as exc:
            self.state.info(f"the display fell behind: {exc}", kind=Kind.ERROR)
        if self.status.state is not LinkState.DISCONNECTED:
            self._set_status(LinkState.DISCONNECTED, "the client stopped")
        self.redraw()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, Connected):
            self._set_status(LinkState.CONNECTED)
            if not self.plain:
                # Not at once: the first probe would wait behind the registration burst's pacing.
                self.set_timer(LAG_FIRST_PROBE, self._probe_lag)
            if not self.plain and irc_lower(event.nick) != irc_lower(self.state.nick):
                self.state.info(
                    f"the nick {self.state.nick} is in use; you are {event.nick} (/nick to change)",
                    self.state.buffers[SERVER],
                )
        elif isinstance(event, Disconnected):
            self._set_status(LinkState.DISCONNECTED, event.reason)
            self.status.lag = None
        elif isinstance(event, Reconnecting):
            self.status.state = LinkState.RECONNECTING
            self.status.attempt = event.attempt
            self.status.retry_at = time.monotonic() + event.delay
            self.status.reason = event.reason
        elif isinstance(event, GaveUp):
            self._set_status(LinkState.DISCONNECTED, event.reason)
        self.state.apply(event)
        if isinstance(event, Join) and event.own:
            self.spawn(self._refresh_names(event.channel))
            # Show a channel joined on request, or any channel while the server buffer is shown.
            if self._switch_to == self.state.key(event.channel) or self.state.current == SERVER:
                self._switch_to = None
                self.state.switch(event.channel)
        self.redraw()

    async def _consume_dcc(self, dcc: DccManager) -> None:
        """Show what happens to file transfers (offers, ends) as lines; redraw the table."""
        async for event in dcc.events():
            if not isinstance(event, DccProgress):
                apply_dcc(self.state, event, self.dcc_config.download_path())
                self.redraw()

    def _tick_transfers(self) -> None:
        """Draw the transfers buffer again while it is on screen and something is moving."""
        dcc, shown = self.dcc, self.state.current_buffer.kind
        if dcc is not None and shown is BufferKind.TRANSFERS and busy(dcc.transfers):
            self.redraw()

    def _set_status(self, state: LinkState, reason: str = "") -> None:
        self.status.state = state
        self.status.reason = reason
        self._draw_status()

    async def _refresh_names(self, channel: str) -> None:
        try:
            reply = await self.client.request("NAMES", channel)
        except ClientError:
            return
        entries = [e for m in reply.messages if m.command == "353" for e in m.params[-1].split()]
        if entries:
            self.state.set_names(channel, entries)
            self.redraw()

    def _probe_lag(self) -> None:
        """Measure the round trip to the server (a PING answered by a PONG)."""
        client = self.link
        if self._probing or not isinstance(client, Client) or not client.connected:
            return
        self._probing = True

        async def probe() -> None:
            started = time.monotonic()
            try:
                await client.request("PING", "lag", timeout=self._lag_interval)
                if self.status.state is LinkState.CONNECTED:
                    self.status.lag = time.monotonic() - started
                    self._draw_status()
            except ClientError:
                pass
            finally:
                self._probing = False

        self.spawn(probe())

    # --- input --------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Run the line typed (a command or a message)."""
        if not event.value.strip():
            return
        if isinstance(self.link, PlainClient):
            self.spawn(run_plain_input(self, self.link, event.value))
        else:
            self.spawn(run_input(self, event.value))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """A click on a buffer shows it; on a nick, opens a query with them."""
        option_id = event.option.id or ""
        if event.option_list.id == "buffers" and option_id in self.state.buffers:
            self.show(self.state.buffers[option_id].name)
        elif event.option_list.id == "nicks" and option_id:
            self.state.add_buffer(option_id, BufferKind.QUERY)
            self.show(option_id)

    def action_cycle(self, step: int) -> None:
        """Show the next or previous buffer."""
        self.state.cycle(step)
        self.redraw()

    def action_scroll(self, step: int) -> None:
        """Scroll the buffer on screen by a page."""
        log_widget = self._logs.get(self.state.current_buffer)
        if log_widget is not None:
            if step < 0:
                log_widget.scroll_page_up()
            else:
                log_widget.scroll_page_down()

    # --- drawing ------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw what changed in the model: new buffers, new lines, lists, topic and status."""
        if not self.is_running:
            return
        state = self.state
        container = self.query_one(LogArea)
        for buf in [b for b in self._logs if b not in state.buffers.values()]:
            self._logs.pop(buf).remove()
            self._written.pop(buf, None)
            self._widths.pop(buf, None)
        for buf in state.buffers.values():
            if buf not in self._logs:
                self._serial += 1
                widget = RichLog(id=f"log-{self._serial}", wrap=True, max_lines=state.scrollback)
                widget.can_focus = False
                self._logs[buf] = widget
                container.mount(widget)
        state.take_touched()
        current = state.current_buffer
        for buf, widget in self._logs.items():
            widget.display = buf is current
        self._draw_log(current, container.size.width - LOG_CHROME)
        self._draw_lists(current)
        self._draw_topic(current)
        self._draw_status()

    def _draw_log(self, buf: Buffer, width: int) -> None:
        """Write the lines of ``buf`` not written yet (all of them after a width change).

        Only the buffer on screen is written to: a hidden log does not know its width. The
        others catch up when they are shown.
        """
        widget = self._logs[buf]
        if width <= 0:  # not laid out yet
            self.call_after_refresh(self.redraw)
            return
        if buf.kind is BufferKind.TRANSFERS:  # a live table, drawn afresh
            widget.clear()
            for row in transfer_rows(self.dcc.transfers if self.dcc is not None else []):
                widget.write(row, width=width)
            return
        last = self._written.get(buf) if self._widths.get(buf) == width else None
        fresh: list[Line] = []
        for line in reversed(buf.lines):
            if line is last:
                break
            fresh.append(line)
        else:  # the last line written is gone (new width, or scrolled out): write them all
            widget.clear()
            self._widths[buf] = width
        for line in reversed(fresh):
            widget.write(line_renderable(line), width=width)
        if buf.lines:
            self._written[buf] = buf.lines[-1]

    def _draw_lists(self, current: Buffer) -> None:
        state = self.state
        buffers = self.query_one("#buffers", OptionList)
        keys = list(state.buffers)
        buffers.set_options(
            Option(buffer_label(i + 1, b, current=b is current), id=k)
            for i, (k, b) in enumerate(state.buffers.items())
        )
        buffers.highlighted = keys.index(state.current)
        nicks = self.query_one("#nicks", OptionList)
        nicks.display = current.kind is BufferKind.CHANNEL
        if current.kind is BufferKind.CHANNEL:
            nicks.set_options(
                Option(Text(prefix, style="bold") + Text(nick, style=nick_colour(nick)), id=nick)
                for prefix, nick in current.nicks()
            )

    def _draw_topic(self, current: Buffer) -> None:
        if current.kind is BufferKind.CHANNEL:
            text = Text(current.name, style="bold")
            text.append(f" ({len(current.members)})" if current.joined else " (not joined)")
            text.append(": " + current.topic if current.topic else "")
        elif current.kind is BufferKind.QUERY:
            text = Text(f"private conversation with {current.name}")
        elif current.kind is BufferKind.TRANSFERS:
            text = Text("file transfers (DCC) - /dcc get, /dcc close, /help dcc")
        elif isinstance(self.link, PlainClient):
            text = Text(f"relaychat - plain text with {self.link.peer} - /help lists the commands")
        else:
            cfg = self.link.config
            text = Text(f"relaychat - {cfg.host}:{cfg.port} - /help lists the commands")
        self.query_one("#topic", Static).update(text)

    def _draw_status(self) -> None:
        if not self.is_running:
            return
        status = self.status
        colour = {
            LinkState.CONNECTED: "green",
            LinkState.CONNECTING: "yellow",
            LinkState.RECONNECTING: "yellow",
            LinkState.DISCONNECTED: "red",
        }[status.state]
        cur = self.state.current_buffer
        if isinstance(self.link, PlainClient):
            text = Text("[plain] ", style="bold")
            text.append(self.link.peer)
        else:
            text = Text(f"[{self.state.nick}] ", style="bold")
            text.append(cur.name if cur.kind is not BufferKind.SERVER else "(server)")
        text.append("  ")
        text.append(status.text(time.monotonic()), style=f"bold {colour}")
        with contextlib.suppress(Exception):  # not composed yet, or shutting down
            self.query_one("#status", Static).update(text)

    @property
    def status_text(self) -> str:
        """The status line as plain text (for tests and screen readers)."""
        return self.status.text(time.monotonic())


class _BufferLog(logging.Handler):
    """Shows the library's warnings in the server buffer instead of on the terminal."""

    def __init__(self, app: ChatApp) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        try:
            state = self.app.state
            state.info(record.getMessage(), state.buffers[SERVER], Kind.ERROR)
            self.app.redraw()
        except Exception:
            self.handleError(record)
