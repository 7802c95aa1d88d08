"""The plain-text listener: chat from a bare socket, no IRC syntax needed.

Made for the client of the sockets tutorial this project grew from (connect, send text, recv,
``bye``) and for netcat. A plain connection is an ordinary IRC user to everyone else: it gets a
guest nick, joins ``plain_channel``, and each line it sends is a PRIVMSG there. What the core
sends it is translated into short readable lines (``nick: text``, join/leave notices, clear
errors). Text that arrives without a line ending counts as a line once the sender pauses for
``plain_pause`` seconds, or closes the connection.

Rules:
1. No chat logic here: every line becomes an IRC message handled by the core, and every reply
   comes back from the core; this module only translates both ways.
2. The limits of IRC connections apply (line length, flood, sendq), through ``Connection``.
3. Keepalive PINGs are answered on the client's behalf: a bare socket client cannot. Dead peers
   are still found by TCP keepalive, which every socket has.
"""

from __future__ import annotations

import asyncio
import time

from relaychat.errors import ProtocolError
from relaychat.protocol.lines import Overlong
from relaychat.protocol.message import MAX_BODY_BYTES, Message, decode_line, parse
from relaychat.server.connection import Connection, Hub

__all__ = ["PlainConnection"]

HELP = (
    "Just type to chat. Commands: /nick NAME to change your name, /me ACTION, /who to see who "
    "is here, /help, and bye to leave."
)


