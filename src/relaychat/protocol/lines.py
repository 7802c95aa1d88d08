"""Splitting a byte stream into IRC lines, with a required bound on line length.

Rules:
- Lines end with ``\\n``; a ``\\r`` before it is stripped (RFC 1459 says CR-LF; many
  clients send LF).
  A lone ``\\r`` also ends a line, as several servers accept.
- Empty lines are dropped.
- A line longer than ``max_length`` bytes is never kept in memory whole: the buffer reports it as
  :class:`Overlong` (once) and discards bytes until the next line ending. The caller replies
  417 ERR_INPUTTOOLONG and the connection lives on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LineBuffer", "Overlong"]

_SPLIT = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class Overlong:
    """Stands in the output of :meth:`LineBuffer.feed` for a line that was too long.

    Attributes:
        size: how many bytes of it had been seen when it was refused (at least ``max_length + 1``).
    """

    size: int


class LineBuffer:
    """Bytes in, complete lines out.

    Only the new bytes of each chunk are searched for line endings, and at most ``max_length``
    bytes of an incomplete line are kept, so feeding a line one byte at a time costs linear time
    and bounded memory.

    Args:
        max_length: the longest line accepted, in bytes, line ending excluded. This is a security
            limit: it bounds the memory one peer can make the buffer hold.

    Raises:
        ValueError: ``max_length`` is not positive.
    """

    __slots__ = ("_buf", "_discarding", "max_length")

    def __init__(self, max_length: int) -> None:
        if max_length < 1:
            raise ValueError("max_length must be positive")
        self.max_length = max_length
        self._buf = bytearray()
        self._discarding = False

    @property
    def pending(self) -> int:
        """Bytes held that do not yet form a complete line."""
        return len(self._buf)

    def take_pending(self) -> bytes:
        """Remove and return the incomplete line held so far (``b""`` when there is none).

        For peers that send text without a line ending: the caller decides (after a pause, or
        at end of stream) that what arrived is a whole line.
        """
        if self._discarding:
            self._discarding = False
            return b""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def feed(self, data: bytes) -> list[bytes | Overlong]:
        """Add ``data`` and return every line completed by it, in order.

        Args:
            data: the next chunk of the stream, of any size; it may end in the middle of a line,
                or of a multi-byte character.

        Returns:
            A list of lines (bytes without their ending) and :class:`Overlong` markers.
            The caller handles each item, then feeds the next chunk.
        """
        parts = _SPLIT.split(data)
        # The last part is an incomplete line (b"" if data ended with a line ending).
        tail = parts.pop()
        out: list[bytes | Overlong] = []
        limit = self.max_length
        if parts:
            if self._discarding:
                # The end of an overlong line that was already reported.
                self._discarding = False
                parts[0] = b""
            elif self._buf:
                self._buf += parts[0]
                parts[0] = bytes(self._buf)
                self._buf.clear()
            for line in parts:
                if not line:
                    continue
                if len(line) > limit:
                    out.append(Overlong(len(line)))
                    continue
                out.append(line)
        if self._discarding or not tail:
            return out
        size = len(self._buf) + len(tail)
        if size > limit:
            out.append(Overlong(size))
            self._discarding = True
            self._buf.clear()
        else:
            self._buf += tail
        return out
