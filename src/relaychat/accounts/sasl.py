"""SASL over IRC, the pure parts: AUTHENTICATE chunking and the PLAIN message.

IRCv3 sasl-3.1 (https://ircv3.net/specs/extensions/sasl-3.1): a response is base64-encoded and
split into 400-byte chunks, one ``AUTHENTICATE`` each; a chunk shorter than 400 bytes ends the
response, and ``AUTHENTICATE +`` stands for an empty response or ends one whose last chunk was
exactly 400 bytes. PLAIN is RFC 4616: ``authzid NUL authcid NUL password``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = [
    "CHUNK",
    "MAX_RESPONSE",
    "MECHANISMS",
    "ChunkBuffer",
    "SaslDataError",
    "SaslResponseTooLong",
    "SaslTooLong",
    "encode_chunks",
    "parse_plain",
]

#: The size of one AUTHENTICATE chunk (sasl-3.1).
CHUNK = 400
#: The longest response this server accepts, base64 (sasl-3.1: "MAY place a limit").
MAX_RESPONSE = 8192
#: Every mechanism the server implements, in the order it lists them.
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "EXTERNAL")


class SaslDataError(ValueError):
    """A client's SASL response cannot be used (bad base64, bad PLAIN message)."""


class SaslTooLong(SaslDataError):
    """One chunk was over 400 bytes (reply 905, ERR_SASLTOOLONG)."""


class SaslResponseTooLong(SaslDataError):
    """The chunks add up to more than :data:`MAX_RESPONSE` (reply 904: each chunk was fine,
    the exchange is what failed)."""


class ChunkBuffer:
    """Reassembles one client response from its AUTHENTICATE chunks.

    Args:
        limit: the longest response accepted, in base64 bytes.
    """

    __slots__ = ("_parts", "_size", "limit")

    def __init__(self, limit: int = MAX_RESPONSE) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0

    def feed(self, param: str) -> bytes | None:
        """Take one AUTHENTICATE parameter.

        Returns:
            The decoded response once it is complete, else ``None`` (wait for the next chunk).
            The buffer is empty again after a complete response.

        Raises:
            SaslTooLong: the chunk is over 400 bytes (reply 905).
            SaslResponseTooLong: the whole response is too long (reply 904).
            SaslDataError: the response is not base64 (reply 904).
        """
        if len(param) > CHUNK:
            self.reset()
            raise SaslTooLong(f"an AUTHENTICATE chunk is at most {CHUNK} bytes")
        if param != "+":
            self._size += len(param)
            if self._size > self.limit:
                self.reset()
                raise SaslResponseTooLong(f"a SASL response is at most {self.limit} bytes")
            self._parts.append(param)
            if len(param) == CHUNK:
                return None  # exactly 400 bytes: more follows (maybe just "+")
        text = "".join(self._parts)
        self.reset()
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise SaslDataError("the SASL response is not valid base64") from None

    def reset(self) -> None:
        """Forget any partial response."""
        self._parts.clear()
        self._size = 0


def encode_chunks(data: bytes) -> list[str]:
    """``data`` as AUTHENTICATE parameters: base64 in 400-byte chunks, ``+`` when needed."""
    text = base64.b64encode(data).decode("ascii")
    chunks = [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]
    if not chunks or len(chunks[-1]) == CHUNK:
        chunks.append("+")
    return chunks


def parse_plain(data: bytes) -> tuple[str, str, str]:
    """Split a PLAIN message (RFC 4616 §2).

    Returns:
        ``(authzid, authcid, password)``; ``authzid`` is ``""`` when the client sent none.

    Raises:
        SaslDataError: not three NUL-separated UTF-8 fields, or an empty name or password.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslDataError("the PLAIN message is not UTF-8") from None
    fields = text.split("\0")
    if len(fields) != 3:
        raise SaslDataError("the PLAIN message must be authzid NUL authcid NUL password")
    authzid, authcid, password = fields
    if not authcid or not password:
        raise SaslDataError("the PLAIN message has an empty account name or password")
    return authzid, authcid, password