class PlainConnection(Connection):
    """A :class:`Connection` that speaks plain text lines instead of IRC."""

    __slots__ = ("channel", "max_text", "names", "nick", "nick_attempt", "pause", "pause_handle")

    def __init__(self, server: Hub) -> None:
        super().__init__(server)
        cfg = self.server.config
        self.channel = cfg.plain_channel
        self.pause = cfg.plain_pause
        self.pause_handle: asyncio.TimerHandle | None = None
        self.names: list[str] = []
        self.nick = "*"
        self.nick_attempt = 0
        # The text of a message is what is left of a 512-byte line after "PRIVMSG #chan :".
        self.max_text = MAX_BODY_BYTES - len(f"PRIVMSG {self.channel} :")

    # --- input: text -> IRC ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        user = self.user
        if user is None:
            return
        now = time.time()
        self.core.handle(user, Message("NICK", (f"guest{user.id}",)), now)
        self.core.handle(user, Message("USER", ("plain", "0", "*", "plain socket client")), now)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.closed:
            return
        if self.pause_handle is not None:
            self.pause_handle.cancel()
            self.pause_handle = None
        if self.lines.pending:
            loop = asyncio.get_running_loop()
            self.pause_handle = loop.call_later(self.pause, self._pending_is_a_line)

    def _pending_is_a_line(self) -> None:
        self.pause_handle = None
        if not self.closed:
            pending = self.lines.take_pending()
            if pending:
                self._lines_in([pending])

    def eof_received(self) -> bool | None:
        # A last message sent without a newline before closing still counts.
        if self.pause_handle is not None:
            self.pause_handle.cancel()
            self.pause_handle = None
        self._pending_is_a_line()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        # Even when the peer resets the connection (closing with unread data does that), what
        # it sent before is a message.
        if self.pause_handle is not None:
            self.pause_handle.cancel()
            self.pause_handle = None
        if self.user is not None and not self.user.quitting:
            pending = self.lines.take_pending()
            if pending:
                self._process(pending, time.time())
        super().connection_lost(exc)

    def _process(self, item: bytes | Overlong, now: float) -> None:
        user = self.user
        assert user is not None
        if isinstance(item, Overlong) or len(item) > self.max_text:
            self._say(f"! That line is too long (at most {self.max_text} bytes); it was not sent.")
            return
        try:
            text = item.decode("utf-8").replace("\0", "").strip()
        except UnicodeDecodeError:
            # The server announces UTF8ONLY: text that is not UTF-8 is never relayed.
            self._say("! That line is not UTF-8 text; it was not sent.")
            return
        if not text:
            return
        msg = self._command(text)
        if msg is not None:
            self.core.handle(user, msg, now)
            self.handled(user)

    def _command(self, text: str) -> Message | None:
        """The IRC message for one line of text, or ``None`` when it was handled here."""
        if text.lower() == "bye":
            self._say("Goodbye!")
            return Message("QUIT", ("bye",))
        if not text.startswith("/"):
            return Message("PRIVMSG", (self.channel, text))
        verb, _, rest = text[1:].partition(" ")
        verb, rest = verb.lower(), rest.strip()
        if verb == "nick" and rest:
            return Message("NICK", (rest.split()[0],))
        if verb == "me" and rest:
            return Message("PRIVMSG", (self.channel, f"\x01ACTION {rest}\x01"))
        if verb in ("who", "names"):
            return Message("NAMES", (self.channel,))
        if verb == "quit":
            self._say("Goodbye!")
            return Message("QUIT", (rest or "bye",))
        self._say(HELP if verb == "help" else f"! Unknown command /{verb}. {HELP}")
        return None

    # --- output: IRC -> text ---------------------------------------------------------------

    def _say(self, text: str) -> None:
        super().send(text.encode("utf-8", "replace") + b"\n")

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        out: list[str] = []
        for raw in data.split(b"\r\n"):
            if not raw:
                continue
            try:
                msg = parse(decode_line(raw))
            except ProtocolError:  # pragma: no cover - the core only sends valid lines
                continue
            text = self._translate(msg)
            if text:
                out.append(text)
        if out:
            super().send(("\n".join(out) + "\n").encode("utf-8", "replace"))

    def farewell(self, error: str) -> bytes:
        reason = error.split("(", 1)[1].rstrip(")") if "(" in error else error
        if reason == "Quit: bye":
            return b""  # "Goodbye!" was said already
        return f"* Disconnected: {reason}\n".encode("utf-8", "replace")

    def _translate(self, msg: Message) -> str | None:
        """Readable text for one message from the core, or ``None`` to show nothing."""
        user = self.user
        assert user is not None
        cmd, p = msg.command, msg.params
        nick = (msg.source or "").split("!", 1)[0]
        # The nick as this client last heard it: by the time a NICK change is translated,
        # user.nick is already the new one.
        me = nick == self.nick
        if cmd in ("PRIVMSG", "NOTICE"):
            text = p[-1] if p else ""
            if text.startswith("\x01ACTION ") and text.endswith("\x01"):
                return f"* {nick} {text[8:-1]}"
            if "!" not in (msg.source or ""):
                return f"* {text}"
            if p and p[0] == self.nick:
                return f"(private) {nick}: {text}"
            return f"{nick}: {text}"
        if cmd == "PING":
            token = p[0] if p else ""
            asyncio.get_running_loop().call_soon(self._pong, token)
            return None
        if cmd == "001":
            self.nick = p[0]
            asyncio.get_running_loop().call_soon(self._join)
            network = self.server.config.network
            return (
                f"Welcome to {network}! You are {user.nick}, chatting in {self.channel} "
                f"(say bye to leave). {HELP}"
            )
        if cmd == "JOIN":
            return f"* You joined {p[0]}" if me else f"* {nick} joined {p[0]}"
        if cmd == "PART":
            return f"* {nick} left {p[0]}" + (f" ({p[1]})" if len(p) > 1 else "")
        if cmd == "QUIT":
            return f"* {nick} left" + (f" ({p[0]})" if p else "")
        if cmd == "KICK":
            return f"* {p[1]} was kicked from {p[0]} by {nick}" + (
                f" ({p[2]})" if len(p) > 2 else ""
            )
        if cmd == "NICK":
            if me:
                self.nick = p[0]
                return f"* You are now known as {p[0]}"
            return f"* {nick} is now known as {p[0]}"
        if cmd == "TOPIC":
            return f"* {nick} set the topic: {p[1]}"
        if cmd == "332":
            return f"* Topic: {p[-1]}"
        if cmd == "353":
            self.names.extend(name.lstrip("@+") for name in p[-1].split())
            return None
        if cmd == "366":
            names, self.names = self.names, []
            return f"* In {p[1]}: {', '.join(names)}" if names else None
        if cmd == "433" and not user.registered:
            self.nick_attempt += 1
            asyncio.get_running_loop().call_soon(self._retry_nick)
            return None
        if cmd in ("433", "432"):
            return f"! The name {p[1]} cannot be used ({p[-1].lower()}); try /nick ANOTHER"
        if cmd == "417":
            return f"! That line is too long (at most {self.max_text} bytes); it was not sent."
        if cmd == "422":  # no MOTD: nothing worth saying to a plain client
            return None
        if len(cmd) == 3 and cmd[0] in "45":
            return f"! {p[-1]}" if p else None
        return None

    def _pong(self, token: str) -> None:
        if self.user is not None and not self.closed:
            self.core.handle(self.user, Message("PONG", (token,)), time.time())

    def _join(self) -> None:
        if self.user is not None and not self.closed:
            self.core.handle(self.user, Message("JOIN", (self.channel,)), time.time())

    def _retry_nick(self) -> None:
        if self.user is not None and not self.closed:
            nick = f"guest{self.user.id}_{self.nick_attempt}"
            self.core.handle(self.user, Message("NICK", (nick,)), time.time())
