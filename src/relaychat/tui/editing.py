"""The input line's helpers, pure: history recall and tab completion.

Rules:
- History keeps what was submitted, newest last, without repeats of the line before; Up walks
  back from the newest, Down walks forward and finally restores the draft being typed.
- Completion works on the word before the cursor: ``/jo`` completes commands (first word only),
  ``#c`` channels, anything else nicks. A nick completed as the first word gets ``": "``
  appended (the IRC way to address someone), anything else a space. Pressing Tab again cycles
  through the other matches; any other edit starts afresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from relaychat.protocol.casemap import irc_lower

__all__ = ["Completer", "InputHistory"]


class InputHistory:
    """Lines submitted on the input line, for Up/Down recall.

    Args:
        size: how many lines to keep.
    """

    def __init__(self, size: int = 500) -> None:
        self._lines: deque[str] = deque(maxlen=size)
        self._pos = 0  # index into _lines; len(_lines) means "the draft"
        self._draft = ""

    def __len__(self) -> int:
        return len(self._lines)

    def add(self, line: str) -> None:
        """Remember a submitted line (blank lines and repeats of the last one are skipped)."""
        if line.strip() and (not self._lines or self._lines[-1] != line):
            self._lines.append(line)
        self._pos = len(self._lines)
        self._draft = ""

    def previous(self, current: str) -> str:
        """The line before (Up). ``current`` is what the input holds now (kept as the draft)."""
        if self._pos == len(self._lines):
            self._draft = current
        if self._pos > 0:
            self._pos -= 1
        return self._lines[self._pos] if self._lines else current

    def next(self) -> str:
        """The line after (Down); past the newest, the draft that was being typed."""
        if self._pos < len(self._lines):
            self._pos += 1
        return self._lines[self._pos] if self._pos < len(self._lines) else self._draft


@dataclass(slots=True)
class _Cycle:
    start: int  # where the completed word starts
    matches: list[str]
    index: int
    result: tuple[str, int]  # the text and cursor this cycle produced last


class Completer:
    """Tab completion with cycling (see the module rules)."""

    def __init__(self) -> None:
        self._cycle: _Cycle | None = None

    def reset(self) -> None:
        """Forget the cycle (call on any edit that is not a completion)."""
        self._cycle = None

    def complete(
        self,
        text: str,
        cursor: int,
        *,
        nicks: Iterable[str] = (),
        channels: Iterable[str] = (),
        commands: Iterable[str] = (),
    ) -> tuple[str, int] | None:
        """Complete the word before ``cursor``.

        Args:
            text: the input line.
            cursor: the cursor position in ``text``.
            nicks: candidate nicks (the current buffer's members first is a good order).
            channels: candidate channels.
            commands: candidate command names, without the slash.

        Returns:
            The new text and cursor, or ``None`` when nothing matches.
        """
        cycle = self._cycle
        if cycle is not None and cycle.result == (text, cursor) and len(cycle.matches) > 1:
            cycle.index = (cycle.index + 1) % len(cycle.matches)
            return self._insert(text[: cycle.start] + text[cursor:], cycle)
        start = text.rfind(" ", 0, cursor) + 1
        word = text[start:cursor]
        first = text[:start].strip() == ""
        if first and word.startswith("/"):
            pool = ["/" + c for c in commands]
        elif word[:1] in ("#", "&"):
            pool = list(channels)
        else:
            pool = sorted(nicks, key=irc_lower)
        folded = irc_lower(word)
        seen: set[str] = set()
        matches = []
        for candidate in pool:
            key = irc_lower(candidate)
            if key.startswith(folded) and key not in seen:
                seen.add(key)
                matches.append(candidate)
        if not matches:
            self._cycle = None
            return None
        base = text[:start] + text[cursor:]  # the word is replaced as a whole
        self._cycle = _Cycle(start, matches, 0, (base, start))
        return self._insert(base, self._cycle)

    @staticmethod
    def _insert(base: str, cycle: _Cycle) -> tuple[str, int]:
        match = cycle.matches[cycle.index]
        first = base[: cycle.start].strip() == ""
        nick = not match.startswith("/") and match[:1] not in ("#", "&")
        insert = match + (": " if first and nick else " ")
        new_text = base[: cycle.start] + insert + base[cycle.start :]
        cycle.result = (new_text, cycle.start + len(insert))
        return cycle.result
