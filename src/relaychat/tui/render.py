"""How the model looks on screen, as Rich ``Text``: lines, buffer labels, nick colours.

Pure functions of the model (no widgets), so what a line looks like is testable on its own.
Text from the network is always appended as plain text, never parsed as markup.
"""

from __future__ import annotations

import zlib

from rich.table import Table
from rich.text import Text

from relaychat.protocol.casemap import irc_lower
from relaychat.tui.model import Buffer, BufferKind, Kind, Line

__all__ = [
    "NICK_COLOURS",
    "buffer_label",
    "line_parts",
    "line_renderable",
    "line_text",
    "nick_colour",
    "strip_formatting",
]

#: Colours for nicks: readable on dark and light backgrounds, distinct from each other.
NICK_COLOURS = (
    "#e06c75",
    "#98c379",
    "#e5c07b",
    "#61afef",
    "#c678dd",
    "#56b6c2",
    "#d19a66",
    "#ff79c6",
    "#8be9fd",
    "#50fa7b",
    "#bd93f9",
    "#f1fa8c",
)
#: IRC formatting control codes (bold, colour, reset...) and the digits of ``^C`` colours.
_FORMATTING = str.maketrans("", "", "\x02\x0f\x11\x16\x1d\x1e\x1f")


def nick_colour(nick: str) -> str:
    """The colour of ``nick``: the same nick (in any case) always gets the same colour."""
    return NICK_COLOURS[zlib.crc32(irc_lower(nick).encode()) % len(NICK_COLOURS)]


def strip_formatting(text: str) -> str:
    """``text`` without IRC formatting codes (bold, italics, mIRC colours ``^C4,2``)."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\x03":  # ^C, then up to two digits, optionally a comma and two more
            i += 1
            for _ in range(2):
                if i < len(text) and text[i].isdigit():
                    i += 1
            if i + 1 < len(text) and text[i] == "," and text[i + 1].isdigit():
                i += 2
                if i < len(text) and text[i].isdigit():
                    i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out).translate(_FORMATTING)


def line_parts(line: Line, *, timestamp: str = "%H:%M") -> tuple[Text, Text]:
    """One buffer line as (margin, body): ``12:01 <alice>`` and ``hello``.

    Args:
        line: the line.
        timestamp: the ``strftime`` format of the time column.
    """
    margin = Text(line.time.strftime(timestamp) + " ", style="dim")
    body = Text()
    text = strip_formatting(line.text)
    nick_style = "bold" if line.own else f"bold {nick_colour(line.nick)}"
    text_style = "bold yellow" if line.highlight else ""
    kind = line.kind
    if kind is Kind.MESSAGE:
        margin.append("<", style="dim")
        margin.append(line.nick, style=nick_style)
        margin.append(">", style="dim")
        body.append(text, style=text_style)
    elif kind is Kind.ACTION:
        margin.append("*", style="bold")
        body.append(line.nick, style=nick_style)
        body.append(" " + text, style=text_style or "italic")
    elif kind is Kind.NOTICE:
        margin.append("-", style="dim")
        margin.append(line.nick, style=nick_style)
        margin.append("-", style="dim")
        body.append(text, style=text_style)
    else:
        arrow, style = _MARKS.get(kind, ("---", "dim"))
        if kind is Kind.PART and line.highlight:
            style = "bold red"
        margin.append(arrow, style=style)
        body.append(text, style=style)
    if line.history:
        body.stylize("italic")
    return margin, body


#: The margin mark and the style of lines that are not messages.
_MARKS = {
    Kind.JOIN: ("-->", "green"),
    Kind.PART: ("<--", "red"),
    Kind.NICK: ("---", "cyan"),
    Kind.TOPIC: ("---", "cyan"),
    Kind.ERROR: ("!!!", "bold red"),
    Kind.INFO: ("---", "dim"),
    Kind.OFFER: ("DCC", "bold magenta"),
}


def line_text(line: Line, *, timestamp: str = "%H:%M") -> Text:
    """One buffer line as one ``Text``: ``12:01 <alice> hello``."""
    margin, body = line_parts(line, timestamp=timestamp)
    return margin + Text(" ") + body


def line_renderable(line: Line, *, timestamp: str = "%H:%M") -> Table:
    """One buffer line for the screen: long text wraps under the text, not under the time."""
    margin, body = line_parts(line, timestamp=timestamp)
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    grid.add_row(margin, body)
    return grid


def buffer_label(index: int, buf: Buffer, *, current: bool) -> Text:
    """The buffer list entry: ``2 #chat (3)``, red with ``!`` when a message named the user."""
    name = "(server)" if buf.kind is BufferKind.SERVER else buf.name
    style = "bold reverse" if current else ""
    if buf.kind is BufferKind.CHANNEL and not buf.joined:
        style += " dim"
    out = Text(f"{index} ", style="dim")
    out.append(name, style=style.strip())
    if buf.unread:
        out.append(f" ({buf.unread})", style="bold red" if buf.highlight else "bold")
    if buf.highlight:
        out.append(" !", style="bold red")
    return out
